"""Gates the baseline was approved under, dropped or loosened in the suite since: named, since
gates are policy (not hashed) and `keywords: false` in a pull request passed silently."""

from __future__ import annotations

import pytest

import yaml

from factories import model_result, results, suite_result
from harness.baseline import summarize_run
from harness.gates import evaluate_gates, policy_changes

IDS = [f"q{i:02d}" for i in range(30)]
APPROVED = {"exact_match": {"max_drop_vs_base": 0.25, "max_drop_vs_baseline": 0.25, "critical": ["q01"],
                            "categories": {"a": {"max_drop_vs_base": 0.5}}}}


def make_suite(tmp_path, ids, gates):
    """A real suite whose cases are all in category `a`."""
    from harness.suite import load_suite

    doc = {"name": "smoke", "prompt": "{{ q }}", "target": "{{ a }}", "scorers": [{"exact_match": {}}],
           "gates": gates, "cases": [{"id": i, "q": f"Question {i}?", "a": "4", "category": "a"} for i in ids]}
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_suite(path)


def _run() -> dict:
    ok = {i: True for i in IDS}
    sr = suite_result({"base": model_result(ok, category="a"), "ft": model_result(ok, category="a")})
    return sr


def _approved(tmp_path) -> dict:
    sr = _run()
    sr["gates"], _ = evaluate_gates(make_suite(tmp_path, IDS, APPROVED), sr, None)
    return summarize_run(results([sr]))["suites"][0]


@pytest.mark.parametrize("now, expected", [
    (APPROVED, []),
    ({"exact_match": {**APPROVED["exact_match"], "max_drop_vs_base": 0.1}}, []),  # tightened
    ({"exact_match": {**APPROVED["exact_match"], "max_drop_vs_base": 0.9}},
     ["gate exact_match max_drop_vs_base loosened since the baseline was approved: 0.250 -> 0.900 (ft;"]),
    ({"exact_match": False}, ["exact_match max_drop_vs_base (ft)", "exact_match critical_vs_base (ft)",
                              "exact_match[a] max_drop_vs_base (ft)"]),
    (False, ["exact_match max_drop_vs_base (ft)", "exact_match[a] max_drop_vs_base (ft)"]),
    ({"exact_match": {"max_drop_vs_base": 0.25, "max_drop_vs_baseline": 0.25}},
     ["exact_match critical_vs_base (ft)", "exact_match[a] max_drop_vs_base (ft)"]),
    ({"exact_match": {**APPROVED["exact_match"], "max_drop_vs_base": None}}, ["exact_match max_drop_vs_base (ft)"]),
])
def test_dropped_and_loosened_gates_are_named(tmp_path, now, expected):
    approved = _approved(tmp_path)
    assert any(g.get("limit") == 0.25 for g in approved["gates"])  # the baseline keeps the margins
    warnings = policy_changes(make_suite(tmp_path, IDS, now), _run(), approved)
    text = " | ".join(warnings)
    for part in expected:
        assert part in text, text
    if not expected:
        assert warnings == []
    # defaults still give the 0.05 drop gate on a pass/fail metric: not 'gone' unless turned off
    assert ("gone from the suite's policy" in text) == any("(ft)" in p and "loosened" not in p for p in expected)


def test_a_baseline_without_margins_names_only_dropped_gates(tmp_path):
    approved = _approved(tmp_path)
    for g in approved["gates"]:
        g.pop("limit", None)  # approved by an older harness
    loose = {"exact_match": {**APPROVED["exact_match"], "max_drop_vs_base": 0.9}}
    assert policy_changes(make_suite(tmp_path, IDS, loose), _run(), approved) == []
    assert policy_changes(make_suite(tmp_path, IDS, {"exact_match": False}), _run(), approved)


def test_finish_names_them_in_the_suite_warnings(tmp_path):
    from harness.runner import finish

    approved = summarize_run(results([dict(_run(), gates=evaluate_gates(
        make_suite(tmp_path, IDS, APPROVED), _run(), None)[0])]))
    run = results([_run()])
    assert finish(run, [make_suite(tmp_path, IDS, {"exact_match": False})], tmp_path / "out", approved) == 0
    assert any("gone from the suite's policy" in w for w in run["suites"][0]["warnings"])


