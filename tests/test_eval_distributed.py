"""Evaluation across processes: `mlx.launch -n 2 --backend ring` on localhost gives the
outputs of one process, rank 0 writes the cache and the reports, and results.json says
world_size 2."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.blas import preload_env
from harness.cache import CompletionCache
from harness.distributed import shard, unshard
from harness.run_marker import MARKER

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shards_cover_every_item_once_and_unshard_restores_order():
    for n, size in ((7, 2), (3, 4), (0, 2), (10, 3)):
        shares = [shard(n, r, size) for r in range(size)]
        assert sorted(j for s in shares for j in s) == list(range(n))
        assert unshard(shares, n) == list(range(n))


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    suites = [str(ROOT / "suites" / "sql.yaml"), str(ROOT / "suites" / "json_schema.yaml")]
    common = ["-m", "harness.cli", "eval", *suites, "--model", str(ROOT / "fixtures" / "model"),
              "--limit", "9", "--quiet"]
    launch = Path(sys.executable).with_name("mlx.launch")

    def launch_two() -> subprocess.CompletedProcess:
        shutil.rmtree(tmp_path / "two", ignore_errors=True)
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
        (tmp_path / "two").mkdir()  # a reused --out: rank 0 marks it, and its results retire the mark
        (tmp_path / "two" / "results.json").write_text("{}")
        args = [str(launch), "-n", "2", "--backend", "ring", "-p", str(free_port()), "--",
                sys.executable, *common, "--out", str(tmp_path / "two"), "--cache-dir", str(tmp_path / "cache")]
        # a session of its own: on a timeout the ranks go too (a hung rank outlived the launcher
        # and spun for the rest of the test run)
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=preload_env(), start_new_session=True)
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    try:
        two = launch_two()  # about 15 s
    except subprocess.TimeoutExpired:
        # Seen once (a fresh-clone nox -s tests, 2026-12-03): rank 0 wrote its report and exited, rank 1 spun at
        # 100% CPU in the ring backend's recv on the closed socket, inside an all_gather. That
        # is MLX's ring backend (ml-explore/mlx#4475: collectives that deadlock now and then;
        # #4060: a recv spinning on a peer that left), not an order of collectives that
        # differs between ranks, which would hang every run. One more try; twice is a failure.
        two = launch_two()
    # mlx.launch (mlx 0.32.4) exits 0 whatever its ranks return: the verdict comes from the run
    assert two.stdout.count("PASS: report in") == 1, two.stderr[-3000:]  # rank 0 reports
    verdict = subprocess.run([sys.executable, "-m", "harness.cli", "verdict", str(tmp_path / "two")],
                             capture_output=True, text=True, env=preload_env(), timeout=120)
    assert verdict.returncode == 0 and "2 processes" in verdict.stdout, verdict.stdout + verdict.stderr
    assert not (tmp_path / "two" / MARKER).exists()  # neither rank left one
    assert two.stderr.count("sql: 9 items, 0 from cache, 9 generated") == 1
    one = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "one"), "--no-cache"],
                         capture_output=True, text=True, env=preload_env(), timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]

    r1 = json.loads((tmp_path / "one" / "results.json").read_text())
    r2 = json.loads((tmp_path / "two" / "results.json").read_text())
    assert r1["environment"]["world_size"] == 1 and r2["environment"]["world_size"] == 2
    for s1, s2 in zip(r1["suites"], r2["suites"]):
        m1, m2 = s1["models"]["base"], s2["models"]["base"]
        assert [i["output"] for i in m1["items"]] == [i["output"] for i in m2["items"]], s1["name"]
        assert m1["metrics"] == m2["metrics"]
        assert m2["integrity"]["passed"] and m2["integrity"]["checked"] == m1["integrity"]["checked"] == 2
    # rank 0 cached every rank's items: a one-process re-run on that cache generates nothing
    again = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "again"),
                            "--cache-dir", str(tmp_path / "cache")],
                           capture_output=True, text=True, env=preload_env(), timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "sql: 9 items, 9 from cache, 0 generated" in again.stderr
    assert "json_schema: 9 items, 9 from cache, 0 generated" in again.stderr
    assert "stopped before its integrity check" not in again.stderr  # the 2-process run checked them
    with sqlite3.connect(tmp_path / "cache" / "completions.sqlite") as db:
        values = [json.loads(v) for (v,) in db.execute("SELECT value FROM completions")]
    completions = [v for v in values if isinstance(v, dict) and "output_token_ids" in v]
    assert len(completions) == 18 and not [v for v in completions if v.get("unchecked")]
    assert len(CompletionCache(tmp_path / "cache")) >= 18
