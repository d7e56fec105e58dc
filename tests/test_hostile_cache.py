"""A corrupt, truncated, foreign or read-only cache is never fatal (issue 10 item 4)."""

from __future__ import annotations

import sqlite3

import pytest

from harness.cache import CompletionCache, check_cache
from harness.generation import Completion
from hostile_util import cli


def completion(text: str = "hi") -> Completion:
    return Completion(output=text, finish_reason="stop", prompt_tokens=3, output_tokens=1,
                      output_token_ids=[5], stopped_by="eos")


def filled(folder) -> CompletionCache:
    cache = CompletionCache(folder)
    cache.put_many({"k1": completion("one"), "k2": completion("two")})
    cache.close()
    return cache


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty-header", "foreign-schema"])
def test_a_broken_cache_is_moved_aside_with_a_warning(tmp_path, capsys, damage):
    db = filled(tmp_path).path
    if damage == "garbage":
        db.write_bytes(b"this is not sqlite at all" * 100)
    elif damage == "truncated":
        data = db.read_bytes()
        db.write_bytes(data[:len(data) // 2] if len(data) > 8192 else data[:100])
    elif damage == "empty-header":
        db.write_bytes(b"SQLite format 3\x00" + b"\x00" * 84)
    else:
        db.unlink()
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE completions (id INTEGER, blob BLOB)")
        con.commit()
        con.close()
    for extra in ("-wal", "-shm"):
        p = tmp_path / f"completions.sqlite{extra}"
        if p.exists():
            p.unlink()
    capsys.readouterr()
    cache = CompletionCache(tmp_path)
    cache.put_many({"k3": completion("three")})
    found = cache.get_many(["k1", "k3"])
    assert "k3" in found
    err = capsys.readouterr().err
    if damage != "truncated" or "moved aside" in err:  # a cut-off WAL database can still be whole
        assert "moved aside" in err and str(db) in err
        assert list(tmp_path.glob("completions.sqlite.broken-*"))
    cache.close()


def test_a_read_only_cache_is_bypassed_with_a_warning(tmp_path, capsys, monkeypatch):
    filled(tmp_path)
    real = sqlite3.connect

    def readonly(path, *a, **k):  # what a read-only file or mount does, also under root
        con = real(f"file:{path}?mode=ro", *a, uri=True, **{k_: v for k_, v in k.items() if k_ != "uri"})
        return con

    monkeypatch.setattr(sqlite3, "connect", readonly)
    capsys.readouterr()
    cache = CompletionCache(tmp_path)
    assert cache.disabled and "running without the cache" in capsys.readouterr().err
    assert cache.get_many(["k1"]) == {}
    cache.put_many({"k9": completion()})  # no error


def test_an_unreadable_entry_is_a_miss(tmp_path):
    cache = filled(tmp_path)
    con = sqlite3.connect(cache.path)
    con.execute("UPDATE completions SET value = '{not json' WHERE key = 'k1'")
    con.commit()
    con.close()
    fresh = CompletionCache(tmp_path)
    assert set(fresh.get_many(["k1", "k2"])) == {"k2"}


def test_doctor_reports_a_corrupt_cache_and_cache_clear_removes_it(tmp_path, capsys):
    db = filled(tmp_path).path
    assert check_cache(tmp_path)[0] is True
    db.write_bytes(b"garbage" * 1000)
    code, out, _ = cli(capsys, "doctor", "--cache-dir", str(tmp_path))
    assert code == 1 and "cache clear" in out and str(db) in out
    code, out, _ = cli(capsys, "cache", "clear", "--cache-dir", str(tmp_path))
    assert code == 0 and not db.exists()
    assert check_cache(tmp_path) == (True, f"{db} (empty: no database yet)")
