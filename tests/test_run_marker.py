"""A reused --out folder: a run that started into it and stopped before writing its results
leaves run-in-progress.json, and `harness verdict` refuses the folder (exit 2) instead of
reading the previous run's results.json as this run's PASS (mlx.launch exits 0 whatever
its ranks return, so CI takes the verdict from the folder)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import FIXTURE_MODEL, ROOT, run_harness

from harness.atomic import write_folder
from harness.blas import preload_env
from harness.run_marker import MARKER, start, unfinished

ANSWERS = {"add-1": "4", "add-2": "15", "mul-1": "12", "cap-1": "Paris", "col-1": "blue", "day-1": "7"}

# `harness eval` whose generation never returns: it says when it got there, then waits to be killed.
STUCK = """\
import os, sys, time
from pathlib import Path
from harness import runner
def stuck(*args, **kwargs):
    Path(os.environ["GENERATING"]).write_text(str(os.getpid()))
    time.sleep(600)
runner.generate = stuck
from harness.cli import main
sys.exit(main())
"""


def _score(tmp_path: Path, out: Path, wrong: int, completions: Path | None = None) -> subprocess.CompletedProcess:
    """`harness score` of the smoke suite into ``out``: v2 gets ``wrong`` of six wrong (2+ fails)."""
    if completions is None:
        rows = [{"id": i, "output": a, "model": "base"} for i, a in ANSWERS.items()]
        rows += [{"id": i, "output": "no" if k < wrong else a, "model": "v2"}
                 for k, (i, a) in enumerate(ANSWERS.items())]
        completions = tmp_path / f"c{wrong}.jsonl"
        completions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return run_harness("score", "suites/smoke.yaml", "--completions", str(completions), "--out", str(out))


def _verdict(out: Path) -> subprocess.CompletedProcess:
    return run_harness("verdict", str(out))


def test_start_marks_a_folder_with_results_and_only_on_the_writing_rank(tmp_path, monkeypatch):
    for var in ("MLX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        monkeypatch.delenv(var, raising=False)
    fresh = tmp_path / "fresh"
    assert start(fresh, ["harness", "eval"]) is None and not fresh.exists()  # bad input there writes nothing
    reused = tmp_path / "reused"
    reused.mkdir()
    (reused / "results.json").write_text("{}")
    for var, rank in (("MLX_RANK", "1"), ("OMPI_COMM_WORLD_RANK", "3"), ("PMI_RANK", "2")):
        monkeypatch.setenv(var, rank)  # a rank other than 0 never writes the folder
        assert start(reused, ["harness", "eval"]) is None and not (reused / MARKER).exists(), var
        monkeypatch.delenv(var)
    monkeypatch.setenv("MLX_RANK", "0")
    mark = start(reused, ["harness", "eval", "--out", str(reused)])
    assert mark is not None and (reused / MARKER).read_bytes() == mark
    info = unfinished(reused)
    assert info["pid"] == os.getpid() and info["command"][-1] == str(reused) and info["started"]
    monkeypatch.delenv("MLX_RANK")
    (reused / "results.json").unlink()  # an unfinished run's mark alone is marked again (and retired later)
    again = start(reused)
    assert again is not None and again != mark and (reused / MARKER).read_bytes() == again


def test_results_retire_their_own_mark_in_the_same_swap_and_keep_another_runs(tmp_path):
    out = tmp_path / "out"
    write_folder(out, {"results.json": "old"})
    first = start(out)
    write_folder(out, {"results.json": "first"}, retire={MARKER: first})
    assert sorted(p.name for p in out.iterdir()) == ["results.json"] and unfinished(out) is None
    first, second = start(out), start(out)  # two runs into one folder: the second's mark is there
    write_folder(out, {"results.json": "first"}, retire={MARKER: first})
    assert (out / MARKER).read_bytes() == second  # the second run has not finished: still refused
    write_folder(out, {"results.json": "second"}, retire={MARKER: second})
    assert unfinished(out) is None and (out / "results.json").read_text() == "second"


def test_verdict_refuses_a_reused_folder_whose_run_was_killed_mid_generation(tmp_path):
    out = tmp_path / "out"
    passed = _score(tmp_path, out, wrong=0)
    assert passed.returncode == 0 and not (out / MARKER).exists(), passed.stdout + passed.stderr
    previous = json.loads((out / "results.json").read_text())["created"]
    before = (out / "results.json").read_bytes()

    stuck = tmp_path / "stuck.py"
    stuck.write_text(STUCK)
    generating = tmp_path / "generating"
    env = preload_env({**os.environ, "GENERATING": str(generating), "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen([sys.executable, str(stuck), "eval", str(ROOT / "suites" / "smoke.yaml"),
                             "--model", str(FIXTURE_MODEL), "--no-cache", "--quiet", "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        for _ in range(1200):  # the model loads, then generation starts (a hang guard, not a timing)
            if generating.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert generating.exists(), proc.communicate()[1][-3000:] if proc.poll() is not None else "never generated"
        os.killpg(proc.pid, signal.SIGKILL)  # an OOM kill: no cleanup runs
        proc.communicate()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert (out / "results.json").read_bytes() == before  # the previous run's PASS is still there...
    refused = _verdict(out)  # ...and is not read as this run's
    assert refused.returncode == 2 and refused.stdout == "", refused.stdout + refused.stderr
    assert unfinished(out)["pid"] == int(generating.read_text())  # the killed run's mark (written by eval)
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"harness: error: {out}: the run started at ")
    assert "did not finish" in lines[0] and f"an earlier run's, of {previous}" in lines[0]
    assert "rerun" in lines[0] and "PASS" not in lines[0]
    assert _verdict(out / "results.json").returncode == 2  # the file given instead of its folder

    rerun = run_harness("eval", "suites/smoke.yaml", "--model", str(FIXTURE_MODEL), "--limit", "2", "--no-cache",
                        "--quiet", "--out", str(out))  # a rerun that finishes: its own verdict again
    assert rerun.returncode == 0 and not (out / MARKER).exists(), rerun.stdout + rerun.stderr
    verdict = _verdict(out)
    assert verdict.returncode == 0 and verdict.stdout.startswith("PASS: "), verdict.stdout + verdict.stderr
    assert json.loads((out / "results.json").read_text())["created"] >= previous
    failed = _score(tmp_path, out, wrong=6)  # and the next one
    assert failed.returncode == 1 and not (out / MARKER).exists(), failed.stdout + failed.stderr
    verdict = _verdict(out)
    assert verdict.returncode == 1 and verdict.stdout.startswith("FAIL: "), verdict.stdout + verdict.stderr


def test_a_run_refused_for_bad_input_into_a_reused_folder_is_no_verdict(tmp_path):
    out = tmp_path / "out"
    assert _score(tmp_path, out, wrong=0).returncode == 0
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "add-1", "output": \n')
    refused = _score(tmp_path, out, wrong=0, completions=broken)
    assert refused.returncode == 2 and str(broken) in refused.stderr
    verdict = _verdict(out)
    assert verdict.returncode == 2 and "did not finish" in verdict.stderr, verdict.stdout + verdict.stderr
    fresh = tmp_path / "fresh"  # a fresh folder gets no mark: bad input writes nothing there
    assert _score(tmp_path, fresh, wrong=0, completions=broken).returncode == 2 and not fresh.exists()


def test_the_pytest_plugins_run_replaces_a_stopped_runs_mark_with_its_results(tmp_path):
    """harness_run(out=...) into a folder a stopped CLI run left marked: its own mark takes the
    stopped run's place and leaves with its results (else verdict refused the folder forever)."""
    from harness.pytest_plugin import run_harness_eval

    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    (out / MARKER).write_text('{"run_id": "stopped", "started": "2026-01-01T00:00:00+00:00"}\n')
    result = run_harness_eval(ROOT / "suites" / "smoke.yaml", FIXTURE_MODEL, out=out, limit=1, use_cache=False)
    assert result.exit_code == 0 and unfinished(out) is None
    assert _verdict(out).returncode == 0


