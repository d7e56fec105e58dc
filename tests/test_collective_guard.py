"""A distributed eval never waits forever in a collective (harness.distributed's guard):
the deadline logic, the one line and exit 3, and two real ranks (``mlx.launch`` and a bare
pair) where one rank never joins."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli, distributed
from harness.blas import preload_env
from harness.distributed import (FACTOR, FLOOR_S, TIMEOUT_ENV, WorkClock, check_headers, check_rows,
                                 collective_deadline, collective_guard, header, set_collective_timeout)
from harness.errors import CollectiveFailed, HarnessError
from harness.run_marker import MARKER, unfinished

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_override(monkeypatch):
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    monkeypatch.setattr(distributed, "_timeout", distributed._UNREAD)


def test_deadline_is_the_floor_or_a_multiple_of_the_longest_own_work():
    assert collective_deadline(own_s=2.0, longest_s=7.0) == FLOOR_S
    assert collective_deadline(own_s=1.0, longest_s=400.0) == FACTOR * 400.0  # the others still on a long share
    assert collective_deadline(own_s=500.0, longest_s=400.0) == FACTOR * 500.0  # this stretch counts too


def test_the_override_replaces_the_derived_deadline_and_zero_means_no_guard():
    assert collective_deadline(own_s=1000.0, longest_s=1000.0, override=5.0) == 5.0
    assert collective_deadline(own_s=1.0, longest_s=1.0, override=0.0) is None


def test_the_clock_counts_own_work_not_waiting():
    clock = WorkClock(last=0.0)
    assert clock.stretch(10.0) == (10.0, 10.0)
    clock.left_collective(entered=10.0, now=100.0)  # waited 90 s for the others
    assert clock.stretch(101.0) == (1.0, 10.0)  # 1 s of own work since; the longest stays 10 s
    clock.left_collective(entered=101.0, now=102.0)
    assert clock.longest == 10.0 and clock.stretch(132.0) == (30.0, 30.0)


def test_option_beats_environment_and_bad_values_name_their_source(monkeypatch):
    monkeypatch.setenv(TIMEOUT_ENV, "60")
    set_collective_timeout(None)
    assert distributed._override() == 60.0
    set_collective_timeout("0")
    assert distributed._override() == 0.0
    for bad in ("soon", "-1", "nan", "inf"):
        with pytest.raises(HarnessError, match="--collective-timeout"):
            set_collective_timeout(bad)
    monkeypatch.setenv(TIMEOUT_ENV, "-5")
    with pytest.raises(HarnessError, match=TIMEOUT_ENV):
        set_collective_timeout(None)


def test_a_part_that_arrives_as_unfilled_memory_is_a_lost_rank():
    """MLX's ring can return garbage, not an error, for a rank that left mid-collective."""
    import numpy as np

    parts = [b'{"a":1}', b"[1,2,3]"]
    heads = [header(p) for p in parts]
    rows = np.zeros((2, 7), dtype=np.uint8)
    for r, p in enumerate(parts):
        rows[r, :len(p)] = np.frombuffer(p, dtype=np.uint8)
    check_headers(heads)
    assert check_rows(heads, rows) == parts
    with pytest.raises(RuntimeError, match="rank 1's part arrived as garbage"):
        check_headers([heads[0], [0x2A1F23C0, 9, 12]])  # unfilled memory: no marker
    rows[0, 2] ^= 1
    with pytest.raises(RuntimeError, match="rank 0's part arrived corrupt"):
        check_rows(heads, rows)


