"""Content-addressed completion cache (SQLite).

The key is a hash of everything that changes an output: the model's fingerprint (weights,
tokenizer, chat template), the adapter's fingerprint, the prompt's token ids (so the
rendered prompt and template are covered), the generation settings, the mlx and mlx-lm
versions and the harness engine's epoch. An unchanged re-run is then served from disk, a
changed adapter never shares an entry with the base, a new mlx-lm release regenerates, and
so does a harness fix that changed what the engine generates.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Iterable

from .generation import Completion


def default_cache_dir() -> Path:
    env = os.environ.get("HARNESS_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mlx-harness"))


# Raised when a harness fix changes what a model generates under an unchanged key, so that
# entries written by the defect are never served again. 2: DoRA and full adapters stayed on
# the base after their block (fixed 2026-12-03), and the base's completions that followed
# were the fine-tune's, stored under the base's key.
ENGINE_EPOCH = 2


def _versions() -> dict[str, str | int]:
    from importlib.metadata import version

    return {"mlx": version("mlx"), "mlx-lm": version("mlx-lm"), "harness-engine": ENGINE_EPOCH}


def completion_key(model_fingerprint: str, adapter_fingerprint: str | None,
                   prompt_ids: list[int], generation: dict, versions: dict | None = None) -> str:
    payload = {
        "model": model_fingerprint,
        "adapter": adapter_fingerprint,
        "prompt": prompt_ids,
        "generation": generation,
        "versions": versions or _versions(),
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def score_key(scorer: str, version: str, options: dict, model_fingerprint: str,
              adapter_fingerprint: str | None, items: list, versions: dict | None = None) -> str:
    """Key of one scorer's scores of a whole suite on one model: everything they are computed
    from (each item's case, prompt token ids and output), so any change recomputes them."""
    payload = {"kind": "scores", "scorer": scorer, "version": version, "options": options,
               "model": model_fingerprint, "adapter": adapter_fingerprint, "items": items,
               "versions": versions or _versions()}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return "scores:" + hashlib.sha256(blob).hexdigest()


_CORRUPT_CODES = {getattr(sqlite3, "SQLITE_CORRUPT", 11), getattr(sqlite3, "SQLITE_NOTADB", 26)}
_COLUMNS = {"key", "value", "created"}


def _warn(message: str) -> None:
    from .errors import printable

    print(f"harness: warning: {printable(message)}", file=sys.stderr, flush=True)


def _is_corrupt(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc).lower()
    return code in _CORRUPT_CODES or "malformed" in text or "not a database" in text


class CacheSchemaError(sqlite3.DatabaseError):
    """The file is an SQLite database, but not a completion cache."""


class CompletionCache:
    """A key -> completion store; safe for concurrent runs (WAL, one transaction per batch).

    A cache is never fatal: a corrupt, truncated or foreign database is moved aside (named
    in a warning) and a fresh one started; a database that cannot be written (read-only
    file or folder) is bypassed with a warning, and the run generates everything.
    """

    def __init__(self, directory: str | Path | None = None):
        self.path = Path(directory or default_cache_dir()) / "completions.sqlite"
        self.versions = _versions()
        self._db: sqlite3.Connection | None = None
        self.disabled: str | None = None  # why the cache is bypassed, if it is
        self._open(retry=True)

    # --- opening and recovering ----------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
                " created REAL DEFAULT (unixepoch('subsec')))")
            db.commit()
            columns = {row[1] for row in db.execute("PRAGMA table_info(completions)")}
            if not {"key", "value"} <= columns:
                raise CacheSchemaError(f"table `completions` has columns {sorted(columns)}, "
                                       f"not {sorted(_COLUMNS)}")
            db.execute("SELECT key, value FROM completions LIMIT 1").fetchall()
            db.execute("BEGIN IMMEDIATE")  # can we write? (a read-only file or mount says no here)
            try:
                db.execute("INSERT OR REPLACE INTO completions (key, value) VALUES ('', '')")
            finally:
                db.execute("ROLLBACK")
        except BaseException:
            db.close()
            raise
        return db

    def _open(self, retry: bool) -> None:
        try:
            self._db = self._connect()
        except CacheSchemaError as exc:
            self._recover(f"is not a completion cache ({exc})", retry)
        except (sqlite3.Error, OSError) as exc:
            if isinstance(exc, sqlite3.Error) and _is_corrupt(exc):
                self._recover(f"is corrupt ({exc})", retry)
            else:
                self._bypass(f"cannot be opened for writing ({exc})")

    def _recover(self, why: str, retry: bool) -> None:
        """Move the database (and its WAL files) aside and start a fresh one."""
        self._close_quietly()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.broken-{stamp}-{os.getpid()}")
        try:
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                extra = Path(str(self.path) + suffix)
                if extra.exists():
                    os.replace(extra, Path(str(aside) + suffix))
        except OSError as exc:
            self._bypass(f"{why}, and cannot be moved aside ({exc.strerror})")
            return
        _warn(f"completion cache {self.path} {why}: moved aside to {aside.name}; starting a fresh cache")
        if retry:
            self._open(retry=False)
        else:
            self._bypass(f"{why}, again after starting fresh")

    def _close_quietly(self) -> None:
        """Drop the connection; closing a broken database may itself fail."""
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._db = None

    def _bypass(self, why: str) -> None:
        self._close_quietly()
        self.disabled = why
        _warn(f"completion cache {self.path} {why}: running without the cache "
              f"(`harness cache clear`, or --cache-dir elsewhere)")

    def _failed(self, exc: sqlite3.Error) -> None:
        """A database error while running: corrupt -> moved aside and fresh; else bypassed."""
        if _is_corrupt(exc):
            self._recover(f"is corrupt ({exc})", retry=True)
        elif "locked" in str(exc).lower() or "busy" in str(exc).lower():
            _warn(f"completion cache {self.path} is busy ({exc}); these items are not cached")
        else:
            self._bypass(f"failed ({exc})")

    # --- use -------------------------------------------------------------------------

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        return self.get_many_with_status(keys)[0]

    def get_many_with_status(self, keys: Iterable[str]) -> tuple[dict[str, Completion], set[str]]:
        """The entries found, and the keys among them still ``unchecked``: written while
        their suite was generating, by a run that stopped before its integrity check."""
        keys = list(keys)
        found: dict[str, Completion] = {}
        unchecked: set[str] = set()
        if self._db is None:
            return found, unchecked
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                rows = self._db.execute(
                    f"SELECT key, value FROM completions WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk).fetchall()
                for key, value in rows:
                    try:
                        data = json.loads(value)
                        c = Completion.from_json(data)
                        c.output.encode("utf-8")  # a str of Unicode text (a tampered row may not be)
                    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
                        continue  # an unreadable entry is a miss: it is generated again
                    c.cached = True
                    found[key] = c
                    if data.get("unchecked") is True:
                        unchecked.add(key)
        except sqlite3.Error as exc:
            self._failed(exc)
            return {}, set()
        return found, unchecked

    def put_many(self, entries: dict[str, Completion], unchecked: bool = False) -> None:
        """Store completions; ``unchecked``: their integrity check has not run yet (a later
        run that finds them checks them before it trusts them)."""
        if self._db is None:
            return
        extra = {"cached": False, "prompt_token_ids": None} | ({"unchecked": True} if unchecked else {})
        try:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO completions (key, value) VALUES (?, ?)",
                    [(k, json.dumps(c.to_json() | extra)) for k, c in entries.items()])
        except sqlite3.Error as exc:
            self._failed(exc)

    def get_json(self, key: str):
        """A JSON value stored with ``put_json`` (scores), or None."""
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT value FROM completions WHERE key = ?", (key,)).fetchone()
            return json.loads(row[0]) if row else None
        except sqlite3.Error as exc:
            self._failed(exc)
        except (ValueError, RecursionError):
            pass  # an unreadable entry is a miss
        return None

    def put_json(self, key: str, value) -> None:
        if self._db is None:
            return
        try:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO completions (key, value) VALUES (?, ?)",
                                 (key, json.dumps(value)))
        except sqlite3.Error as exc:
            self._failed(exc)

    def mark_checked(self, keys: Iterable[str]) -> None:
        """Clear the ``unchecked`` mark of entries whose integrity check passed (in place:
        the completions are not written again)."""
        keys = list(keys)
        if self._db is None or not keys:
            return
        try:
            with self._db:
                self._db.executemany(
                    "UPDATE completions SET value = json_remove(value, '$.unchecked')"
                    " WHERE key = ? AND json_valid(value)", [(k,) for k in keys])
        except sqlite3.Error as exc:
            self._failed(exc)

    def delete_many(self, keys: Iterable[str]) -> None:
        """Drop entries (completions whose integrity check failed must not be served later)."""
        keys = list(keys)
        if self._db is None or not keys:
            return
        try:
            with self._db:
                self._db.executemany("DELETE FROM completions WHERE key = ?", [(k,) for k in keys])
        except sqlite3.Error as exc:
            self._failed(exc)

    def __len__(self) -> int:
        if self._db is None:
            return 0
        return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def check_cache(directory: str | Path | None = None) -> tuple[bool, str]:
    """(healthy, one line) about the cache database, without changing it (for `doctor`)."""
    path = Path(directory or default_cache_dir()) / "completions.sqlite"
    if not path.exists():
        return True, f"{path} (empty: no database yet)"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                return False, f"{path}: corrupt ({verdict}); run `harness cache clear`"
            columns = {row[1] for row in db.execute("PRAGMA table_info(completions)")}
            if not {"key", "value"} <= columns:
                return False, f"{path}: not a completion cache; run `harness cache clear`"
            n = db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return False, f"{path}: unreadable ({exc}); run `harness cache clear`"
    if not os.access(path.parent, os.W_OK) or not os.access(path, os.W_OK):
        return False, f"{path}: {n} entries, read-only (runs will bypass it)"
    return True, f"{path}: {n} entries, ok"


