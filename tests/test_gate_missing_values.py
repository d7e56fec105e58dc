"""Items the reference has a value for and the candidate has none: a scorer that gives None
where an answer failed (a plugin's 'nothing to score' for an empty answer) dropped them from
the pairing, and a candidate that answered nothing on half the items passed its drop gate."""

from __future__ import annotations

import pytest

from factories import item, make_suite, model_result, suite_result
from harness.gates import evaluate_gates

IDS = [f"q{i:02d}" for i in range(20)]


@pytest.fixture(autouse=True)
def any_metric_names(monkeypatch):
    """exact_match stands in for a plugin with a per-item number `m` (metric_keys not stated)."""
    from harness.scorers.exact_match import ExactMatch

    monkeypatch.setattr(ExactMatch, "metric_keys", None)


def _model(values: dict[str, float | None], key_values: dict[str, float | None]) -> dict:
    items = []
    for i in IDS:
        it = item(i, None)
        it["scores"]["exact_match"]["value"] = values[i]
        it["scores"]["exact_match"]["metrics"] = {"m": key_values[i]}
        items.append(it)
    res = model_result(items)
    known = [v for v in values.values() if v is not None]
    res["metrics"]["exact_match"] = {"value": sum(known) / len(known), "ci_low": None, "ci_high": None,
                                     "n": len(known), "kind": "mean", "higher_is_better": True}
    return res


def test_a_candidate_with_no_value_where_the_base_has_one_fails_the_drop_gate(tmp_path):
    full = {i: 1.0 for i in IDS}
    half = {i: (None if k % 2 else 1.0) for k, i in enumerate(IDS)}
    sr = suite_result({"base": _model(full, full), "ft": _model(half, half)})
    suite = make_suite(tmp_path, IDS, {"exact_match": {"max_drop_vs_base": 0.05},
                                       "exact_match.m": {"max_drop_vs_base": 0.05}})
    gates, warnings = evaluate_gates(suite, sr, None)
    main = next(g for g in gates if g["metric"] == "exact_match")
    assert not main["passed"]  # 1.000 vs 1.000 on the 10 paired items passed before
    assert "10 item(s) scored for base have no value for ft (q01, q03, q05, q07, q09, …)" in main["reason"]
    assert main["details"]["missing"][:2] == ["q01", "q03"]
    # a per-item number (Score.metrics) may apply to some items only: named, not failed
    key = next(g for g in gates if g["metric"] == "exact_match.m")
    assert key["passed"] and any(w.startswith("exact_match.m vs base: 10 item(s)") for w in warnings)
    # the same items missing on both sides (a case with no target): nothing is said
    sr = suite_result({"base": _model(half, half), "ft": _model(half, half)})
    gates, warnings = evaluate_gates(suite, sr, None)
    assert all(g["passed"] for g in gates) and not any("no value" in w for w in warnings)


def test_a_pass_fail_metric_the_candidate_has_no_value_for_fails_its_default_gate(tmp_path):
    """A pass/fail scorer giving None to every answer of the candidate (all empty): the default
    drop gate was skipped and the run read 'no gate applied ... measured, not gated', exit 0."""
    base = model_result({i: True for i in IDS})
    ft = model_result([item(i, None) for i in IDS])  # value None, passed None: no metric at all
    assert "exact_match" not in ft["metrics"]
    gates, _ = evaluate_gates(make_suite(tmp_path, IDS), suite_result({"base": base, "ft": ft}), None)
    (gate,) = gates
    assert (gate["model"], gate["kind"], gate["passed"]) == ("ft", "missing", False)
    assert "produced no value" in gate["reason"]
    # nothing to miss where the reference has no value either: no gate, as before
    gates, _ = evaluate_gates(make_suite(tmp_path, IDS), suite_result({"base": ft, "ft": ft}), None)
    assert gates == []


def test_a_floor_counts_the_items_a_pass_fail_metric_left_unscored_as_failed(tmp_path):
    """A plugin scorer giving None (passed=None) on the candidate's failures: the floor counted
    the scored items only, 10 of 10 = 1.000 over a 0.8 floor, where 10 of 20 answered."""
    base = model_result({i: True for i in IDS})
    ft = model_result([item(i, None if k % 2 else True) for k, i in enumerate(IDS)])
    assert ft["metrics"]["exact_match"]["value"] == 1.0 and ft["metrics"]["exact_match"]["n"] == 10
    suite = make_suite(tmp_path, IDS, {"exact_match": {"min": 0.8}})
    gates, _ = evaluate_gates(suite, suite_result({"base": base, "ft": ft}), None)
    floor = next(g for g in gates if g["model"] == "ft" and g["kind"] == "min")
    assert not floor["passed"]
    assert floor["details"]["value"] == 0.5 and floor["details"]["n"] == 20
    assert "10 item(s) with no value counted as failed (q01, q03, q05, q07, q09, …)" in floor["reason"]
    # the baseline's same model scored them: counted too, with the candidate alone in the run
    from harness.baseline import summarize_run

    from factories import results

    approved = summarize_run(results([suite_result({"ft": base})]))["suites"][0]
    gates, _ = evaluate_gates(suite, suite_result({"ft": ft}), approved)
    assert not next(g for g in gates if g["kind"] == "min")["passed"]
    # no other model scored them either (cases with no target): the floor counts what it has
    gates, _ = evaluate_gates(suite, suite_result({"base": ft, "ft": ft}), None)
    floor = next(g for g in gates if g["model"] == "ft" and g["kind"] == "min")
    assert floor["passed"] and floor["details"]["n"] == 10 and "no value" not in floor["reason"]


def test_a_floor_on_a_scorer_mean_fails_where_items_have_no_value(tmp_path):
    full = {i: 1.0 for i in IDS}
    half = {i: (None if k % 2 else 1.0) for k, i in enumerate(IDS)}
    sr = suite_result({"base": _model(full, full), "ft": _model(half, half)})
    gates, _ = evaluate_gates(make_suite(tmp_path, IDS, {"exact_match": {"min": 0.5}}), sr, None)
    floor = next(g for g in gates if g["model"] == "ft" and g["kind"] == "min")
    assert not floor["passed"] and "no value stands for them" in floor["reason"]
