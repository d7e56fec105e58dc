"""Reading input files: one checked open (``open_regular``), JSON with one-line errors, and
content digests (fingerprints).

Every module that fingerprints a file (weights, adapters, training data, stored
completions) uses ``file_digest``, or ``bytes_digest`` of the bytes it parsed, so the same
bytes always give the same identity.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from .errors import HarnessError

__all__ = ["read_json", "read_input", "open_regular", "NotARegularFile", "bytes_digest", "file_digest",
           "require_utf8_name", "refuse_link_to_nothing", "resolve_path"]


def require_utf8_name(path: str | Path, what: str, field: str | None = None) -> None:
    """Refuse a path that is not UTF-8 text (a name written in another encoding: b"s\\xff.yaml",
    held by Python as a lone surrogate). Suites, models, adapters and the output folder are
    named in results.json, the reports and junit.xml, which are UTF-8: writing them failed
    after the whole run had generated (an internal error, nothing written), and mlx could
    not open such a model ("std::bad_cast ... corrupt")."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise HarnessError(f"the {what}'s path is not UTF-8 text", path=path, field=field,
                           hint="rename it (or the folder holding it) with UTF-8 characters") from None


def refuse_link_to_nothing(path: str | Path, what: str, hint: str) -> None:
    """Refuse a symbolic link whose target is missing or that loops, in those words: read or
    resolved, it was "not found" of a name that is there, or RuntimeError (a loop, before
    Python 3.13), an internal error."""
    if os.path.islink(path) and not os.path.exists(path):
        raise HarnessError(f"{what} is a symbolic link to nothing (its target is missing, or the link loops)",
                           path=path, hint=hint)


def resolve_path(path: str | Path, what: str, hint: str, field: str | None = None) -> Path:
    """``path.resolve()``; a symbolic link on the way that loops, the path's own or a
    folder's above it, is a HarnessError naming the path (``resolve`` raised RuntimeError
    before Python 3.13, OSError since: an internal error wherever it was not caught)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        raise HarnessError(f"{what} is, or lies under, a symbolic link that loops", path=path, field=field,
                           hint=hint) from None


class NotARegularFile(OSError):
    """An input path that is a FIFO, socket or device (``open_regular``)."""


def open_regular(path: str | Path) -> BinaryIO:
    """A regular file opened for reading, checked on the open descriptor (no race between a
    check and the open). Opened non-blocking, so a FIFO does not block the open; a FIFO or
    device is never read (one blocked the run forever, the other never ended). Raises
    ``FileNotFoundError``, ``IsADirectoryError`` for a folder, ``NotARegularFile``, or
    another ``OSError``: every reader of input files turns them into its own one-line error."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        if not stat.S_ISREG(mode):
            raise NotARegularFile(errno.EINVAL, "not a regular file (a FIFO, socket or device)", str(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def read_input(path: str | Path, what: str = "file", max_bytes: int | None = None,
               too_large_hint: str | None = None) -> bytes:
    """The bytes of an input file, which must be a regular file (``open_regular``): a FIFO, a
    device (``/dev/zero``) or a folder is a HarnessError, never a read that hangs or never
    ends. ``max_bytes``: a larger file is a HarnessError (``too_large_hint`` its fix), from its
    size before anything is read (it read up to the limit first: 1 GiB for a suite's data),
    and from what is read, so a file that grows while read is refused too."""
    p = Path(path)

    def too_large() -> HarnessError:
        return HarnessError(f"{what} is larger than {max_bytes / (1 << 20):g} MiB", path=p, hint=too_large_hint)

    try:
        with open_regular(p) as fh:
            if max_bytes is not None and os.fstat(fh.fileno()).st_size > max_bytes:
                raise too_large()
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise HarnessError(f"{what} not found", path=p) from None
    except IsADirectoryError:
        raise HarnessError(f"{what} is a folder", path=p, hint="name a file") from None
    except NotARegularFile:
        raise HarnessError(f"{what} is not a regular file (a FIFO, socket or device)", path=p,
                           hint="name a regular file") from None
    except OSError as exc:
        raise HarnessError(f"cannot read the {what}: {exc.strerror}", path=p) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise too_large()
    return data


FLOAT_MAX = sys.float_info.max
# \ud800-\udfff written as an escape; searched for without copying the text (text.lower()
# copied every results.json read, hundreds of MB for a large run)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e309 parses as inf
        raise ValueError(f"{text[:24]} is out of range")
    return value


def _finite_int(text: str) -> int:
    value = int(text)
    if abs(value) > FLOAT_MAX:  # float(value) would raise OverflowError wherever it is used
        raise ValueError(f"{text[:24]}... is out of range")
    return value


def read_json(path: str | Path, what: str = "file", finite: bool = False) -> dict:
    """A JSON object from ``path``; a missing, unreadable or malformed file is a HarnessError.

    ``finite``: the file holds numbers the harness computes with (a run, a baseline), so
    NaN, Infinity, 1e309 and integers beyond a float are refused here, with the file named,
    instead of failing deep inside a statistic; so is an unpaired UTF-16 surrogate
    (``"\\ud800"``), which no output can be written with."""
    p = Path(path)
    try:
        text = read_input(p, what).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(f"cannot read {what}: {exc}", path=p) from None
    hooks = {"parse_constant": _no_constant, "parse_float": _finite_float, "parse_int": _finite_int} if finite else {}
    try:
        data = json.loads(text, **hooks)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"invalid JSON: {exc.msg}", path=p, line=exc.lineno) from None
    except RecursionError:
        raise HarnessError("JSON nested too deeply", path=p) from None
    except ValueError as exc:  # e.g. a 5,000-digit number
        raise HarnessError(f"unreadable JSON: {exc}", path=p) from None
    if not isinstance(data, dict):
        raise HarnessError(f"expected a JSON object in the {what}", path=p)
    if finite and _SURROGATE_ESCAPE.search(text):  # an escaped UTF-16 surrogate, perhaps unpaired
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise HarnessError("a string holds an unpaired surrogate (\\ud800-\\udfff), which is not Unicode text",
                               path=p, hint="write the character itself, or a valid pair") from None
    return data


def bytes_digest(data: bytes) -> str:
    """``file_digest`` of a file's bytes already read: a file parsed and fingerprinted from
    one read, so the fingerprint is of the bytes that were used (read twice, it could be of
    another version of the file)."""
    return hashlib.sha256(data).hexdigest()


def file_digest(path: str | Path) -> str:
    """Hex sha256 of a regular file's bytes, read in 1 MiB blocks (weights can be large).

    Opened by ``open_regular``: callers list regular files first, but a FIFO put in a file's
    place between the listing and the open blocked the run forever, and a device never
    ended. Such a file is an OSError naming it, which the callers turn into their one-line
    errors."""
    h = hashlib.sha256()
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
