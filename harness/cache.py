"""Content-addressed completion cache (SQLite).

The key is a hash of everything that changes an output: the model's fingerprint (weights,
tokenizer, chat template), the adapter's fingerprint, the prompt's token ids (so the
rendered prompt and template are covered), the generation settings, and the mlx and
mlx-lm versions. An unchanged re-run is then served from disk, a changed adapter never
shares an entry with the base, and a new mlx-lm release regenerates.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Iterable

from .generation import Completion


def default_cache_dir() -> Path:
    env = os.environ.get("HARNESS_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mlx-harness"))


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"mlx": version("mlx"), "mlx-lm": version("mlx-lm")}


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


class CompletionCache:
    """A key -> completion store; safe for concurrent runs (WAL, one transaction per batch)."""

    def __init__(self, directory: str | Path | None = None):
        self.path = Path(directory or default_cache_dir()) / "completions.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
            " created REAL DEFAULT (unixepoch('subsec')))")
        self._db.commit()
        self.versions = _versions()

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        keys = list(keys)
        found: dict[str, Completion] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self._db.execute(
                f"SELECT key, value FROM completions WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            for key, value in rows:
                c = Completion.from_json(json.loads(value))
                c.cached = True
                found[key] = c
        return found

    def put_many(self, entries: dict[str, Completion]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO completions (key, value) VALUES (?, ?)",
                [(k, json.dumps(c.to_json() | {"cached": False})) for k, c in entries.items()])

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        self._db.close()


WRITE_EVERY = 64  # items per transaction at most
WRITE_SECONDS = 1.0  # and at least one commit a second while items finish


class WriteBehind:
    """Commits completions as they finish, a batch per transaction.

    A batch is committed when ``every`` items are waiting or ``seconds`` have passed since
    the last commit (so a slow suite still lands item by item and a fast one does not pay a
    transaction per item); ``flush`` commits the rest. A run killed mid-suite then resumes
    from everything committed so far.
    """

    def __init__(self, cache: CompletionCache, every: int | None = None, seconds: float | None = None):
        import time

        self._clock = time.monotonic
        self.cache = cache
        self.every = WRITE_EVERY if every is None else every
        self.seconds = WRITE_SECONDS if seconds is None else seconds
        self.pending: dict[str, Completion] = {}
        self.written = 0
        self._last = self._clock()

    def add(self, key: str, completion: Completion) -> None:
        self.pending[key] = completion
        if len(self.pending) >= self.every or self._clock() - self._last >= self.seconds:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.cache.put_many(self.pending)
            self.written += len(self.pending)
            self.pending = {}
        self._last = self._clock()
