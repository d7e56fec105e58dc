"""A gate's direction: never reversed against what a scorer states, never guessed for a plugin
metric that states none (either way a drop gate passes the regression it is there to catch)."""

from __future__ import annotations

import pytest

from factories import item, make_suite, model_result, suite_result
from harness.errors import HarnessError
from harness.gates import evaluate_gates
from harness.scorers import Scorer, plugins

IDS = [f"q{i:02d}" for i in range(20)]


def test_a_gate_that_reverses_a_stated_direction_is_refused(tmp_path):
    # a pass rate is higher-is-better; `higher_is_better: false` on it passed a looping adapter
    # whose repetition fell from 1.000 to 0.031 ('0 of 1 gates passed; 1 passed but could not have failed', exit 0)
    with pytest.raises(HarnessError) as err:
        make_suite(tmp_path, IDS, {"exact_match": {"max_drop_vs_base": 0.1, "higher_is_better": False}})
    text = str(err.value)
    assert "smoke.yaml" in text and "gates.exact_match.higher_is_better" in text
    assert "exact_match is higher-is-better" in text and err.value.line is not None
    with pytest.raises(HarnessError, match=r"categories\.arith\.higher_is_better"):
        make_suite(tmp_path, IDS, {"exact_match": {"categories": {"arith": {
            "max_drop_vs_base": 0.1, "higher_is_better": False}}}})
    make_suite(tmp_path, IDS, {"exact_match": {"max_drop_vs_base": 0.1, "higher_is_better": True}})


class Toxic(Scorer):
    """States nothing about its metrics' directions."""
    name = "toxic"


class StatedToxic(Scorer):
    name = "toxic"
    lower_is_better = frozenset({"toxic"})


def _toxic_run(hib: bool) -> dict:
    def model(share: float) -> dict:
        items = [item(i, None, scorer="toxic") for i in IDS]
        for it in items:
            it["scores"]["toxic"]["value"] = share
        res = model_result(items)
        res["metrics"]["toxic"] = {"value": share, "ci_low": share, "ci_high": share, "n": len(IDS),
                                   "kind": "mean", "higher_is_better": hib}
        return res
    return suite_result({"base": model(0.09), "ft": model(0.20)})


@pytest.mark.parametrize("scorer, expected", [(Toxic, None), (StatedToxic, False)])
def test_a_plugin_metric_with_no_direction_needs_one_in_the_gate(tmp_path, monkeypatch, scorer, expected):
    from harness.metrics import declared_direction

    monkeypatch.setattr(plugins, "load_plugin", lambda name: scorer if name == "toxic" else None)
    assert declared_direction("toxic") is expected
    suite = make_suite(tmp_path, IDS, {"toxic": {"max_drop_vs_base": 0.01}}, scorer="toxic")
    run = _toxic_run(hib=expected is not False)  # what results.json records: higher when unstated
    if expected is None:
        # the share more than doubled and passed as a gain before
        with pytest.raises(HarnessError) as err:
            evaluate_gates(suite, run, None)
        assert "gates.toxic" in str(err.value) and "higher_is_better" in err.value.hint
        assert err.value.line is not None and "smoke.yaml" in str(err.value)
        suite = make_suite(tmp_path, IDS, {"toxic": {"max_drop_vs_base": 0.01, "higher_is_better": False}},
                           scorer="toxic")
    gates, _ = evaluate_gates(suite, run, None)
    (gate,) = gates
    assert not gate["passed"] and "allowed increase 0.010" in gate["reason"]


def test_a_gate_on_a_metric_its_scorer_does_not_produce_is_refused_at_load(tmp_path):
    # it failed after generating everything, as 'the run produced no value for this gated metric'
    with pytest.raises(HarnessError) as err:
        make_suite(tmp_path, IDS, {"exact_match.accuracy": {"min": 0.5}})
    assert "gates.exact_match.accuracy" in str(err.value) and err.value.line is not None
    assert "does not produce" in str(err.value) and "its metrics: exact_match" in err.value.hint


def test_every_built_in_scorer_states_the_metrics_it_produces():
    """metric_keys, what the load-time check trusts, against what the scorers emit."""
    from test_metric_definitions import emitted

    from harness.scorers import REGISTRY

    stated = {name if not key else f"{name}.{key}" for name, cls in REGISTRY.items()
              for key in {"", *cls.metric_keys}}
    assert stated == set(emitted())


def test_a_critical_gate_reads_the_direction_its_gate_sets(tmp_path, monkeypatch):
    """A plugin verdict that means 'toxic' and states no direction, gated `higher_is_better:
    false`: the drop gates read it lower-is-better, the critical gate read the scorer's assumed
    higher and failed on q01, which stopped being toxic, and passed q05, which started."""
    monkeypatch.setattr(plugins, "load_plugin", lambda name: Toxic if name == "toxic" else None)
    run = suite_result({"base": model_result([item(i, i == "q01", scorer="toxic") for i in IDS]),
                        "ft": model_result([item(i, i == "q05", scorer="toxic") for i in IDS])})
    assert run["models"]["ft"]["metrics"]["toxic"].get("higher_is_better", True)  # as results.json records it
    for critical, down in ((["q01", "q05"], ["q05"]), (["q01"], [])):
        suite = make_suite(tmp_path, IDS, {"toxic": {"critical": critical, "higher_is_better": False}},
                           scorer="toxic")
        gates, _ = evaluate_gates(suite, run, None)
        (gate,) = [g for g in gates if g["kind"] == "critical_vs_base"]
        assert gate["details"]["flipped_down"] == down and gate["passed"] == (not down), gate["reason"]
        assert gate["details"]["higher_is_better"] is False
    assert gate["details"]["at_risk"] == [] and "got worse (0→1)" in gate["reason"], gate["reason"]
    # q01 is toxic on base (its verdict passed): it read 'the base passes none of them'
    assert "passes none" not in gate["reason"] and "base is already at 1, the worse value" in gate["reason"]
