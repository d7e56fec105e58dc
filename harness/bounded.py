"""Bounded work on untrusted text: one pathological item scores 0, never hangs the run.

- Regular expressions from suites (a schema's ``pattern``, a keywords ``regex``) run
  with the ``regex`` package and a time limit per search (``REGEX_TIMEOUT_S``):
  catastrophic backtracking on 34 characters used to run past 120 s.
- JSON from outputs and data files is parsed only when its nesting depth is at most
  ``MAX_JSON_DEPTH`` and its size at most ``MAX_JSON_CHARS`` (1,000 nested ``[`` raised
  RecursionError deep in validation and killed the run).

``TooMuchWork`` is what a scorer raises on such an item; ``Scorer.score_all`` turns it
into a score of 0 whose detail says why.

``time_limit`` is the one wall-clock limit on a block of Python: rendering a suite's
templates (``RENDER_WALL_S``) and ``check-generator``'s call of a user's decoding loop
(re-raised every second, a BaseException, a hard exit in the command's own process).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator

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


class TimeLimit:
    """The one wall-clock limit on a block of Python (``with time_limit(...)``); see ``time_limit``.

    An instance is used once. ``fired`` counts the interruptions it raised."""

    def __init__(self, seconds: float | None, what: str, *,
                 error: Callable[[str], BaseException] = TooMuchWork, repeat: float | None = None,
                 last_words: str | None = None, grace: float = 5.0, exit_code: int = 2,
                 signals: bool | None = None):
        if seconds is not None and not seconds > 0:
            raise ValueError(f"a time limit must be a positive number of seconds, not {seconds!r}")
        if repeat is not None and not repeat > 0:
            raise ValueError(f"repeat must be a positive number of seconds, not {repeat!r}")
        # 11 days or more (beyond what setitimer takes everywhere) is no limit
        self.seconds = None if seconds is None or not seconds < 1e6 else float(seconds)
        self.what, self.error, self.repeat = what, error, repeat
        self.last_words, self.grace, self.exit_code = last_words, grace, exit_code
        self.signals = signals
        self.fired = 0
        self._events = 0  # trace mode: lines seen, so the clock is read every 32nd
        self.mode = "off"  # "alarm" (SIGALRM), "trace" (sys.settrace) or "off" (no limit)
        self._done = False
        self._due: float | None = None  # when it raises next (monotonic)
        self._outer_at: float | None = None  # alarm mode: when the alarm found armed goes off
        self._outer_interval = 0.0
        self._outer_handler: Any = None
        self._previous_tracer: Any = None
        self._outer_limit: TimeLimit | None = None
        self._frame: Any = None
        self._frame_tracer: Any = None
        self._line = 0
        self._stop: Any = None

    def message(self) -> str:
        return f"{self.what} took more than {self.seconds:g} s"

    # -- entering and leaving -------------------------------------------------------------
    def __enter__(self) -> "TimeLimit":
        import sys

        if self.seconds is None:
            return self
        try:
            self._enter(sys._getframe(1))
        except BaseException:  # an enclosing limit went off meanwhile: undo what was set up
            self._done = True
            self._leave()
            raise
        return self

    def _enter(self, frame: Any) -> None:
        import signal
        import sys
        import threading

        self.start = time.monotonic()
        self._due = self.start + self.seconds
        signals = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        if signals and self.signals is not False:
            old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, 0)  # nothing fires meanwhile
            now = time.monotonic()
            self._outer_at = now + old_delay if old_delay > 0 else None
            self._outer_interval = old_interval
            self._outer_handler = signal.signal(signal.SIGALRM, self._on_alarm)
            self.mode = "alarm"
            self._rearm(now)
        else:
            self._previous_tracer = sys.gettrace()
            outer = getattr(self._previous_tracer, "__self__", None)
            self._outer_limit = outer if isinstance(outer, TimeLimit) else None
            self._frame = frame  # the block's own lines are watched too
            self._frame_tracer = frame.f_trace
            self._line = frame.f_lineno  # the `with` line: leaving runs there, unprotected
            self.mode = "trace"
            sys.settrace(self._trace)
            frame.f_trace = self._trace
        if self.last_words is not None:
            self._stop = threading.Event()
            threading.Thread(target=self._watch, name="harness-time-limit", daemon=True).start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._done = True  # first: from here on the handler and the tracer do nothing
        if self.seconds is None:
            return
        self._leave()
        if exc_type is None and time.monotonic() - self.start > self.seconds:
            # it ran past the limit and nothing stopped it (one long call in C, an interruption
            # swallowed): it still took too long
            raise self.error(self.message())

    def _leave(self) -> None:
        import signal
        import sys

        if self.mode == "alarm":
            signal.setitimer(signal.ITIMER_REAL, 0)
            handler = self._outer_handler
            signal.signal(signal.SIGALRM, signal.SIG_DFL if handler is None else handler)
            if self._outer_at is not None:  # the alarm found armed: what is left of it, and its interval
                signal.setitimer(signal.ITIMER_REAL, max(self._outer_at - time.monotonic(), 1e-4),
                                 self._outer_interval)
        elif self.mode == "trace":
            sys.settrace(self._previous_tracer)
            self._frame.f_trace = self._frame_tracer
            self._frame = None
        if self._stop is not None:
            self._stop.set()

    # -- raising ----------------------------------------------------------------------------
    def _expire(self, now: float) -> BaseException:
        self.fired += 1
        self._due = now + self.repeat if self.repeat else None
        return self.error(self.message())

    def _rearm(self, now: float) -> None:
        import signal

        due = [t for t in (self._due, self._outer_at) if t is not None]
        signal.setitimer(signal.ITIMER_REAL, max(min(due) - now, 1e-4) if due else 0)

    def _on_alarm(self, signum: int, frame: Any) -> None:
        import signal

        if self._done:
            return
        if frame is not None and frame.f_code in _OWN_CODE:  # entering or leaving: in a moment
            signal.setitimer(signal.ITIMER_REAL, 1e-3)
            return
        now = time.monotonic()
        if self._outer_at is not None and now >= self._outer_at:
            self._outer_fires(signum, frame)
            now = time.monotonic()
        if self._due is not None and now >= self._due:
            error = self._expire(now)
            self._rearm(now)
            raise error
        self._rearm(now)

    def _outer_fires(self, signum: int, frame: Any) -> None:
        """The alarm that was armed before this limit is due: its handler runs as if alone
        (the timer as the kernel leaves it: its interval re-armed), and whatever it arms next
        is kept as its next time."""
        import signal

        handler, interval = self._outer_handler, self._outer_interval
        signal.setitimer(signal.ITIMER_REAL, interval, interval)  # 0: disarmed, as after a one-shot
        try:
            if callable(handler):
                handler(signum, frame)
            elif handler != signal.SIG_IGN:  # the default action: SIGALRM ends the process
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                signal.raise_signal(signal.SIGALRM)
        finally:
            delay, interval = signal.setitimer(signal.ITIMER_REAL, 0)
            now = time.monotonic()
            self._outer_at, self._outer_interval = (now + delay if delay > 0 else None), interval
            if not self._done:
                self._rearm(now)

    def _trace(self, frame: Any, event: str, arg: Any) -> Any:
        self._events += 1
        if self._events & 31 and event != "call":  # the clock every 32 lines: the tracer is per line
            return self._trace
        if self._done or frame.f_code in _OWN_CODE:
            return None
        if frame is self._frame and frame.f_lineno == self._line:
            # the code that calls __exit__ on a normal exit is on the `with` line and outside
            # the block's exception handling: raising there would skip __exit__ (this tracer
            # would stay). Nothing is raised there, for this limit or an enclosing one.
            return self._trace
        now = time.monotonic()
        if self._due is not None and now >= self._due:
            raise self._expire(now)
        if self._outer_limit is not None:  # an enclosing limit on this thread keeps its deadline
            self._outer_limit._trace(frame, event, arg)
        return self._trace

    def _watch(self) -> None:
        """The hard exit: a thread of its own, so neither a loop that swallows every
        interruption nor one blocked where no signal or tracer reaches it outlives it."""
        import os

        if self._stop.wait(self.seconds + self.grace) or self._done:
            return
        try:
            os.write(2, (self.last_words + "\n").encode("utf-8", "replace"))
        finally:
            os._exit(self.exit_code)


_OWN_CODE = frozenset(f.__code__ for f in (TimeLimit.__enter__, TimeLimit._enter, TimeLimit.__exit__,
                                          TimeLimit._leave, TimeLimit._rearm,
                                          TimeLimit._on_alarm, TimeLimit._outer_fires, TimeLimit._trace,
                                          TimeLimit._expire, TimeLimit.message))


def time_limit(seconds: float | None, what: str, *, error: Callable[[str], BaseException] = TooMuchWork,
               repeat: float | None = None, last_words: str | None = None, grace: float = 5.0,
               exit_code: int = 2, signals: bool | None = None) -> TimeLimit:
    """``with time_limit(seconds, what):`` raises ``error(f"{what} took more than {seconds} s")``
    (``TooMuchWork`` by default) in the block once ``seconds`` of wall clock have passed.
    ``seconds=None`` (or 11 days and more) is no limit. It interrupts Python-level loops
    (a template's nested ``for``, a user's decoding loop); a block that ends normally but
    late (one long call in C) raises the same on leaving it.

    - ``error``: the exception class (or any callable taking the message). A
      ``BaseException`` subclass passes through a loop's ``except Exception``.
    - ``repeat``: raise again every ``repeat`` seconds while the block still runs (a loop that
      catches the first interruption, even with ``except BaseException``, meets the next).
    - ``last_words``: when the block still runs ``grace`` seconds after the deadline, write
      this line to stderr (fd 2) and end the process with ``exit_code`` (``os._exit``: no
      cleanup). A watchdog thread does it, on any thread, so only for a process that is
      ours to end (the ``harness`` command, not a host calling the Python API).

    How, by thread:

    - **Main thread on POSIX**: SIGALRM via ``ITIMER_REAL``. An alarm already armed (an
      enclosing ``time_limit``, a test harness's ``signal.alarm``) keeps its deadline: the
      timer is armed for whichever comes first, the earlier handler runs at its own time
      inside the block, and on leaving, that handler is restored and the timer re-armed with
      what is left of it (and its interval).
    - **Any other thread, or no ``setitimer`` (Windows)**: signals cannot reach the block
      (``signal.signal`` raises ValueError off the main thread), so a trace function
      (``sys.settrace``, this thread only) checks the clock at each call and every 32nd line
      of the block (but the ``with`` line itself) and of what it calls, and raises there. An enclosing traced
      limit on the same thread is checked too; a debugger's or coverage's tracer is put back
      after (it sees nothing of the block). A block blocked in one call that does not return
      to Python (a ``sleep``, a socket read) is interrupted only when that call returns,
      while ``last_words`` still ends the process at its time (the watchdog needs no signal).
      ``signals=False`` asks for this mode on the main thread too.
    """
    return TimeLimit(seconds, what, error=error, repeat=repeat, last_words=last_words, grace=grace,
                     exit_code=exit_code, signals=signals)


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


__all__ = ["RENDER_WALL_S", "MAX_RENDER_CHARS", "time_limit", "TimeLimit", "sandbox_environment", "REGEX_TIMEOUT_S", "ITEM_BUDGET_S", "item_budget", "MAX_JSON_DEPTH", "MAX_JSON_CHARS", "TooMuchWork", "compile_regex",
           "search", "json_depth", "check_json_text", "loads"]
