"""A mean metric whose paired values are all 0 or 1 (keywords.all, repetition.loop,
json_schema.parsed, ...) is a paired difference of pass rates: it takes Tango's paired score
interval with flips and McNemar's p, as a pass/fail metric does, and every consumer reads it
as one (docs/ci-gating.md, "The statistics behind a drop gate")."""

from __future__ import annotations

import numpy as np

from harness import calibration as cal
from harness.compare import ModelView, model_view, paired_delta
from harness.gates import evaluate_gates, vacuous
from harness.metrics import metric
from harness.stats import tango_paired_ci


def _view(values: list[float], name: str = "partial", hib: bool = True, outputs: list[str] | None = None,
          clusters: list[str] | None = None) -> ModelView:
    ids = [f"i{k}" for k in range(len(values))]
    return ModelView(metrics={name: metric(float(np.mean(values)), None, None, len(values), "mean", hib)},
                     series={name: dict(zip(ids, map(float, values)))},
                     outputs=dict(zip(ids, outputs or [f"out {k} {v}" for k, v in enumerate(values)])),
                     clusters=dict(zip(ids, clusters)) if clusters else {})


def _gated_result(base: np.ndarray, cand: np.ndarray) -> dict:
    """A suite result for evaluate_gates: base and cand on the ``partial`` mean, every output
    rewritten (so any item may flip)."""
    ob, oc = cal._outputs(len(base), np.ones(len(base), dtype=bool))
    return {"name": "s", "models": {"base": cal._mean_model(base, ob), "cand": cal._mean_model(cand, oc)},
            "scorers": {}}


def _two_of_24_got_worse() -> dict:
    """i0 and i1 went 1 -> 0; i0-i11 pass on base, i12-i23 fail on both."""
    base = np.array([1.0] * 12 + [0.0] * 12)
    cand = base.copy()
    cand[:2] = 0.0
    return _gated_result(base, cand)


def test_a_zero_one_mean_gets_tangos_interval_flips_and_mcnemar():
    base = [1.0] * 30 + [0.0] * 10
    cand = [0.0] * 4 + [1.0] * 26 + [1.0] + [0.0] * 9  # i0-i3 lost, i30 gained
    d = paired_delta(_view(base), _view(cand), "partial")
    assert d["flipped_down"] == ["i0", "i1", "i2", "i3"] and d["flipped_up"] == ["i30"]
    assert (d["ci_low"], d["ci_high"]) == tango_paired_ci(4, 1, 40)
    assert d["mcnemar_p"] < 1.0 and d["diff"] == -3 / 40
    assert "Tango" in d["method"] and "every value 0 or 1" in d["method"]


def test_a_lower_is_better_zero_one_mean_names_the_items_that_got_worse():
    base = [0.0] * 36 + [1.0] * 4
    cand = [1.0] * 3 + [0.0] * 33 + [1.0] * 3 + [0.0]  # i0-i2 started looping, i39 stopped
    d = paired_delta(_view(base, "repetition.loop", hib=False), _view(cand, "repetition.loop", hib=False),
                     "repetition.loop")
    assert d["flipped_down"] == ["i0", "i1", "i2"] and d["flipped_up"] == ["i39"] and d["worse"] == "0→1"
    low, high = tango_paired_ci(3, 1, 40)
    assert d["diff"] == 2 / 40 and (d["ci_low"], d["ci_high"]) == (-high, -low)


def test_identical_outputs_on_a_zero_one_mean_pass_with_zero_width():
    base = [1.0, 0.0] * 10
    d = paired_delta(_view(base, outputs=list("abcdefghijklmnopqrst")),
                     _view(list(base), outputs=list("abcdefghijklmnopqrst")), "partial")
    assert d["ci_low"] == d["ci_high"] == 0.0 and d["method"].startswith("identical outputs")


def test_a_clustered_zero_one_mean_counts_through_the_design_effect():
    base = [1.0] * 40
    clusters = [f"c{k // 4}" for k in range(40)]
    rewritten = [f"rewritten {k}" for k in range(40)]
    d = paired_delta(_view(base, clusters=clusters), _view(list(base), outputs=rewritten, clusters=clusters), "partial")
    assert d["design_effect"] == 4.0 and d["n_eff"] == 10.0  # nothing flipped: each cluster one item
    assert (d["ci_low"], d["ci_high"]) == tango_paired_ci(0, 0, 10)


def test_the_gate_says_which_items_got_worse_warns_on_power_and_marks_a_zero_reference_vacuous():
    result = _two_of_24_got_worse()
    gates, warnings = evaluate_gates(cal._suite({"partial": {"max_drop_vs_base": 0.05}}), result, None)
    (gate,) = [g for g in gates if g["kind"] == "max_drop_vs_base"]
    assert not gate["passed"] and "2 got worse (1→0) (i0, i1)" in gate["reason"]
    assert gate["details"]["flipped_down"] == ["i0", "i1"]
    assert any("partial vs base" in w for w in warnings)  # 24 items cannot show a 0.05 margin
    result = _gated_result(np.zeros(24), np.zeros(24))
    gates, _ = evaluate_gates(cal._suite({"partial": {"max_drop_vs_base": 0.25}}), result, None)
    (gate,) = [g for g in gates if g["kind"] == "max_drop_vs_base"]
    assert gate["passed"] and vacuous(gate, result["models"]["cand"]["metrics"]["partial"])


def test_a_zero_one_mean_at_zero_is_vacuous_even_where_its_worst_case_could_fail():
    # under a 0.05 margin the worst candidate's interval (no flips on 24 items) reaches past
    # the margin, so worst_case does not say could-not-fail; the reference at 0 on every item
    # does (nothing can drop below 0): the mean is bounded as a proportion is
    result = _gated_result(np.zeros(24), np.zeros(24))
    gates, _ = evaluate_gates(cal._suite({"partial": {"max_drop_vs_base": 0.05}}), result, None)
    (gate,) = [g for g in gates if g["kind"] == "max_drop_vs_base"]
    assert gate["details"]["worst_case"]["passed"] is False
    assert vacuous(gate, result["models"]["cand"]["metrics"]["partial"])


def test_a_mean_with_a_half_value_keeps_the_bootstrap():
    base = [1.0, 0.5] + [1.0] * 18
    d = paired_delta(_view(base), _view([0.0] + base[1:]), "partial")
    assert "BCa" in d["method"] and "flipped_down" not in d


def test_a_critical_gate_on_a_zero_one_mean_says_the_deltas_change():
    """The drop gate and the delta said 1→0 for the same items while the critical gate beside
    them said 'pass→fail': one change, one set of words (``compare.flip_change``)."""
    result = _two_of_24_got_worse()
    gates, _ = evaluate_gates(cal._suite({"partial": {"critical": ["i0", "i5"]}}), result, None)
    (gate,) = [g for g in gates if g["kind"] == "critical_vs_base"]
    assert not gate["passed"] and gate["details"]["flipped_down"] == ["i0"]
    assert gate["reason"].startswith("partial: critical item(s) got worse (1→0) against base: i0"), gate["reason"]
    assert "pass→fail" not in gate["reason"] and gate["details"]["worse"] == "1→0"
    gates, _ = evaluate_gates(cal._suite({"partial": {"critical": ["i5"]}}), result, None)
    (gate,) = [g for g in gates if g["kind"] == "critical_vs_base"]
    assert gate["passed"] and gate["reason"] == "partial: none of 1 critical items got worse (1→0) against base"
