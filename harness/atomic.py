"""Atomic writes: a reader sees the old file (or folder) or the whole new one, never half.

- ``write_bytes``/``write_text``/``write_json``: one file, through a temporary file
  beside it and a rename.
- ``write_folder``: a report folder's set of files (results.json, index.html,
  junit.xml, summary.md) as one: written into a temporary folder beside it, then swapped
  into place with one ``renameat2(RENAME_EXCHANGE)`` on Linux (``renamex_np`` on macOS;
  elsewhere two renames), so a kill leaves the old set or the new one, never a new
  results.json beside an old index.html. Other files already in the folder are kept,
  except those named in ``retire`` that still hold the given bytes: a run's
  ``run-in-progress.json`` leaves in the same swap that brings its results in.

Temporary names carry the writer's pid; one left by a killed writer (pid gone) is
removed by the next write beside it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# write_folder's temporaries: .NAME.PID.RANDOM.tmp (the new folder) and .NAME.PID.RANDOM.old
# (the one it replaced); a writer killed mid-swap leaves one holding a complete run.
_TEMP_NAME = re.compile(r"^\..+\.\d+\..+\.(tmp|old)$")


def is_writer_temp(name: str) -> bool:
    """Whether a file or folder name is one of this module's temporaries (readers skip them)."""
    return bool(_TEMP_NAME.match(name))


def clean_stale(folder: Path, name: str) -> None:
    """Remove temporaries of ``name`` in ``folder`` left by writers that were killed."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.(\d+)\..*\.(tmp|old)$")
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        m = pattern.match(entry.name)
        if not m or _alive(int(m.group(1))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()
        except OSError:
            pass


def write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    if os.path.lexists(path) and not path.is_file():  # never rename a file over /dev/null or a folder
        from .errors import HarnessError

        raise HarnessError("cannot write here: not a regular file", path=path, hint="name a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json_text(obj))


# --- a folder's set of files at once ----------------------------------------------------

def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the OS or filesystem cannot."""
    libc = _libc()
    if libc is None:
        return False
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        AT_FDCWD, RENAME_EXCHANGE = -100, 2
        rc = libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        RENAME_SWAP = 2
        rc = libc.renamex_np(os.fsencode(a), os.fsencode(b), RENAME_SWAP)
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_folder(out_dir: str | Path, files: dict[str, str | bytes],
                 retire: dict[str, bytes] | None = None) -> None:
    """Put ``files`` (name -> content) into ``out_dir`` as one set (see the module doc).
    ``retire`` (name -> content): a file of the folder left out of the new set when it
    still holds exactly that content (another writer's is kept)."""
    retire = retire or {}
    out = Path(out_dir)
    if out.is_symlink():
        out = out.resolve()
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    clean_stale(parent, out.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=parent))
    try:
        if out.is_dir():  # keep what else the folder holds (hard links: no copying)
            for entry in out.iterdir():
                if entry.name in files or (entry.name in retire and _holds(entry, retire[entry.name])):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.copytree(entry, tmp / entry.name, symlinks=True, copy_function=_link_or_copy)
                else:
                    _link_or_copy(entry, tmp / entry.name)
        for name, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp / name, 0o644)
        os.chmod(tmp, 0o755)
        _fsync_dir(tmp)
        if not out.exists():
            os.rename(tmp, out)
        elif _exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old set
        else:
            old = parent / f".{out.name}.{os.getpid()}.{tmp.name.rsplit('.', 2)[-2]}.old"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _holds(path: Path, content: bytes) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and path.read_bytes() == content
    except OSError:
        return False


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


__all__ = ["write_bytes", "write_text", "write_json", "json_text", "write_folder", "clean_stale"]
