"""Every pass/fail delta says which change its ``flipped_down`` items went through
(``worse``: 'pass→fail' on a pass rate, '1→0' on a 0/1 mean, '0→1' where lower is better),
and the readers (gate reasons, junit items, the failed-gate cards, ``harness compare``) read
it. Before, the key was written only for the last two and a missing key was read as
pass→fail: a delta that lost it called a new leak pass→fail."""

from __future__ import annotations

from factories import model_result, schema_def_validator
from harness.compare import flip_change, flip_label, model_view, paired_delta
from harness.reports.items import gate_items
from harness.reports.junit import flipped_item_cases

IDS = [f"q{i:02d}" for i in range(20)]


def test_a_pass_rate_delta_says_pass_to_fail_and_the_schema_takes_it():
    base = model_view(model_result({i: True for i in IDS}))
    cand = model_view(model_result({i: i not in {"q03", "q04"} for i in IDS}))
    delta = paired_delta(base, cand, "exact_match")
    assert delta["flipped_down"] == ["q03", "q04"] and delta["worse"] == "pass→fail"
    assert list(schema_def_validator("delta").iter_errors(delta)) == []
    assert list(schema_def_validator("delta").iter_errors({**delta, "worse": "down"})) != []


def test_a_delta_without_the_key_is_not_read_as_pass_to_fail():
    lost = {"diff": 0.1, "flipped_down": ["q1"], "flipped_up": ["q2"]}  # no `worse`: no direction assumed
    assert (flip_change(lost, worse=True), flip_change(lost, worse=False)) == ("got worse", "got better")
    assert flip_label({flip_change(lost, worse=True)}, worse=True) == "got worse"
    suite = {"name": "smoke", "gates": [],
             "models": {"cand": {"items": [{"id": "q1", "output": "x"}, {"id": "q2", "output": "y"}]}},
             "comparisons": {"cand": {"leak": {"vs_base": lost}}}}
    notes = {c["name"]: c["reason"] for c in flipped_item_cases(suite)}
    assert notes["item q1 vs base"].startswith("got worse vs base on leak, not gated")
    assert notes["item q2 vs base"].startswith("got better vs base on leak")
    gate = {"kind": "max_drop_vs_base", "model": "cand", "metric": "leak", "passed": False,
            "details": {"flipped_down": ["q1"]}}
    assert gate_items(gate, suite)[0] == [("q1", "base", "leak got worse")]


def test_readers_take_the_change_from_the_key():
    suite = {"name": "smoke", "gates": [],
             "models": {"cand": {"items": [{"id": "q1", "output": "x"}]}},
             "comparisons": {"cand": {"keywords.all": {"vs_base": {"diff": -0.05, "flipped_down": ["q1"],
                                                                   "flipped_up": [], "worse": "1→0"}}}}}
    (case,) = flipped_item_cases(suite)
    assert case["reason"].startswith("got worse (1→0) vs base on keywords.all, not gated")
    gate = {"kind": "max_drop_vs_base", "model": "cand", "metric": "keywords.all", "passed": False,
            "details": {"flipped_down": ["q1"], "worse": "1→0"}}
    assert gate_items(gate, suite)[0] == [("q1", "base", "keywords.all got worse (1→0)")]
    gate["details"]["worse"] = "pass→fail"
    assert gate_items(gate, suite)[0] == [("q1", "base", "")]  # the caller says pass→fail vs its reference
