"""What a baseline approved and a run leaves out (a suite file removed or renamed, an adapter
dropped from the command line) is named, never left to gate nothing without a word."""

from __future__ import annotations

import json

from factories import make_suite, model_result, results, suite_result
from harness.baseline import summarize_run
from harness.runner import finish

IDS = [f"q{i:02d}" for i in range(20)]


def test_a_suite_and_an_adapter_of_the_baseline_missing_from_the_run_are_warned_about(tmp_path):
    ok = {i: True for i in IDS}
    approved = summarize_run(results([
        suite_result({"base": model_result(ok), "sql": model_result(ok), "domain": model_result(ok)}),
        suite_result({"base": model_result(ok), "domain": model_result(ok)}, name="domain_qa")]))
    approved["_path"] = "reports/baselines/fixture.json"
    run = results([suite_result({"base": model_result(ok), "sql": model_result(ok)})])
    assert finish(run, [make_suite(tmp_path, IDS)], tmp_path / "out", approved) == 0
    (suite_gone,) = [w for w in run["warnings"] if "'domain_qa'" in w]
    assert "reports/baselines/fixture.json" in suite_gone and "did not evaluate" in suite_gone
    (adapter_gone,) = [w for w in run["warnings"] if "adapter 'domain'" in w]
    assert "on 'smoke'" in adapter_gone and "gate nothing" in adapter_gone
    assert not any("'sql'" in w for w in run["warnings"])  # what the run has is not named
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert suite_gone in written["warnings"] and adapter_gone in written["warnings"]
    # a run of everything the baseline approved says nothing of the kind
    full = results([suite_result({"base": model_result(ok), "sql": model_result(ok), "domain": model_result(ok)}),
                    suite_result({"base": model_result(ok), "domain": model_result(ok)}, name="domain_qa")])
    finish(full, [make_suite(tmp_path, IDS), make_suite(tmp_path, IDS, name="domain_qa")], tmp_path / "full", approved)
    assert not any("did not evaluate" in w or "does not evaluate" in w for w in full["warnings"])


def test_the_fixture_baseline_names_what_a_partial_run_left_out(tmp_path):
    """harness eval of one suite with one of the two approved adapters, gated against the
    committed baseline: PASS, and two WARNING lines name the five suites and the adapter left out."""
    from conftest import FIXTURE_MODEL, ROOT, run_harness

    done = run_harness("eval", str(ROOT / "suites" / "smoke.yaml"), "--model", str(FIXTURE_MODEL), "--adapter",
                       f"sql={ROOT / 'fixtures' / 'adapters' / 'sql'}", "--baseline",
                       str(ROOT / "reports" / "baselines" / "fixture.json"), "--quiet", "--out", str(tmp_path / "r"))
    assert done.returncode in (0, 1), done.stderr
    shown = [ln for ln in done.stdout.splitlines() if ln.startswith("  WARNING")]
    assert len(shown) == 2, done.stdout
    assert all(f"'{s}'" in shown[0] for s in ("domain_qa", "json_schema", "latency", "repetition", "sql"))
    assert "adapter 'domain' on 'smoke'" in shown[1]


def test_a_rename_is_named_once(tmp_path):
    """sql approved, sqlv2 run: baseline_coverage's 'no model sqlv2 ... (it has: base, sql); renamed?'
    already names both; the approved sql is not named a second time."""
    ok = {i: True for i in IDS}
    approved = summarize_run(results([suite_result({"base": model_result(ok), "sql": model_result(ok)})]))
    run = results([suite_result({"base": model_result(ok), "sqlv2": model_result(ok)})])
    finish(run, [make_suite(tmp_path, IDS)], tmp_path / "out", approved)
    assert not any("does not evaluate" in w for w in run["warnings"])
    assert any("no model 'sqlv2'" in w and "renamed?" in w for w in run["suites"][0]["warnings"])
