"""A run without a baseline whose suites write gates against one says so: those gates do not
exist in such a run, and a CI line that forgot --baseline passed with every one of them off."""

from __future__ import annotations

import json

import yaml

from conftest import FIXTURE_MODEL, ROOT, run_harness

NOTE = "no baseline given, so the gates against the approved baseline were not checked"


def _suite(tmp_path, gates) -> str:
    suite = yaml.safe_load((ROOT / "suites" / "smoke.yaml").read_text())
    suite["gates"] = gates
    path = tmp_path / "smoke.yaml"  # the same name, data and content: the committed baseline fits it
    path.write_text(yaml.safe_dump(suite))
    return str(path)


def test_eval_without_baseline_names_the_suite_and_its_baseline_gates_once(tmp_path):
    suite = _suite(tmp_path, {"exact_match": {"max_drop_vs_base": 0.6, "max_drop_vs_baseline": 0.6,
                                              "categories": {"recall": {"max_drop_vs_baseline": 0.9}}}})
    args = ["eval", suite, "--model", str(FIXTURE_MODEL), "--adapter", f"sql={ROOT / 'fixtures/adapters/sql'}",
            "--adapter", f"domain={ROOT / 'fixtures/adapters/domain'}", "--quiet"]
    env = {"HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    bare = run_harness(*args, "--out", str(tmp_path / "bare"), env=env)
    assert bare.returncode in (0, 1), bare.stderr
    shown = [ln for ln in bare.stdout.splitlines() if NOTE in ln]
    assert len(shown) == 1 and shown[0].startswith("  WARNING"), bare.stdout  # one line a run, not a model
    assert ("suite 'smoke': exact_match max_drop_vs_baseline, exact_match[recall] max_drop_vs_baseline"
            in shown[0] and "pass --baseline FILE" in shown[0]), shown[0]
    results = json.loads((tmp_path / "bare" / "results.json").read_text())
    assert [w for w in results["warnings"] if NOTE in w] == [shown[0].removeprefix("  WARNING ")]
    assert NOTE in (tmp_path / "bare" / "summary.md").read_text()

    given = run_harness(*args, "--baseline", str(ROOT / "reports/baselines/fixture.json"),
                        "--out", str(tmp_path / "given"), env=env)
    assert given.returncode in (0, 1), given.stderr
    assert NOTE not in given.stdout
    assert not any(NOTE in w for w in json.loads((tmp_path / "given" / "results.json").read_text())["warnings"])


def test_only_written_baseline_gates_are_named(tmp_path):
    """The defaults alone (the first run, the one a baseline is approved from) and a bound set
    to null are no gate against a baseline the user wrote: nothing to warn of."""
    from harness.baseline import unchecked_baseline_note
    from harness.suite import load_suite

    defaults = load_suite(_suite(tmp_path, {"exact_match": {"max_drop_vs_base": 0.6}}))
    dropped = load_suite(_suite(tmp_path, {"exact_match": {"max_drop_vs_baseline": None}}))
    off = load_suite(_suite(tmp_path, False))
    assert [unchecked_baseline_note([s]) for s in (defaults, dropped, off)] == [None, None, None]
    written = load_suite(_suite(tmp_path, {"exact_match": {"rel_tolerance_vs_baseline": 0.1}}))
    assert "suite 'smoke': exact_match rel_tolerance_vs_baseline" in unchecked_baseline_note([written])


def test_score_without_baseline_warns_and_strict_baseline_alone_is_a_usage_error(tmp_path):
    rows = [{"id": i, "output": "x"} for i in ("add-1", "add-2", "mul-1", "cap-1", "col-1", "day-1")]
    completions = tmp_path / "c.jsonl"
    completions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    scored = run_harness("score", "suites/smoke.yaml", "--completions", str(completions), "--out", str(tmp_path / "s"))
    assert scored.returncode == 0, scored.stderr
    assert "WARNING " + NOTE in scored.stdout and "suite 'smoke': exact_match max_drop_vs_baseline" in scored.stdout
    # nothing to be strict against: exit 2, not a run that checks no baseline gate
    lone = run_harness("eval", "suites/smoke.yaml", "--model", str(FIXTURE_MODEL), "--strict-baseline",
                       "--out", str(tmp_path / "e"))
    assert lone.returncode == 2 and "--strict-baseline needs --baseline" in lone.stderr
    assert not (tmp_path / "e" / "results.json").exists()


def test_the_pytest_plugin_warns_with_its_own_option(tmp_path):
    from harness.pytest_plugin import run_harness_eval

    run = run_harness_eval(str(ROOT / "suites" / "smoke.yaml"), str(FIXTURE_MODEL), out=tmp_path / "out")
    notes = [w for w in run.baseline_warnings if NOTE in w]  # shown as HarnessBaselineWarning and in the summary
    assert len(notes) == 1 and "pass --harness-baseline FILE" in notes[0], run.baseline_warnings
    assert notes == [w for w in run.results["warnings"] if NOTE in w]
