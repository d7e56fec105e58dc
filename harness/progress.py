"""Live progress on stderr for long work (generation, training): done/total, tokens/s, ETA.

On a terminal one line is redrawn in place (at most ten times a second); when stderr is
not a terminal (CI logs, files) a plain line is printed every ``HARNESS_PROGRESS_SECONDS``
seconds (default 10) and at the end, so logs show progress without one line per step.
``--quiet`` turns it off.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, TextIO

REDRAW_SECONDS = 0.1


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("HARNESS_PROGRESS_SECONDS", "10")))
    except ValueError:
        return 10.0


class Progress:
    """One piece of long work: ``update(done, tokens)`` as it advances, ``close()`` at the end.

    ``max_tokens`` (per unit of work, when known) makes the ETA move while a batch of
    items decodes together and none has finished yet.
    """

    def __init__(self, total: int, label: str = "", unit: str = "items", *, enabled: bool = True,
                 max_tokens: int | None = None, initial: int = 0, stream: TextIO | None = None,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.total, self.label, self.unit = total, label, unit
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.tty = self.enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.max_tokens = max_tokens
        self.interval = _interval() if interval is None else interval
        self.clock = clock
        self.start = clock()
        self._last_draw = self.start if not self.tty else float("-inf")
        self._drawn = False
        self.initial = self.done = initial  # a resumed run: work before this one does not count for ETA
        self.tokens = 0

    def fraction(self) -> float:
        """Share of this run's work done (what the ETA extrapolates from)."""
        todo = self.total - self.initial
        frac = (self.done - self.initial) / todo if todo > 0 else 1.0
        if self.max_tokens and todo > 0:
            frac = max(frac, min(1.0, self.tokens / (todo * self.max_tokens)))
        return frac

    def line(self) -> str:
        elapsed = self.clock() - self.start
        parts = [f"{self.label}  " if self.label else "",
                 f"{self.done}/{self.total} {self.unit}"]
        if self.tokens and elapsed > 0:
            parts.append(f"  {self.tokens / elapsed:,.0f} tok/s")
        frac = self.fraction()
        if self.done >= self.total:
            parts.append(f"  done in {_duration(elapsed)}")
        elif frac > 0 and elapsed > 0:
            parts.append(f"  ETA {_duration(elapsed * (1 - frac) / frac)}")
        else:
            parts.append("  ETA --")
        from .errors import printable  # suite and model names come from files

        return printable("".join(parts))

    def update(self, done: int, tokens: int | None = None) -> None:
        self.done = done
        if tokens is not None:
            self.tokens = tokens
        if not self.enabled:
            return
        now = self.clock()
        finished = done >= self.total
        if self.tty:
            if finished or now - self._last_draw >= REDRAW_SECONDS:
                self.stream.write("\r" + self.line() + "\x1b[K")
                self.stream.flush()
                self._last_draw, self._drawn = now, True
        elif now - self._last_draw >= self.interval and not finished:
            print(self.line(), file=self.stream, flush=True)
            self._last_draw = now

    def __call__(self, done: int, total: int, tokens: int) -> None:
        """The engine's progress callback: (items done, items in all, tokens so far)."""
        self.update(done, tokens)

    def clear(self) -> None:
        """Take the redrawn line off the terminal (before printing something else)."""
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def close(self) -> None:
        """End of the work: a terminal's line is cleared; a log gets the final line."""
        if not self.enabled:
            return
        if self.tty:
            self.clear()
        elif self.clock() - self.start >= self.interval:  # short work needs no progress line
            print(self.line(), file=self.stream, flush=True)
