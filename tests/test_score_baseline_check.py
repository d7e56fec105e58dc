"""`harness score --baseline` checks the suite against the baseline as `harness eval` does:
an edited suite's scores were gated against the approved ones without a word."""

from __future__ import annotations

import json
import shutil

from conftest import ROOT, run_harness


def test_score_refuses_a_baseline_of_another_suite_definition(tmp_path):
    suite = tmp_path / "smoke.yaml"
    shutil.copy(ROOT / "suites" / "smoke.yaml", suite)
    answers = {"add-1": "4", "add-2": "15", "mul-1": "12", "cap-1": "paris", "col-1": "blue", "day-1": "7"}
    completions = tmp_path / "completions.jsonl"
    completions.write_text("".join(
        json.dumps({"id": i, "output": out, "model": model}) + "\n"
        for model in ("base", "ft") for i, out in answers.items()))
    first = run_harness("score", str(suite), "--completions", str(completions), "--out", str(tmp_path / "v1"))
    assert first.returncode == 0, first.stdout + first.stderr
    baseline = tmp_path / "baseline.json"
    assert run_harness("baseline", "approve", str(tmp_path / "v1"), "--to", str(baseline)).returncode == 0
    same = run_harness("score", str(suite), "--completions", str(completions), "--baseline", str(baseline),
                       "--out", str(tmp_path / "same"))
    assert same.returncode == 0, same.stdout + same.stderr  # the suite as approved: gated as before
    # the scorer made case-sensitive after approval: 'paris' now fails, a different definition
    suite.write_text(suite.read_text().replace("exact_match: {case_sensitive: false}",
                                               "exact_match: {case_sensitive: true}"))
    edited = run_harness("score", str(suite), "--completions", str(completions), "--baseline", str(baseline),
                         "--out", str(tmp_path / "edited"))
    assert edited.returncode == 2, edited.stdout + edited.stderr
    assert "scorer exact_match options differs" in edited.stderr and "baseline.json" in edited.stderr
    assert not (tmp_path / "edited" / "results.json").exists()
    anyway = run_harness("score", str(suite), "--completions", str(completions), "--baseline", str(baseline),
                         "--allow-fingerprint-mismatch", "--out", str(tmp_path / "anyway"))
    assert anyway.returncode in (0, 1), anyway.stderr
    written = json.loads((tmp_path / "anyway" / "results.json").read_text())
    assert any("compared anyway" in w and "exact_match options" in w for w in written["warnings"])


def test_score_prints_the_baseline_warnings_eval_prints(tmp_path):
    """A candidate the baseline lacks (a rename): harness eval prints a WARNING line; harness
    score kept it in results.json only."""
    suite = ROOT / "suites" / "smoke.yaml"
    completions = tmp_path / "c.jsonl"

    def write(model: str) -> None:
        completions.write_text("".join(json.dumps({"id": i, "output": "4", "model": m}) + "\n"
                                       for m in ("base", model)
                                       for i in ("add-1", "add-2", "mul-1", "cap-1", "col-1", "day-1")))
    write("ft")
    assert run_harness("score", str(suite), "--completions", str(completions), "--out", str(tmp_path / "v1")
                       ).returncode == 0
    baseline = tmp_path / "baseline.json"
    assert run_harness("baseline", "approve", str(tmp_path / "v1"), "--to", str(baseline)).returncode == 0
    write("ft2")
    done = run_harness("score", str(suite), "--completions", str(completions), "--baseline", str(baseline),
                       "--out", str(tmp_path / "v2"))
    shown = [ln for ln in done.stdout.splitlines() if ln.startswith("  WARNING")]
    assert len(shown) == 1 and "no model 'ft2'" in shown[0] and "renamed?" in shown[0], done.stdout
    assert shown[0].endswith("(--strict-baseline fails it)")  # harness score has the flag too now


def test_score_strict_baseline_fails_a_gate_loosened_since_approval(tmp_path):
    """A margin widened in a pull request: a WARNING line without --strict-baseline, a failed
    gate naming both limits with it (exit 1), as harness eval does."""
    suite = tmp_path / "smoke.yaml"
    shutil.copy(ROOT / "suites" / "smoke.yaml", suite)
    completions = tmp_path / "c.jsonl"
    completions.write_text("".join(json.dumps({"id": i, "output": "4", "model": m}) + "\n" for m in ("base", "ft")
                                   for i in ("add-1", "add-2", "mul-1", "cap-1", "col-1", "day-1")))
    assert run_harness("score", str(suite), "--completions", str(completions), "--out", str(tmp_path / "v1")
                       ).returncode == 0
    baseline = tmp_path / "baseline.json"
    assert run_harness("baseline", "approve", str(tmp_path / "v1"), "--to", str(baseline)).returncode == 0
    text = suite.read_text()
    suite.write_text(text.replace("exact_match: {max_drop_vs_base: 0.6,", "exact_match: {max_drop_vs_base: 0.9,"))
    assert suite.read_text() != text
    lax = run_harness("score", str(suite), "--completions", str(completions), "--baseline", str(baseline),
                      "--out", str(tmp_path / "lax"))
    assert lax.returncode == 0, lax.stdout + lax.stderr
    assert any("loosened since the baseline was approved: 0.600 -> 0.900" in ln and "--strict-baseline fails it" in ln
               for ln in lax.stdout.splitlines() if ln.startswith("  WARNING")), lax.stdout
    strict = run_harness("score", str(suite), "--completions", str(completions), "--baseline", str(baseline),
                         "--strict-baseline", "--out", str(tmp_path / "strict"))
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert ("FAILED smoke / ft / exact_match: gate exact_match max_drop_vs_base loosened since the baseline was "
            "approved (approved: 0.600; now: 0.900)") in strict.stdout, strict.stdout
    assert not any("loosened" in ln for ln in strict.stdout.splitlines() if ln.startswith("  WARNING"))
    lone = run_harness("score", str(suite), "--completions", str(completions), "--strict-baseline",
                       "--out", str(tmp_path / "lone"))
    assert lone.returncode == 2 and "--strict-baseline needs --baseline" in lone.stderr