def test_a_cluster_declaration_removed_since_approval_is_named(tmp_path):
    """`cluster:` is policy too (not hashed): removed, the intervals against the base count the
    items as independent again (sql.yaml: 100 items instead of 25 tables) with nothing said."""
    approved = _approved(tmp_path)
    for item in approved["models"]["ft"]["items"]:
        item["cluster"] = f"t{int(item['id'][1:]) % 5}"
    (warning,) = policy_changes(make_suite(tmp_path, IDS, APPROVED), _run(), approved)
    assert "approved with `cluster:`" in warning and "no longer declares it" in warning
    doc = yaml.safe_load((tmp_path / "smoke.yaml").read_text())
    doc["cluster"] = "a"  # declared (here: the category field), as approved
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    from harness.suite import load_suite

    assert policy_changes(load_suite(tmp_path / "smoke.yaml"), _run(), approved) == []


def test_the_pytest_plugin_names_them_with_its_baseline_warnings(tmp_path):
    from conftest import FIXTURE_MODEL, ROOT
    from harness.baseline import approve
    from harness.pytest_plugin import run_harness_eval

    adapters = {"sql": str(ROOT / "fixtures" / "adapters" / "sql")}
    first = run_harness_eval(str(ROOT / "suites" / "smoke.yaml"), str(FIXTURE_MODEL), adapters, out=tmp_path / "v1")
    baseline = approve(first.out, tmp_path / "baseline.json")
    edited = tmp_path / "suites" / "smoke.yaml"
    edited.parent.mkdir()
    text = (ROOT / "suites" / "smoke.yaml").read_text()
    edited.write_text(text.replace("exact_match: {max_drop_vs_base: 0.6, max_drop_vs_baseline: 0.6}",
                                   "exact_match: false"))
    assert edited.read_text() != text
    run = run_harness_eval(str(edited), str(FIXTURE_MODEL), adapters, baseline=baseline, out=tmp_path / "v2")
    assert any("gone from the suite's policy: exact_match max_drop_vs_base (sql)" in w
               for w in run.baseline_warnings), run.baseline_warnings
    assert run.exit_code == 0
    strict = run_harness_eval(str(edited), str(FIXTURE_MODEL), adapters, baseline=baseline, out=tmp_path / "v3",
                              strict_baseline=True)  # --harness-strict-baseline
    assert strict.exit_code == 1 and not any("gone from" in w for w in strict.baseline_warnings)
    failed = [g for s in strict.results["suites"] for g in s["gates"] if not g["passed"]]
    assert [(g["model"], g["metric"], g["kind"]) for g in failed] == [("sql", "exact_match", "policy_dropped")]
    assert "(approved: 0.600; now: none)" in failed[0]["reason"]


@pytest.mark.parametrize("now, kind, approved, limit_now, shown", [
    ({"exact_match": {**APPROVED["exact_match"], "max_drop_vs_base": 0.9}}, "policy_loosened", 0.25, 0.9,
     "(approved: 0.250; now: 0.900)"),
    ({"exact_match": {**APPROVED["exact_match"], "max_drop_vs_base": None}}, "policy_dropped", 0.25, None,
     "(approved: 0.250; now: none)"),
    ({"exact_match": {"max_drop_vs_base": 0.25, "max_drop_vs_baseline": 0.25}}, "policy_dropped", None, None,
     "(approved: in force; now: none)"),
])
def test_strict_baseline_fails_a_loosened_or_dropped_gate(tmp_path, now, kind, approved, limit_now, shown):
    """--strict-baseline: a pull request loosening a gate against the approved baseline is what a
    strict CI blocks; without it the same run passes with the warning."""
    import json

    from harness.runner import finish

    baseline = summarize_run(results([dict(_run(), gates=evaluate_gates(
        make_suite(tmp_path, IDS, APPROVED), _run(), None)[0])]))
    suite = make_suite(tmp_path, IDS, now)
    lax = results([_run()])
    assert finish(lax, [suite], tmp_path / "lax", baseline) == 0
    assert all(g["passed"] for g in lax["suites"][0]["gates"])
    strict = results([_run()])
    assert finish(strict, [suite], tmp_path / "strict", baseline, strict_baseline=True) == 1
    (failed,) = [g for g in strict["suites"][0]["gates"] if not g["passed"] and g["metric"] == "exact_match"]
    assert failed["kind"] == kind and failed["details"]["gate"] in ("max_drop_vs_base", "critical_vs_base") and failed["model"] == "ft" and failed["metric"] == "exact_match"
    assert failed["details"]["approved"] == approved and failed["details"]["now"] == limit_now
    assert shown in failed["reason"] and "--strict-baseline" in failed["reason"]
    # once, as the failed gate, not again as a warning (summary.md listed both)
    assert any("the baseline was approved" in w for w in lax["suites"][0]["warnings"])
    assert not any("the baseline was approved" in w for w in strict["suites"][0]["warnings"])
    written = json.loads((tmp_path / "strict" / "results.json").read_text())
    assert written["verdict"] == "fail"
    assert shown in (tmp_path / "strict" / "summary.md").read_text()
    assert shown in (tmp_path / "strict" / "junit.xml").read_text()
    assert shown in (tmp_path / "strict" / "index.html").read_text()