def test_approve_compare_and_only_failing_refuse_a_folder_whose_last_run_died(tmp_path):
    """Not only verdict reads a run folder: approving it made the earlier run's results the
    new baseline, compare and --only-failing read its outputs as this run's."""
    out = tmp_path / "out"
    assert _score(tmp_path, out, wrong=0).returncode == 0
    (out / MARKER).write_text('{"run_id": "died", "started": "2026-12-03T00:00:00+00:00", "pid": 7}\n')
    for args in (("baseline", "approve", str(out), "--to", str(tmp_path / "b.json")),
                 ("compare", str(out), str(out)),
                 ("score", "suites/smoke.yaml", "--completions", str(tmp_path / "c0.jsonl"),
                  "--only-failing", str(out), "--out", str(tmp_path / "again"))):
        refused = run_harness(*args)
        lines = refused.stderr.splitlines()
        assert refused.returncode == 2 and len(lines) == 1, (args, refused.stdout + refused.stderr)
        assert "did not finish" in lines[0] and str(out) in lines[0], args
    assert not (tmp_path / "b.json").exists() and not (tmp_path / "again").exists()


def test_an_argument_that_is_not_utf8_is_recorded_escaped(tmp_path):
    """`--benchmark-json b$'\\xff'.json` is a file name the run may write, but the command line
    went raw into run-in-progress.json and results.json, which are UTF-8: the mark could not
    be written (exit 3 before the run) and results.json could not (exit 3 after it, nothing
    written). The argument is recorded with its byte escaped."""
    from harness.atomic import json_text
    from harness.results import new_results

    argv = ["harness", "eval", "suites/latency.yaml", "--benchmark-json", os.fsdecode(b"b\xff.json")]
    (tmp_path / "results.json").write_text("{}")  # a reused --out: the mark is written
    mark = json.loads(start(tmp_path, argv))
    assert mark["command"][-1] == "b\\xff.json"
    recorded = new_results([], {}, {}, command=argv)["command"]
    assert recorded[-1] == "b\\xff.json" and recorded[:-1] == argv[:-1]
    json_text(recorded).encode("utf-8")
