"""Per-item cache writes: completions are committed while a suite is still generating, so
an eval killed mid-suite takes what it finished from the cache when re-run."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

from harness import cache as cache_module
from harness.cache import CompletionCache, WriteBehind
from harness.generation import Completion
from harness.runner import generate_suite
from harness.suite import load_suite
from conftest import ROOT


class Killed(BaseException):
    pass


def committed_rows(directory) -> int:
    """Rows another process would see: read through a connection of its own."""
    with sqlite3.connect(directory / "completions.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]


def test_killed_eval_resumes_item_by_item(fixture_base, cache_dir, monkeypatch, capsys):
    suite = load_suite(ROOT / "suites" / "sql.yaml").limited(12)
    suite = dataclasses.replace(suite, generation=dataclasses.replace(suite.generation, batch_size=3))
    monkeypatch.setattr(cache_module, "WRITE_SECONDS", 0.0)  # commit each wave as it finishes
    full, _ = generate_suite(suite, fixture_base, fixture_base.fingerprint, None, None, live=False)

    cache = CompletionCache(cache_dir)
    seen = {}

    def kill_at_70_percent(done, total, tokens):
        if done >= 0.7 * total:
            seen["done"], seen["committed"] = done, committed_rows(cache_dir)
            raise Killed  # like SIGKILL: nothing after this point runs in generate()

    with pytest.raises(Killed):
        generate_suite(suite, fixture_base, fixture_base.fingerprint, None, cache, live=False,
                       progress=kill_at_70_percent)
    assert seen["committed"] == seen["done"] >= 9  # already on disk before the kill
    capsys.readouterr()

    again, integrity = generate_suite(suite, fixture_base, fixture_base.fingerprint, None, cache, live=False)
    log = capsys.readouterr().err
    assert f"12 items, {seen['done']} from cache, {12 - seen['done']} generated" in log
    assert f"{seen['done']} of the cached items are from a run that stopped before its integrity check" in log
    assert sum(c.cached for c in again) == seen["done"]
    assert [c.output for c in again] == [c.output for c in full]
    assert integrity["passed"] and "resumed item(s)" in integrity["detail"]
    checked_fresh = len(integrity_sample(12 - seen["done"], suite))
    assert integrity["checked"] == checked_fresh + len(integrity_sample(seen["done"], suite))

    # checked now: a third run serves everything from the cache and checks nothing again
    _, third = generate_suite(suite, fixture_base, fixture_base.fingerprint, None, cache, live=False)
    assert third["checked"] == 0 and "checked when they were generated" in third["detail"]
    cache.close()


def integrity_sample(n, suite):
    from harness import integrity

    return integrity.sample_indices(n, suite.integrity_samples)


def test_resumed_items_from_a_broken_engine_fail_the_check_and_leave_the_cache(
        fixture_base, cache_dir, monkeypatch, capsys):
    """A run killed before its integrity check left completions a broken engine wrote; the
    run that resumes must check them, fail, and drop them, not serve them as checked."""
    suite = load_suite(ROOT / "suites" / "sql.yaml").limited(6)
    suite = dataclasses.replace(suite, generation=dataclasses.replace(suite.generation, batch_size=3))
    monkeypatch.setattr(cache_module, "WRITE_SECONDS", 0.0)
    cache = CompletionCache(cache_dir)

    def kill_when_done(done, total, tokens):
        if done == total:
            raise Killed

    with pytest.raises(Killed):
        generate_suite(suite, fixture_base, fixture_base.fingerprint, None, cache, live=False,
                       progress=kill_when_done)
    with sqlite3.connect(cache_dir / "completions.sqlite") as db:  # what a broken engine would have written
        rows = db.execute("SELECT key, value FROM completions").fetchall()
        assert len(rows) == 6 and all(json.loads(v)["unchecked"] is True for _, v in rows)
        for key, value in rows:
            data = json.loads(value)
            data["output_token_ids"] = [(t + 7) % 1000 + 10 for t in data["output_token_ids"]]
            data["stopped_by"] = "length"
            db.execute("UPDATE completions SET value = ? WHERE key = ?", (json.dumps(data), key))
    capsys.readouterr()

    _, integrity = generate_suite(suite, fixture_base, fixture_base.fingerprint, None, cache, live=False)
    assert not integrity["passed"] and integrity["checked"] >= 1
    assert committed_rows(cache_dir) == 0  # nothing unchecked or failed is served later
    cache.close()


def test_write_behind_batches_transactions(cache_dir, monkeypatch):
    cache = CompletionCache(cache_dir)
    writer = WriteBehind(cache, every=3, seconds=3600)
    c = Completion(output="x", finish_reason="stop", prompt_tokens=1, output_tokens=1)
    writer.add("a", c)
    writer.add("b", c)
    assert committed_rows(cache_dir) == 0 and writer.written == 0
    writer.add("c", c)  # the third item commits the batch
    assert committed_rows(cache_dir) == 3
    later = writer._last + 3601
    monkeypatch.setattr(writer, "_clock", lambda: later)
    writer.add("d", c)  # `seconds` have passed since the last commit
    assert committed_rows(cache_dir) == 4 and writer.written == 4
    writer.flush()  # nothing pending: no transaction, no error
    assert set(cache.get_many(["a", "b", "c", "d"])) == {"a", "b", "c", "d"}
    cache.close()
