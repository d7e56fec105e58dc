"""`harness verdict RUN_DIR`: a finished run's verdict as the exit code, for launchers that
drop it (mlx.launch 0.32.4 exits 0 whatever its ranks return)."""

from __future__ import annotations

import json

from conftest import run_harness

ANSWERS = {"add-1": "4", "add-2": "15", "mul-1": "12", "cap-1": "Paris", "col-1": "blue", "day-1": "7"}


def _scored_run(tmp_path, wrong: int):
    """A real run of the smoke suite (`harness score`): base answers all six, v2 gets
    ``wrong`` of them wrong (the suite's drop gates allow one flip)."""
    rows = [{"id": i, "output": a, "model": "base"} for i, a in ANSWERS.items()]
    rows += [{"id": i, "output": "no" if k < wrong else a, "model": "v2"} for k, (i, a) in enumerate(ANSWERS.items())]
    completions = tmp_path / "c.jsonl"
    completions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / f"run-{wrong}"
    proc = run_harness("score", "suites/smoke.yaml", "--completions", str(completions), "--out", str(out))
    return proc, out


def test_verdict_exits_as_the_run_did(tmp_path):
    for wrong, expected in ((0, 0), (6, 1)):
        scored, out = _scored_run(tmp_path, wrong)
        assert scored.returncode == expected, scored.stdout + scored.stderr
        proc = run_harness("verdict", str(out))
        assert proc.returncode == expected, proc.stdout + proc.stderr
        first = proc.stdout.splitlines()[0]
        assert first.startswith("PASS: " if expected == 0 else "FAIL: ") and str(out) in first
        if expected:
            assert "failed: smoke / v2: " in proc.stdout and "exact_match" in proc.stdout


def test_verdict_refuses_a_folder_without_results_and_an_edited_verdict(tmp_path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    proc = run_harness("verdict", str(unfinished))
    assert proc.returncode == 2 and "did not finish" in proc.stderr and str(unfinished) in proc.stderr
    never_made = tmp_path / "removed-then-died"  # `rm -rf reports/v2` as the README says, then no write
    proc = run_harness("verdict", str(never_made))
    assert proc.returncode == 2 and "did not finish" in proc.stderr and str(never_made) in proc.stderr

    _, out = _scored_run(tmp_path, 6)
    results = json.loads((out / "results.json").read_text())
    results["verdict"] = "pass"  # a failed gate left in, the verdict edited
    (out / "results.json").write_text(json.dumps(results))
    proc = run_harness("verdict", str(out))
    assert proc.returncode == 2 and "does not match its gates" in proc.stderr

    results["verdict"], results["suites"] = "pass", []  # every suite cut out: verdict and gates agree
    (out / "results.json").write_text(json.dumps(results))
    proc = run_harness("verdict", str(out))
    assert proc.returncode == 2 and "no suites" in proc.stderr and "[suites]" in proc.stderr

    proc = run_harness("verdict", "reports/baselines/fixture.json")
    assert proc.returncode == 2 and "baseline file" in proc.stderr
