"""Reading input files: JSON with one-line errors, and content digests (fingerprints).

Every module that fingerprints a file (weights, adapters, training data, stored
completions) uses ``file_digest``, so the same bytes always give the same identity.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import HarnessError

__all__ = ["read_json", "read_input", "file_digest"]


def read_input(path: str | Path, what: str = "file") -> bytes:
    """The bytes of an input file, which must be a regular file: a FIFO, a device
    (``/dev/zero``) or a folder is a HarnessError, never a read that hangs or never ends.
    The file is opened non-blocking and checked on the open descriptor (no race)."""
    import os
    import stat

    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise HarnessError(f"{what} not found", path=p) from None
    except IsADirectoryError:
        raise HarnessError(f"{what} is a folder", path=p, hint="name a file") from None
    except OSError as exc:
        raise HarnessError(f"cannot read the {what}: {exc.strerror}", path=p) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise HarnessError(f"{what} is a folder", path=p, hint="name a file")
        if not stat.S_ISREG(mode):
            raise HarnessError(f"{what} is not a regular file (a FIFO, socket or device)", path=p,
                               hint="name a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            return fh.read()
    except OSError as exc:
        raise HarnessError(f"cannot read the {what}: {exc.strerror}", path=p) from None
    finally:
        if fd >= 0:
            os.close(fd)


def read_json(path: str | Path, what: str = "file") -> dict:
    """A JSON object from ``path``; a missing, unreadable or malformed file is a HarnessError."""
    p = Path(path)
    try:
        text = read_input(p, what).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(f"cannot read {what}: {exc}", path=p) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"invalid JSON: {exc.msg}", path=p, line=exc.lineno) from None
    except RecursionError:
        raise HarnessError("JSON nested too deeply", path=p) from None
    except ValueError as exc:  # e.g. a 5,000-digit number
        raise HarnessError(f"unreadable JSON: {exc}", path=p) from None
    if not isinstance(data, dict):
        raise HarnessError(f"expected a JSON object in the {what}", path=p)
    return data


def file_digest(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (weights can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