def cache_size(directory: str | Path | None = None) -> tuple[int, int]:
    """(bytes, files) of the cache database, its WAL files and databases moved aside."""
    folder = Path(directory or default_cache_dir())
    files = [f for f in folder.glob("completions.sqlite*") if f.is_file()] if folder.is_dir() else []
    return sum(f.stat().st_size for f in files), len(files)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in '90s', '30m', '12h', '7d', '2w' (HarnessError otherwise)."""
    import re

    from .errors import HarnessError

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(text).lower())
    if not m:
        raise HarnessError(f"--older-than {text!r} is not a duration", field="--older-than",
                           hint="a number and a unit: 90s, 30m, 12h, 7d or 2w")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def prune_cache(directory: str | Path | None, older_than_s: float, now: float | None = None) -> tuple[int, int]:
    """Delete entries written more than ``older_than_s`` seconds ago; (removed, kept).

    Raises sqlite3.Error for a database that cannot be pruned (corrupt, read-only)."""
    path = Path(directory or default_cache_dir()) / "completions.sqlite"
    if not path.exists():
        return 0, 0
    cutoff = (time.time() if now is None else now) - older_than_s
    db = sqlite3.connect(path, timeout=30)
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(completions)")}
        if "created" not in columns:
            raise sqlite3.DatabaseError("the cache has no `created` column (written by an older "
                                        "version); `harness cache clear` empties it")
        with db:
            removed = db.execute("DELETE FROM completions WHERE created < ?", (cutoff,)).rowcount
        kept = db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
        if removed:
            db.execute("VACUUM")  # give the space back
    finally:
        db.close()
    return removed, kept


def clear_cache(directory: str | Path | None = None) -> list[Path]:
    """Delete the cache database and the databases moved aside; returns what was removed."""
    folder = Path(directory or default_cache_dir())
    removed = []
    if folder.is_dir():
        for f in sorted(folder.glob("completions.sqlite*")):
            if f.is_file() or f.is_symlink():
                f.unlink()
                removed.append(f)
    return removed


WRITE_EVERY = 64  # items per transaction at most
WRITE_SECONDS = 1.0  # and at least one commit a second while items finish


class WriteBehind:
    """Commits completions as they finish, a batch per transaction.

    A batch is committed when ``every`` items are waiting or ``seconds`` have passed since
    the last commit (so a slow suite still lands item by item and a fast one does not pay a
    transaction per item); ``flush`` commits the rest. A run killed mid-suite then resumes
    from everything committed so far; with ``unchecked`` the entries say that their
    integrity check is still to come, so the resuming run checks them (``runner``).
    """

    def __init__(self, cache: CompletionCache, every: int | None = None, seconds: float | None = None,
                 unchecked: bool = False):
        import time

        self._clock = time.monotonic
        self.cache = cache
        self.every = WRITE_EVERY if every is None else every
        self.seconds = WRITE_SECONDS if seconds is None else seconds
        self.unchecked = unchecked  # committed before the suite's integrity check ran
        self.pending: dict[str, Completion] = {}
        self.written = 0
        self._last = self._clock()

    def add(self, key: str, completion: Completion) -> None:
        self.pending[key] = completion
        if len(self.pending) >= self.every or self._clock() - self._last >= self.seconds:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.cache.put_many(self.pending, unchecked=self.unchecked)
            self.written += len(self.pending)
            self.pending = {}
        self._last = self._clock()
