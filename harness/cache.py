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
