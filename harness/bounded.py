"""Bounded work on untrusted text: one pathological item scores 0, never hangs the run.

- Regular expressions from suites (a schema's ``pattern``, a keywords ``regex``) run
  with the ``regex`` package and a time limit per search (``REGEX_TIMEOUT_S``):
  catastrophic backtracking on 34 characters used to run past 120 s.
- JSON from outputs and data files is parsed only when its nesting depth is at most
  ``MAX_JSON_DEPTH`` and its size at most ``MAX_JSON_CHARS`` (1,000 nested ``[`` raised
  RecursionError deep in validation and killed the run).

``TooMuchWork`` is what a scorer raises on such an item; ``Scorer.score_all`` turns it
into a score of 0 whose detail says why.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

import regex

REGEX_TIMEOUT_S = 0.25  # one search (the regex package may overshoot it a few times over)
ITEM_BUDGET_S = 2.0  # all the searches of one item's scoring together
MAX_JSON_DEPTH = 128
MAX_JSON_CHARS = 10_000_000
# An output longer than this is not scored (0 with the reason): ~25,000 tokens, beyond any
# max_tokens a suite sets; a 3 MB stored output took 14 s of scoring.
MAX_OUTPUT_CHARS = 100_000


class TooMuchWork(Exception):
    """An item needed more than the bounded work (a regex ran out of time, JSON too deep)."""


def compile_regex(pattern: str, flags: int = 0) -> regex.Pattern:
    """Compile with the ``regex`` package (``regex.error`` on bad syntax, a subclass of ValueError)."""
    return regex.compile(pattern, flags | regex.VERSION0)


_DEADLINE: ContextVar[float | None] = ContextVar("bounded_deadline", default=None)


@contextmanager
def item_budget(seconds: float = ITEM_BUDGET_S) -> Iterator[None]:
    """All ``search`` calls inside share ``seconds`` (one item's scoring)."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def search(pattern: regex.Pattern | str, text: str, timeout: float | None = None) -> Any:
    """``pattern.search(text)`` within ``timeout`` seconds (and the item's budget), else ``TooMuchWork``."""
    compiled = compile_regex(pattern) if isinstance(pattern, str) else pattern
    limit = REGEX_TIMEOUT_S if timeout is None else timeout
    deadline = _DEADLINE.get()
    if deadline is not None:
        limit = min(limit, deadline - time.monotonic())
    shown = compiled.pattern if len(compiled.pattern) <= 60 else compiled.pattern[:57] + "..."
    if limit <= 0:
        raise TooMuchWork(f"regular expressions used up this item's {ITEM_BUDGET_S:g} s "
                          f"(last: /{shown}/)")
    try:
        return compiled.search(text, timeout=limit)
    except TimeoutError:
        raise TooMuchWork(f"the regular expression /{shown}/ took more than "
                          f"{limit:.2g} s on this output (catastrophic backtracking)") from None


RENDER_WALL_S = 20.0  # seconds for rendering all of one suite's prompts and targets
MAX_RENDER_CHARS = 10_000_000  # a string, list or number a template may build with *, ** or %


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise ``TooMuchWork`` in the block after ``seconds``. On Unix's main thread: SIGALRM
    via ITIMER_REAL (an alarm already set is restored after). Elsewhere (a worker thread, an
    API call from a server, Windows) signals cannot reach the block, so a trace function on
    this thread checks the clock at each line it runs (``_traced_limit``). Either way it
    interrupts Python-level loops such as a template's nested ``for``."""
    import signal
    import threading

    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        with _traced_limit(seconds, what):
            yield
        return

    def expired(signum, frame):
        raise TooMuchWork(f"{what} took more than {seconds:g} s")

    start = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, expired)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay:  # someone else's alarm: re-arm what is left of it
            left = old_delay - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), old_interval)


@contextmanager
def _traced_limit(seconds: float, what: str) -> Iterator[None]:
    """``time_limit`` without signals: ``sys.settrace`` for this thread only; the trace
    function raises ``TooMuchWork`` in the running frame once the deadline has passed (a
    debugger's or coverage's tracer is put back after). It sees the frames the block calls
    (a template's render function), not the block's own lines."""
    import sys

    deadline = time.monotonic() + seconds
    previous = sys.gettrace()

    def tracer(frame, event, arg):
        if time.monotonic() > deadline:
            sys.settrace(previous)
            raise TooMuchWork(f"{what} took more than {seconds:g} s")
        return tracer

    sys.settrace(tracer)
    try:
        yield
    finally:
        sys.settrace(previous)


def sandbox_environment(**options: Any):
    """Jinja's immutable sandbox that also refuses ``*``, ``**`` and ``%`` building huge
    values (``{{ "a" * 10**9 }}`` allocated 1 GB in the plain sandbox)."""
    import re as _re

    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    width = _re.compile(r"%[-#0 +]*(\d+)|\.(\d+)")

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**", "%"])

        def call_binop(self, context, operator, left, right):
            sized = (str, bytes, list, tuple)
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, sized) and isinstance(n, int) and len(seq) * n > MAX_RENDER_CHARS:
                        raise SecurityError(f"a template may not build more than {MAX_RENDER_CHARS:,} items")
            elif operator == "**":
                if isinstance(left, (int, float)) and isinstance(right, (int, float)) and abs(left) > 1 \
                        and abs(right) > 1000:
                    raise SecurityError("exponent too large in a template")
            elif operator == "%" and isinstance(left, str):
                if any(int(a or b or 0) > 100_000 for a, b in width.findall(left)):
                    raise SecurityError("format width too large in a template")
            return super().call_binop(context, operator, left, right)

    return BoundedSandbox(**options)


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """Deepest bracket nesting of JSON text (string-aware), stopping once past ``limit``."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in "]}":
            depth = max(0, depth - 1)
    return deepest


def check_json_text(text: str, what: str = "the JSON") -> None:
    """``TooMuchWork`` when text is too large or nested too deeply to parse safely."""
    if len(text) > MAX_JSON_CHARS:
        raise TooMuchWork(f"{what} is {len(text):,} characters, more than {MAX_JSON_CHARS:,}")
    if ("[" in text or "{" in text) and json_depth(text) > MAX_JSON_DEPTH:
        raise TooMuchWork(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")


def loads(text: str, what: str = "the JSON", **kwargs: Any) -> Any:
    """``json.loads`` after ``check_json_text``."""
    check_json_text(text, what)
    return json.loads(text, **kwargs)


__all__ = ["RENDER_WALL_S", "MAX_RENDER_CHARS", "time_limit", "sandbox_environment", "REGEX_TIMEOUT_S", "ITEM_BUDGET_S", "item_budget", "MAX_JSON_DEPTH", "MAX_JSON_CHARS", "TooMuchWork", "compile_regex",
           "search", "json_depth", "check_json_text", "loads"]