@pytest.mark.parametrize("strict", [False, True])
def test_finish_looks_for_policy_changes_once_per_suite(tmp_path, monkeypatch, strict):
    """A strict run made the same findings twice per suite (once for the warnings it then
    listed a second time, once for the failed gates); either way it is one look now."""
    from harness import gates
    from harness.runner import finish

    baseline = summarize_run(results([dict(_run(), gates=evaluate_gates(
        make_suite(tmp_path, IDS, APPROVED), _run(), None)[0])]))
    calls = []
    real = gates._policy_findings
    monkeypatch.setattr(gates, "_policy_findings", lambda *a: calls.append(1) or real(*a))
    loose = make_suite(tmp_path, IDS, {"exact_match": {**APPROVED["exact_match"], "max_drop_vs_base": 0.9}})
    assert finish(results([_run()]), [loose], tmp_path / "out", baseline, strict_baseline=strict) == int(strict)
    assert len(calls) == 1


def test_strict_baseline_fails_a_removed_cluster(tmp_path):
    from harness.runner import finish

    baseline = summarize_run(results([dict(_run(), gates=evaluate_gates(
        make_suite(tmp_path, IDS, APPROVED), _run(), None)[0])]))
    for item in baseline["suites"][0]["models"]["ft"]["items"]:
        item["cluster"] = f"t{int(item['id'][1:]) % 5}"
    run = results([_run()])
    assert finish(run, [make_suite(tmp_path, IDS, APPROVED)], tmp_path / "out", baseline, strict_baseline=True) == 1
    (failed,) = [g for g in run["suites"][0]["gates"] if not g["passed"]]
    assert failed["kind"] == "cluster_removed" and "(approved: declared; now: none)" in failed["reason"]


def test_baseline_notes_leave_the_failed_policy_gates_to_the_failed_lines(tmp_path):
    approved = _approved(tmp_path)
    baseline = {"suites": [approved]}
    loose = make_suite(tmp_path, IDS, {"exact_match": {**APPROVED["exact_match"], "max_drop_vs_base": 0.9}})
    from harness.baseline import baseline_notes

    run = results([_run()])
    (note,) = baseline_notes(baseline, run, [loose])
    assert "loosened" in note and note.endswith("(--strict-baseline fails it)")
    assert baseline_notes(baseline, run, [loose], strict=True) == []


@pytest.mark.parametrize("kind", ["min_gain_vs_base", "min_gain_vs_baseline"])
def test_a_smaller_required_gain_is_a_loosened_gate(tmp_path, kind):
    """A gain gate lets more through as its gain gets smaller: 0.10 -> 0.00 is loosened, 0.10 ->
    0.20 tightened. min_gain_vs_baseline's entry was untested: read the other way round (larger
    looser) every test still passed, and lowering the gain the release must beat went unnamed."""
    approved = _approved(tmp_path)
    approved["gates"].append({"suite": "smoke", "model": "ft", "metric": "exact_match", "kind": kind,
                              "passed": True, "reason": "approved", "limit": 0.1})
    for now, loosened in ((0.0, True), (0.2, False), (0.1, False)):
        gates = {"exact_match": {**APPROVED["exact_match"], kind: now}}
        text = " | ".join(policy_changes(make_suite(tmp_path, IDS, gates), _run(), approved))
        assert (f"gate exact_match {kind} loosened since the baseline was approved: 0.100 -> {now:.3f}" in text) \
            == loosened, text
