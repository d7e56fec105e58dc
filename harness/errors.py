"""Errors the CLI turns into one line and an exit code that means one thing.

``HarnessError``: bad input a user can fix (exit 2). ``RunFailed``: the input was fine but
the run failed its own check, as a failed gate does (exit 1): a diverging training run.
``CollectiveFailed``: a distributed run could not finish (exit 3, no verdict). Anything
else that escapes is a bug in the harness (exit 3).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path


def terminal(text: object) -> str:
    """``printable`` for multi-line output: newlines and tabs kept, every other control escaped."""
    return "\n".join(printable(line).replace("\\x09", "\t") for line in str(text).split("\n"))


def printable(text: object) -> str:
    """Text from outside (model names, ids, outputs, paths) made safe for a terminal line:
    control characters (ESC, NUL, newlines, C1, bidi overrides) become visible escapes, and so
    do lone surrogates (a file name that is not UTF-8), which a strict UTF-8 stdout refused."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") and ch not in "\u200d":
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


class HarnessError(Exception):
    """Bad input: names where (file, line or field) and what to do about it."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line else "")
        if self.field:
            where = f"{where} [{self.field}]" if where else f"[{self.field}]"
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return printable(text)


class RunFailed(HarnessError):
    """The run failed its own check (exit 1, like a failed gate), not the user's input:
    training whose loss became NaN or infinite. Says where and what to do, in one line."""


class CollectiveFailed(Exception):
    """A rank of a distributed eval gave up on a collective: it waited past its deadline, or
    MLX lost the connection to another rank. Exit 3 as for an internal error, since neither
    the model (a gate, 1) nor the user's input (2) is at fault and there is no verdict: CI
    reading 0/1/2/3 sees "the tool did not finish", which a rerun may fix. The message is
    the whole line (which rank, which collective, how long, why, what to do)."""

    exit_code = 3

    def __init__(self, message: str):
        self.message = printable(message)
        super().__init__(self.message)