def test_a_bad_collective_timeout_is_exit_2_before_the_model_loads(tmp_path, capsys):
    code = cli.main(["eval", str(ROOT / "suites" / "smoke.yaml"), "--model", str(tmp_path / "no-model"),
                     "--out", str(tmp_path / "out"), "--collective-timeout", "soon"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "[--collective-timeout]" in err


def test_a_peer_lost_in_a_collective_is_one_line_and_exit_3(tmp_path, capsys, monkeypatch):
    def lost(*args, **kwargs):  # what MLX's ring backend raises when another rank's process ends
        with collective_guard("in a collective (gathering the completions, suite 'smoke', model 'base')",
                              "rank 0 of 2"):
            raise RuntimeError("[ring] connection to a peer was lost")

    monkeypatch.setattr("harness.runner.run_eval", lost)
    code = cli.main(["eval", str(ROOT / "suites" / "smoke.yaml"), "--model", str(ROOT / "fixtures" / "model"),
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INTERNAL == CollectiveFailed.exit_code
    assert err.count("\n") == 1 and err.startswith("harness: error: rank 0 of 2 lost the other ranks in a "
                                                   "collective (gathering the completions, suite 'smoke', model "
                                                   "'base') after ")
    assert "connection to a peer was lost" in err and "rerun" in err
    assert not (tmp_path / "out").exists()


def test_a_wait_blocked_outside_python_ends_the_process_with_one_line(tmp_path):
    """MLX waits in C with the GIL released, where no signal handler runs: a sleep stands in
    for it. The watchdog thread still ends the process, with exit 3 and one line."""
    script = ("import time\nfrom harness.distributed import collective_guard\n"
              "with collective_guard('in a collective (gathering the completions)', 'rank 1 of 2'):\n"
              "    time.sleep(120)\nprint('returned')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, TIMEOUT_ENV: "0.5", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 3 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("harness: error: rank 1 of 2 waited 0.5 s for the other ranks in a collective "
                               "(gathering the completions) and gave up")
    for part in ("ml-explore/mlx#4475", "#4060", "--collective-timeout", TIMEOUT_ENV, "rerun"):
        assert part in lines[0]


# --- two real ranks -------------------------------------------------------------------

# Stands in for a rank that never joins the completions' all_gather (stuck in its own work,
# stopped, a host gone): on rank STALL_RANK the generation sleeps instead of generating.
# With PID_DIR set, each rank writes its pid to PID_DIR/RANK.
STALL = """\
import os, sys, time
from pathlib import Path
from harness import runner
if os.environ.get("PID_DIR"):
    Path(os.environ["PID_DIR"], os.environ["MLX_RANK"]).write_text(str(os.getpid()))
if os.environ.get("MLX_RANK") == os.environ["STALL_RANK"]:
    def stuck(*args, **kwargs):
        time.sleep(float(os.environ["STALL_S"]))
        return []
    runner.generate = stuck
from harness.cli import main
sys.exit(main())
"""


def _free_ports() -> int:
    """A port p with p + 1 free too (the ring listens on one port per rank)."""
    import socket

    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no two adjacent free ports")


def _earlier_pass(out: Path) -> dict[str, bytes]:
    """An earlier passing run's files in ``out`` (`harness score` of the smoke suite)."""
    completions = out.parent / "earlier.jsonl"
    answers = {"add-1": "4", "add-2": "15", "mul-1": "12", "cap-1": "Paris", "col-1": "blue", "day-1": "7"}
    completions.write_text("".join(json.dumps({"id": i, "output": a}) + "\n" for i, a in answers.items()))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "score", str(ROOT / "suites" / "smoke.yaml"),
                           "--completions", str(completions), "--out", str(out)],
                          capture_output=True, text=True, env=preload_env(), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _eval_args(tmp_path: Path, stall: Path, cache: bool = False) -> list[str]:
    return [sys.executable, str(stall), "eval", str(ROOT / "suites" / "sql.yaml"),
            "--model", str(ROOT / "fixtures" / "model"), "--limit", "6", "--quiet", "--out", str(tmp_path / "out"),
            *(["--cache-dir", str(tmp_path / "cache")] if cache else ["--no-cache"])]


def _communicate(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """Output of a process in its own session; on a timeout the whole session is killed."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise


@pytest.mark.slow
@pytest.mark.parametrize("stalled", [0, 1])
def test_under_mlx_launch_the_waiting_rank_gives_up_when_the_other_never_joins(tmp_path, stalled):
    """In a reused --out (an earlier run's PASS in it, as in a CI cache): rank 0 marks it before
    anything else (rank 1 does not), and whether rank 0 gives up (exit 3 from the watchdog,
    no cleanup) or is the stuck one the launcher ends, `harness verdict` then refuses it."""
    stall = tmp_path / "stall.py"
    stall.write_text(STALL)
    waiting = 1 - stalled
    earlier = _earlier_pass(tmp_path / "out")
    pids = tmp_path / "pids"
    pids.mkdir()
    launch = Path(sys.executable).with_name("mlx.launch")
    env = preload_env({**os.environ, "STALL_RANK": str(stalled), "STALL_S": "3600", TIMEOUT_ENV: "5",
                       "PYTHONPATH": str(ROOT), "PID_DIR": str(pids)})
    proc = subprocess.Popen([str(launch), "-n", "2", "--backend", "ring", "-p", str(_free_ports()), "--",
                             *_eval_args(tmp_path, stall, cache=True)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    out, err = _communicate(proc, timeout=90)  # without the guard: waits for the hour
    # mlx.launch copies its ranks' stderr beside its own warnings without waiting for a line's end:
    # "[WARN] Node with rank 1 exited with code 3harness: error: rank 1 ..." was seen, so the
    # error is found where it starts, not only at a line's start
    gave_up = ["harness: error: " + part for part in err.split("harness: error: ")[1:]]
    assert len(gave_up) == 1, err[-3000:]
    assert gave_up[0].startswith(f"harness: error: rank {waiting} of 2 waited 5.0 s for the other ranks in a "
                                 f"collective (gathering the completions, suite 'sql', model 'base')")
    # mlx.launch (0.32.4) exits 0 whatever its ranks return: their codes are in its warnings
    assert f"Node with rank {waiting} exited with code 3" in err
    assert f"Node with rank {stalled} exited with code -15" in err  # the launcher ended the stuck one
    assert "PASS" not in out and "FAIL" not in out
    # no results written: the earlier run's are as they were, with rank 0's mark beside them
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir() if p.name != MARKER} == earlier
    verdict = subprocess.run([sys.executable, "-m", "harness.cli", "verdict", str(tmp_path / "out")],
                             capture_output=True, text=True, env=preload_env(), timeout=120)
    assert verdict.returncode == 2 and "did not finish" in verdict.stderr, verdict.stdout + verdict.stderr
    assert unfinished(tmp_path / "out")["pid"] == int((pids / "0").read_text())  # rank 0's mark, not rank 1's
    # rank 0's cache holds what it generated before it waited (its 3 items when rank 1 stalls),
    # whole, and marked unchecked: a rerun checks them instead of serving them as checked
    with sqlite3.connect(tmp_path / "cache" / "completions.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        values = [json.loads(v) for (v,) in db.execute("SELECT value FROM completions")]
    stored = [v for v in values if isinstance(v, dict) and "output_token_ids" in v]
    assert len(stored) == (3 if stalled == 1 else 0) and all(v.get("unchecked") is True for v in stored)


@pytest.mark.slow
def test_without_a_launcher_both_ranks_end_with_their_own_line(tmp_path):
    """No launcher to end the survivors (ranks started by hand, by a scheduler, on hosts whose
    kill does not arrive): rank 1 is stuck past rank 0's deadline, so rank 0 gives up; when
    rank 1 reaches the collective, rank 0 is gone, and rank 1 ends too."""
    stall = tmp_path / "stall.py"
    stall.write_text(STALL)
    port = _free_ports()
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps([[f"127.0.0.1:{port}"], [f"127.0.0.1:{port + 1}"]]))
    procs = []
    for rank in (0, 1):
        env = preload_env({**os.environ, "MLX_RANK": str(rank), "MLX_HOSTFILE": str(hosts), "STALL_RANK": "1",
                           "STALL_S": "15", TIMEOUT_ENV: "5", "PYTHONPATH": str(ROOT)})
        procs.append(subprocess.Popen(_eval_args(tmp_path, stall), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env, start_new_session=True))
    try:
        ended = [_communicate(p, timeout=90) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    for rank, (p, (out, err)) in enumerate(zip(procs, ended)):
        lines = [line for line in err.splitlines() if line.startswith("harness: ")]
        assert p.returncode == 3 and len(lines) == 1, (rank, err[-3000:])
        assert lines[0].startswith(f"harness: error: rank {rank} of 2 ")
        assert "gathering the completions, suite 'sql', model 'base'" in lines[0]
    assert "waited 5.0 s" in ended[0][1]  # rank 0 gave up on the rank that never came
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_rank_that_cannot_connect_does_not_run_alone(tmp_path):
    """Launched as rank 1 of 2 with no rank 0: MLX's ring gives up connecting after ~31 s, and
    the harness went on as a one-process run, writing its own PASS report (world_size 1)
    while a late rank 0 would wait for it. Now exit 3 with one line, nothing written."""
    hosts = tmp_path / "hosts.json"
    port = _free_ports()
    hosts.write_text(json.dumps([[f"127.0.0.1:{port}"], [f"127.0.0.1:{port + 1}"]]))
    env = preload_env({**os.environ, "MLX_RANK": "1", "MLX_HOSTFILE": str(hosts), "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "eval", str(ROOT / "suites" / "smoke.yaml"),
                             "--model", str(ROOT / "fixtures" / "model"), "--no-cache", "--quiet",
                             "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    out, err = _communicate(proc, timeout=90)
    lines = [line for line in err.splitlines() if line.startswith("harness: ")]
    assert proc.returncode == 3 and len(lines) == 1, err[-3000:]
    assert lines[0].startswith("harness: error: rank 1 of 2 could not connect to the other ranks at startup")
    assert not (tmp_path / "out").exists() and "PASS" not in out


def test_a_training_rank_that_cannot_connect_does_not_train_alone(tmp_path, monkeypatch):
    """`harness train` under mlx.launch took MLX's non-strict init: a rank that could not
    reach the others trained as a one-process run and wrote its own adapter (the eval's fix,
    d6d8fbf, did not reach training). Now the same exit-3 line, nothing written."""
    import mlx.core as mx

    from harness.train.config import config_from_dict
    from harness.train.loop import train

    def unreachable(*args, strict=False, **kwargs):  # what the ring raises after ~31 s of trying
        if strict:
            raise RuntimeError("[ring] Couldn't connect (error: 111)")
        return real(*args, **kwargs)

    real = mx.distributed.init
    monkeypatch.setattr(mx.distributed, "init", unreachable)
    monkeypatch.setenv("MLX_RANK", "1")
    distributed.group.cache_clear()
    try:
        cfg = config_from_dict(dict(model=str(ROOT / "fixtures" / "model"), data=str(ROOT / "fixtures" / "data" / "wikisql"),
                                    adapter_path=str(tmp_path / "adapter"), batch_size=8, steps=2))
        with pytest.raises(CollectiveFailed, match="rank 1 could not connect to the other ranks at startup"):
            train(cfg, quiet=True)
    finally:
        distributed.group.cache_clear()
    assert not (tmp_path / "adapter").exists()


# --- training's collectives -----------------------------------------------------------

def test_a_training_step_is_measured_against_the_longest_step(monkeypatch):
    """The gradient sums run inside the compiled step, so the guard wraps the step's whole
    evaluation: its deadline follows the rank's longest step, not only its work between."""
    monkeypatch.setattr(distributed, "_CLOCK", WorkClock(last=0.0, longest=2.0))
    deadline, limit = distributed.guard_deadline(1.0, step_s=100.0)
    assert deadline == FACTOR * 100.0
    assert "longest own work between collectives or training step, 100.0 s" in limit
    assert distributed.guard_deadline(1.0)[0] == FLOOR_S  # eval's measure is unchanged
    monkeypatch.setenv(TIMEOUT_ENV, "7")
    set_collective_timeout(None)
    assert distributed.guard_deadline(1.0, step_s=100.0)[0] == 7.0


def test_a_training_step_that_fails_on_its_own_is_not_a_lost_rank():
    """An out-of-memory in the guarded step is the step's own error, not a peer that left."""
    with pytest.raises(RuntimeError, match="Attempting to allocate"):
        with collective_guard("in training step 3 (the gradient sums)", "rank 0 of 2", step_s=1.0):
            raise RuntimeError("[metal::malloc] Attempting to allocate 99999999999 bytes")
    with pytest.raises(CollectiveFailed, match="rank 0 of 2 lost the other ranks in training step 3"):
        with collective_guard("in training step 3 (the gradient sums)", "rank 0 of 2", step_s=1.0):
            raise RuntimeError("[ring] connection to a peer was lost")


def test_a_bad_collective_timeout_stops_train_before_the_model_loads(tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(f"model: {tmp_path / 'no-model'}\ndata: {tmp_path / 'no-data'}\n")
    for args in (["--collective-timeout", "soon", str(config)], [str(config), "--collective-timeout", "-1"]):
        code = cli.main(["train", *args])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "[--collective-timeout]" in err, err


def test_single_process_training_has_no_guard(tmp_path, monkeypatch):
    """One process has no peer to wait for: no watchdog thread per step."""
    from harness.train.config import config_from_dict
    from harness.train.loop import train

    def refused(*args, **kwargs):
        raise AssertionError("a guard in a one-process run")

    monkeypatch.setattr(distributed, "collective_guard", refused)
    cfg = config_from_dict(dict(model=str(ROOT / "fixtures" / "model"), data=str(ROOT / "fixtures" / "data" / "wikisql"),
                                adapter_path=str(tmp_path / "adapter"), batch_size=8, steps=2, val_rows=8))
    assert train(cfg, quiet=True).steps == 2


# Stands in for a training rank that stops joining the gradient sums (stuck, stopped, a host
# gone): on rank STALL_RANK, building step 3's batch sleeps instead.
TRAIN_STALL = """\
import os, sys, time
from harness.train import batching
if os.environ.get("MLX_RANK") == os.environ["STALL_RANK"]:
    original = batching.TrainStream.batch
    def stuck(self, position):
        if position == 2:
            time.sleep(float(os.environ["STALL_S"]))
        return original(self, position)
    batching.TrainStream.batch = stuck
from harness.cli import main
sys.exit(main())
"""


@pytest.mark.slow
def test_under_mlx_launch_a_training_rank_gives_up_when_the_other_stops_in_a_step(tmp_path):
    """The gradient sums had no deadline: rank 0 waited inside step 3's evaluation for the
    hour the other rank slept (forever, for a rank that hangs)."""
    stall = tmp_path / "stall.py"
    stall.write_text(TRAIN_STALL)
    config = tmp_path / "train.yaml"
    config.write_text(json.dumps({"model": str(ROOT / "fixtures" / "model"),
                                  "data": str(ROOT / "fixtures" / "data" / "wikisql"),
                                  "adapter_path": str(tmp_path / "adapter"), "batch_size": 8, "steps": 6,
                                  "val_rows": 16, "eval_every": 6, "save_every": 6, "report_every": 1}))
    launch = Path(sys.executable).with_name("mlx.launch")
    env = preload_env({**os.environ, "STALL_RANK": "1", "STALL_S": "3600", TIMEOUT_ENV: "10",
                       "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen([str(launch), "-n", "2", "--backend", "ring", "-p", str(_free_ports()), "--",
                             sys.executable, str(stall), "train", str(config), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    out, err = _communicate(proc, timeout=180)  # without the guard: waits for the hour
    gave_up = [line for line in err.splitlines() if line.startswith("harness: error: ")]
    assert len(gave_up) == 1, err[-3000:]
    assert gave_up[0].startswith("harness: error: rank 0 of 2 waited 10.0 s for the other ranks in training "
                                 "step 3 (the gradient sums) and gave up (exit 3, no verdict)")
    assert "Node with rank 0 exited with code 3" in err
    assert "Node with rank 1 exited with code -15" in err  # the launcher ended the stuck one
    assert not (tmp_path / "adapter" / "adapters.safetensors").exists() and "adapter written" not in out
