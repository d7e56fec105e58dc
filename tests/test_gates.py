"""Gates: A/A never fails, planted regressions fail with reasons that state the numbers."""

from __future__ import annotations

import pytest

from factories import item, make_suite, model_result, suite_result
from harness.baseline import baseline_coverage, summarize_run
from harness.errors import HarnessError
from harness.gates import comparisons_for, evaluate_gates, validate_policy

IDS = [f"q{i:02d}" for i in range(30)]


@pytest.fixture(autouse=True)
def any_metric_names(monkeypatch):
    """exact_match stands in for any scorer here, with per-item numbers of its own (seconds,
    seq_rep_4): as a plugin that does not state its metric names (metric_keys None)."""
    from harness.scorers.exact_match import ExactMatch

    monkeypatch.setattr(ExactMatch, "metric_keys", None)


def verdicts(failing: set[str] = frozenset()) -> dict[str, bool]:
    return {i: i not in failing for i in IDS}


def failed(gates):
    return [g for g in gates if not g["passed"]]


@pytest.mark.parametrize("gates", [None, {"exact_match": {"max_drop_vs_base": 0.0, "critical": ["q01"]}},
                                   {"exact_match": {"max_drop_vs_base": 0.05, "min": 0.5}}])
def test_a_a_never_fails(tmp_path, gates):
    base = verdicts({"q03", "q07"})
    sr = suite_result({"base": model_result(base), "ft": model_result(base, fingerprint="sha256:ft"),
                       "ft2": model_result(base, fingerprint="sha256:ft")})
    result, warnings = evaluate_gates(make_suite(tmp_path, IDS, gates), sr, None)
    assert result and not failed(result)
    assert {g["model"] for g in result} == {"ft", "ft2"}
    drop = [g for g in result if g["kind"] == "max_drop_vs_base"]
    assert drop[0]["details"]["diff"] == 0.0 and drop[0]["details"]["flipped_down"] == []
    assert "0 flipped pass→fail" in drop[0]["reason"]


def test_base_alone_against_itself_as_baseline(tmp_path):
    run = {"suites": [suite_result({"base": model_result(verdicts({"q05"}))})]}
    baseline = summarize_run(run)["suites"][0]
    result, _ = evaluate_gates(make_suite(tmp_path, IDS), run["suites"][0], baseline)
    assert [g["kind"] for g in result] == ["max_drop_vs_baseline"] and not failed(result)


def test_planted_regression_fails_with_numbers(tmp_path):
    base = verdicts({"q29"})
    ft = verdicts({"q01", "q02", "q03", "q04", "q05", "q06"})
    sr = suite_result({"base": model_result(base), "ft": model_result(ft)})
    result, warnings = evaluate_gates(make_suite(tmp_path, IDS), sr, None)
    (gate,) = failed(result)
    assert (gate["model"], gate["metric"], gate["kind"]) == ("ft", "exact_match", "max_drop_vs_base")
    reason = gate["reason"]
    # point estimate, interval, margin, flipped items, McNemar
    assert "ft - base = -0.167" in reason
    assert "95% CI" in reason and "allowed drop 0.050" in reason
    assert "6 flipped pass→fail (q01, q02, q03, q04, q05, q06), 1 fail→pass" in reason
    assert "McNemar p=0.125" in reason  # binom.test(1, 7)$p.value = 0.125
    d = gate["details"]
    assert d["ci_low"] < -0.05 and d["ci_low"] <= d["diff"] <= d["ci_high"]
    assert d["policy"] == "default" and d["n"] == 30
    assert any("paired items" in w for w in warnings)  # 30 items cannot show a 0.05 margin


def test_a_gate_its_items_cannot_pass_says_so_in_its_reason(tmp_path):
    """3 items and a 0.05 margin: an adapter that changed outputs but no verdict failed with only
    "the lower bound is below -0.050" (harness init's starter suite, the first run a user makes);
    the cause, too few items, was in a warning elsewhere. A gate with enough items says nothing."""
    ids = ["a", "b", "c"]
    sr = suite_result({"base": model_result({i: False for i in ids}),
                       "ft": model_result({i: False for i in ids}, fingerprint="sha256:ft", output="other")})
    result, _ = evaluate_gates(make_suite(tmp_path, ids), sr, None)
    (gate,) = failed(result)
    assert gate["reason"].endswith("3 items can only show a margin of about 0.362, so an equally good model "
                                   "would likely fail this gate too: add items, or widen the margin (see the warnings)")
    big = [f"q{i:03d}" for i in range(400)]
    base = {i: True for i in big}
    ft = dict(base, **{i: False for i in big[:80]})  # a real regression on a suite that can show 0.05
    sr = suite_result({"base": model_result(base), "ft": model_result(ft)})
    (gate,) = failed(evaluate_gates(make_suite(tmp_path, big), sr, None)[0])
    assert "can only show" not in gate["reason"]
    from harness.gates import _too_few_items

    assert _too_few_items({"n": 0, "ref_value": 0.5}, 0.05) == ""  # no paired items: no "margin of inf"


def test_a_drop_past_the_margin_is_not_blamed_on_too_few_items(tmp_path):
    """An adapter that lost every item the base passed (0.500 -> 0.000 on 30 items) failed with
    "... 30 items can only show a margin of about 0.3, so an equally good model would likely fail
    this gate too: add items, or widen the margin": the measured drop, not the item count, failed
    it, and the advice sent the user to loosen the gate. Only a failure from the interval's width
    (a point estimate within the margin) gets that clause."""
    half = set(IDS[:15])
    sr = suite_result({"base": model_result(verdicts(half)), "ft": model_result(verdicts(set(IDS)))})
    (gate,) = failed(evaluate_gates(make_suite(tmp_path, IDS), sr, None)[0])
    assert "ft - base = -0.500" in gate["reason"]
    assert "can only show" not in gate["reason"] and "widen the margin" not in gate["reason"]
    from harness.gates import _too_few_items

    within = {"n": 30, "ref_value": 0.5, "diff": -0.03}
    assert "can only show a margin" in _too_few_items(within, 0.05)  # width, not the estimate
    assert _too_few_items(dict(within, diff=-0.2), 0.05) == ""
    # lower is better: the worse side is an increase
    assert _too_few_items(dict(within, diff=0.2), 0.05, hib=False) == ""
    assert "can only show a margin" in _too_few_items(dict(within, diff=-0.2), 0.05, hib=False)


def test_improvement_only_passes_and_superiority_gate(tmp_path):
    base = verdicts({"q01", "q02", "q03", "q04", "q05", "q06", "q07", "q08"})
    ft = verdicts()
    sr = suite_result({"base": model_result(base), "ft": model_result(ft)})
    gates = {"exact_match": {"max_drop_vs_base": 0.0, "min_gain_vs_base": 0.0}}
    result, _ = evaluate_gates(make_suite(tmp_path, IDS, gates), sr, None)
    assert not failed(result)
    gain = [g for g in result if g["kind"] == "min_gain_vs_base"][0]
    assert "lower bound is beyond +0.000" in gain["reason"]
    # A/A is not "better"
    sr = suite_result({"base": model_result(base), "ft": model_result(base)})
    result, _ = evaluate_gates(make_suite(tmp_path, IDS, gates), sr, None)
    assert [g["kind"] for g in failed(result)] == ["min_gain_vs_base"]


def test_a_gain_over_the_last_release_can_be_written_and_fails_when_not_shown(tmp_path):
    """`min_gain_vs_baseline` ("the adapter must be better than the last release") was
    evaluated here but refused by the suite schema as an unknown field, so it could not be
    written. It loads (in a category too), is named among the baseline bounds a run without
    a baseline leaves unchecked, passes a clear gain over the baseline and fails an equal one."""
    from harness.gates import written_baseline_bounds

    import yaml

    from harness.suite import load_suite

    path = tmp_path / "release.yaml"
    path.write_text(yaml.safe_dump({
        "name": "release", "prompt": "{{ q }}", "target": "{{ a }}", "scorers": [{"exact_match": {}}],
        "gates": {"exact_match": {"min_gain_vs_baseline": 0.0, "categories": {"ops": {"min_gain_vs_baseline": 0.1}}}},
        "cases": [{"id": i, "q": f"Question {i}?", "a": "4", "category": "ops"} for i in IDS]}))
    suite = load_suite(path)
    assert suite.gates["exact_match"]["min_gain_vs_baseline"] == 0.0
    assert written_baseline_bounds(suite) == ["exact_match min_gain_vs_baseline",
                                              "exact_match[ops] min_gain_vs_baseline"]
    release = verdicts({"q01", "q02", "q03", "q04", "q05", "q06", "q07", "q08"})
    baseline = summarize_run({"suites": [suite_result({"base": model_result(verdicts(set(IDS))),
                                                       "ft": model_result(release)})]})["suites"][0]
    plain = make_suite(tmp_path, IDS, {"exact_match": {"min_gain_vs_baseline": 0.0}}, name="plain")

    def gain_gate(ft: dict[str, bool]) -> dict:
        sr = suite_result({"base": model_result(verdicts(set(IDS))), "ft": model_result(ft)})
        result, _ = evaluate_gates(plain, sr, baseline)
        (gate,) = [g for g in result if g["kind"] == "min_gain_vs_baseline"]
        return gate

    better = gain_gate(verdicts())  # fixes all eight items the release failed
    assert better["passed"] and "lower bound is beyond +0.000" in better["reason"], better["reason"]
    same = gain_gate(release)  # the release again: no gain shown
    assert not same["passed"] and "lower bound is not beyond +0.000" in same["reason"], same["reason"]
    assert same["model"] == "ft" and "baseline ft" in same["reason"]


def test_a_gain_over_the_last_release_is_checked_like_the_gain_over_base(tmp_path):
    for bad, needle in ((-0.1, "minimum"), ("much", "number")):
        with pytest.raises(HarnessError) as err:
            make_suite(tmp_path, IDS, {"exact_match": {"min_gain_vs_baseline": bad}})
        assert "min_gain_vs_baseline" in str(err.value) and needle in str(err.value), str(err.value)


def test_min_floor_and_empty_policy(tmp_path):
    sr = suite_result({"base": model_result(verdicts()), "ft": model_result(verdicts(set(IDS[:20])))})
    result, _ = evaluate_gates(make_suite(tmp_path, IDS, {"exact_match": {"min": 0.5}}), sr, None)
    gate = [g for g in result if g["kind"] == "min"][0]
    assert not gate["passed"]
    assert gate["reason"].startswith("exact_match = 0.333 (95% CI 0.192–0.512, n=30), below the floor 0.500")
    # A floor does not switch the default drop gate off: the 20-item drop fails it too.
    drop = [g for g in result if g["kind"] == "max_drop_vs_base"][0]
    assert not drop["passed"] and drop["details"]["policy"] == "default"


@pytest.mark.parametrize("gates", [None, {}, {"exact_match": {"min": 0.0}},
                                   {"exact_match.seconds": {"max": 100.0}}])
def test_defaults_apply_unless_turned_off(tmp_path, gates):
    """Any `gates:` that does not turn a pass/fail metric off still gets its default drop gates."""
    sr = suite_result({"base": model_result(verdicts()), "ft": model_result(verdicts(set(IDS[:10])))})
    result, _ = evaluate_gates(make_suite(tmp_path, IDS, gates), sr, None)
    drop = [g for g in result if (g["metric"], g["kind"]) == ("exact_match", "max_drop_vs_base")]
    assert len(drop) == 1 and not drop[0]["passed"]


@pytest.mark.parametrize("gates", [False, {"exact_match": False}])
def test_gating_off_is_explicit(tmp_path, gates):
    sr = suite_result({"base": model_result(verdicts()), "ft": model_result(verdicts(set(IDS[:10])))})
    assert evaluate_gates(make_suite(tmp_path, IDS, gates), sr, None)[0] == []


def test_null_drops_one_default_and_margin_overrides(tmp_path):
    sr = suite_result({"base": model_result(verdicts()), "ft": model_result(verdicts(set(IDS[:10])))})
    gates = {"exact_match": {"max_drop_vs_base": None, "max_drop_vs_baseline": 0.5}}
    result, _ = evaluate_gates(make_suite(tmp_path, IDS, gates), sr, None)
    assert not [g for g in result if g["kind"] == "max_drop_vs_base"]
    baseline = summarize_run({"suites": [suite_result({"ft": model_result(verdicts(set(IDS[:10])))})]})
    result, _ = evaluate_gates(make_suite(tmp_path, IDS, gates), sr, baseline["suites"][0])
    (gate,) = result
    assert gate["kind"] == "max_drop_vs_baseline" and gate["details"]["margin"] == 0.5
    assert gate["details"]["policy"] == "suite" and gate["passed"]


def test_critical_item_flip_fails_even_when_margin_allows(tmp_path):
    base, ft = verdicts(), verdicts({"q07"})
    sr = suite_result({"base": model_result(base), "ft": model_result(ft)})
    gates = {"exact_match": {"max_drop_vs_base": 0.5, "critical": ["q07", "q08"]}}
    result, _ = evaluate_gates(make_suite(tmp_path, IDS, gates), sr, None)
    (gate,) = failed(result)
    assert gate["kind"] == "critical_vs_base"
    assert "critical item(s) flipped pass→fail against base: q07 (2 critical items checked)" in gate["reason"]


def _timed(ids, seconds, seq_rep):
    items = [item(i, True, metrics={"seconds": s, "seq_rep_4": r}) for i, s, r in zip(ids, seconds, seq_rep)]
    res = model_result(items)
    # an aggregate-only quantile metric, as a latency scorer reports it
    res["metrics"]["exact_match.seconds_p95"] = {"value": sorted(seconds)[int(0.95 * (len(seconds) - 1))],
                                                  "ci_low": None, "ci_high": None, "n": len(seconds),
                                                  "kind": "quantile", "higher_is_better": False}
    res["metrics"]["exact_match.seconds"]["higher_is_better"] = False
    return res


def test_lower_is_better_metrics_and_relative_tolerance(tmp_path):
    n = len(IDS)
    base = _timed(IDS, [1.0 + 0.01 * k for k in range(n)], [0.02] * n)
    slow = _timed(IDS, [2.0 + 0.01 * k for k in range(n)], [0.40] * n)
    same = _timed(IDS, [1.0 + 0.01 * k for k in range(n)], [0.02] * n)
    gates = {"exact_match.seq_rep_4": {"max_drop_vs_base": 0.05},
             "exact_match.seconds_p95": {"rel_tolerance_vs_base": 0.25},
             "exact_match.seconds": {"max": 1.5}}
    suite = make_suite(tmp_path, IDS, gates)
    result, _ = evaluate_gates(suite, suite_result({"base": base, "ft": slow}), None)
    by_kind = {(g["metric"], g["kind"]): g for g in result}
    rep = by_kind[("exact_match.seq_rep_4", "max_drop_vs_base")]
    assert not rep["passed"] and "allowed increase 0.050: the upper bound is above +0.050" in rep["reason"]
    lat = by_kind[("exact_match.seconds_p95", "rel_tolerance_vs_base")]
    assert not lat["passed"] and "(25% of 1.276)" in lat["reason"] and "paired" in lat["reason"]
    assert lat["details"]["statistic"] == "p95"
    assert not by_kind[("exact_match.seconds", "max")]["passed"]
    result, _ = evaluate_gates(suite, suite_result({"base": base, "ft": same}), None)
    assert not failed(result)


def test_baseline_regression_named_against_baseline(tmp_path):
    approved = {"suites": [suite_result({"base": model_result(verdicts({"q00"})),
                                         "ft": model_result(verdicts())})]}
    baseline = summarize_run(approved)["suites"][0]
    # new ft: as good as base, but worse than the approved ft
    now = suite_result({"base": model_result(verdicts({"q00"})),
                        "ft": model_result(verdicts({"q00", "q10", "q11", "q12", "q13"}))})
    gates = {"exact_match": {"max_drop_vs_baseline": 0.05, "max_drop_vs_base": None}}
    result, warnings = evaluate_gates(make_suite(tmp_path, IDS, gates), now, baseline)
    (gate,) = failed(result)
    assert gate["kind"] == "max_drop_vs_baseline"
    assert "ft - baseline ft = -0.167" in gate["reason"]
    assert "(q00, q10, q11, q12, q13)" in gate["reason"]
    assert "comparisons" not in now  # gates read results, they do not write them
    assert (comparisons_for(now, baseline)["ft"]["exact_match"]["vs_baseline"]["flipped_down"]
            == ["q00", "q10", "q11", "q12", "q13"])


def test_baseline_without_the_model_warns(tmp_path):
    baseline = summarize_run({"suites": [suite_result({"base": model_result(verdicts())})]})["suites"][0]
    now = suite_result({"base": model_result(verdicts()), "v2": model_result(verdicts())})
    result, warnings = evaluate_gates(make_suite(tmp_path, IDS), now, baseline)
    assert not failed(result)
    assert not [g for g in result if g["kind"].endswith("vs_baseline")]
    ((model, reason),) = baseline_coverage({"_path": "b.json", "suites": [baseline]}, now)
    assert model == "v2" and "b.json has no model 'v2'" in reason and "(it has: base)" in reason
    # a suite the baseline lacks is named too, with the suites it has
    ((model, reason),) = baseline_coverage({"_path": "b.json", "suites": []}, now)
    assert model == "v2" and "has no suite 'smoke' (it has: none)" in reason


def test_a_baseline_approved_from_part_of_a_suite_warns_about_the_rest(tmp_path):
    """A run made with --ids (or --limit, --only-failing) passes and `harness baseline approve`
    takes it; every later run was then gated against the baseline on those items only, silently:
    approved from 7 of the domain suite's 64 items, the gate read 'n=7' and passed A/A, the
    other 57 never compared with the approved adapter. Now it is a coverage warning (a failed
    gate with --strict-baseline), as a renamed adapter is."""
    part = suite_result({"base": model_result({i: True for i in IDS[:5]}), "ft": model_result({i: True for i in IDS[:5]})})
    baseline = summarize_run({"suites": [part]})["suites"][0]
    now = suite_result({"base": model_result(verdicts()), "ft": model_result(verdicts())})
    ((model, reason),) = baseline_coverage({"_path": "b.json", "suites": [baseline]}, now)
    assert model == "ft"
    assert f"b.json has 5 of the {len(IDS)} items of ft on 'smoke'" in reason
    assert f"{IDS[5]!r}" in reason and "not gated against the baseline" in reason
    # the other way round (this run is the part: --ids, --limit) is what those options are for
    assert baseline_coverage({"_path": "b.json", "suites": [summarize_run({"suites": [now]})["suites"][0]]},
                             part) == []


def test_missing_metric_fails_and_a_written_gate_on_a_skipped_scorer_fails_unmeasured(tmp_path):
    """A gate the suite wrote on a scorer the run skipped (`harness score`, `--endpoint`: no
    model, no timings) was a warning and the run said PASS: `latency: {max: ...}` through an
    endpoint was a green verdict that checked nothing. It is a failed `unmeasured` gate naming
    the suite, the metric, the scorer, why and what to do; the default drop gates stay a warning."""
    suite = make_suite(tmp_path, IDS, {"exact_match.accuracy": {"min": 0.5}})
    sr = suite_result({"base": model_result(verdicts()), "ft": model_result(verdicts())})
    (gate,) = failed(evaluate_gates(suite, sr, None)[0])
    assert gate["kind"] == "missing"
    sr["scorers"]["exact_match"]["skipped"] = "needs a loaded model"
    gates, warnings = evaluate_gates(suite, sr, None)
    (gate,) = gates
    assert (gate["model"], gate["metric"], gate["kind"], gate["passed"]) == ("ft", "exact_match.accuracy",
                                                                            "unmeasured", False)
    reason = gate["reason"]
    assert "suite 'smoke' gates exact_match.accuracy (min)" in reason
    assert "scorer exact_match was skipped in this run (needs a loaded model)" in reason
    assert "harness eval --model" in reason and "remove the gate" in reason
    assert f"{suite.path}:" in reason and "gates.exact_match.accuracy" in reason
    assert gate["details"] == {"policy": "suite", "skipped": "needs a loaded model", "written": ["min"]}
    # the default drop gate on exact_match, which the suite did not write: a warning, as before
    assert warnings == ["gates on exact_match not checked: scorer exact_match was skipped (needs a loaded model)"]


def test_a_skipped_scorers_written_gates_fail_only_where_they_would_have_checked_something(tmp_path):
    """Each option counts where this run would have checked it had the metric been measured:
    a drop gate against the base in a base-only run checks nothing either way (a warning);
    against the baseline, only with one; a category's gate is its own `unmeasured` gate."""
    gates_written = {"exact_match.accuracy": {"max_drop_vs_base": 0.1, "max_drop_vs_baseline": 0.1},
                     "exact_match": {"categories": {"a": {"min": 0.5}}}}
    import yaml

    from harness.suite import load_suite

    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump({"name": "smoke", "prompt": "{{ q }}", "target": "{{ a }}",
                                    "scorers": [{"exact_match": {}}], "gates": gates_written,
                                    "cases": [{"id": i, "q": f"{i}?", "a": "4", "category": "a"} for i in IDS]}))
    suite = load_suite(path)
    skipped = {"exact_match": {"version": "1", "options": {}, "skipped": "needs a loaded model"}}
    base_only = suite_result({"base": model_result(verdicts(), category="a")}, scorers=skipped)
    gates, warnings = evaluate_gates(suite, base_only, None)
    assert [(g["model"], g["metric"], g["kind"]) for g in gates] == [("base", "exact_match[a]", "unmeasured")]
    assert gates[0]["reason"].startswith("category a: suite 'smoke' gates exact_match (min)")
    assert "gates.exact_match.categories.a" in gates[0]["reason"]
    assert any("gates on exact_match.accuracy not checked" in w for w in warnings)
    with_baseline = suite_result({"base": model_result(verdicts(), category="a"),
                                  "ft": model_result(verdicts(), category="a")}, scorers=skipped)
    gates, _ = evaluate_gates(suite, with_baseline, with_baseline)
    assert {(g["model"], g["metric"]): g["details"]["written"] for g in gates} == {
        ("ft", "exact_match.accuracy"): ["max_drop_vs_base", "max_drop_vs_baseline"], ("ft", "exact_match[a]"): ["min"]}
    assert not any(g["passed"] for g in gates)


def test_policy_validated_against_the_suite(tmp_path):
    with pytest.raises(HarnessError) as err:
        validate_policy(make_suite(tmp_path, IDS, {"sql_exact": {"min": 0.5}}))
    assert "no scorer 'sql_exact'" in str(err.value) and "smoke.yaml" in str(err.value)
    assert err.value.line is not None
    with pytest.raises(HarnessError, match="critical item 'nope'"):
        validate_policy(make_suite(tmp_path, IDS, {"exact_match": {"critical": ["nope"]}}))
    validate_policy(make_suite(tmp_path, IDS, {"exact_match": {"critical": ["q01"], "min": 0.1}}))


def test_suite_schema_rejects_unknown_gate_option(tmp_path):
    with pytest.raises(HarnessError) as err:
        make_suite(tmp_path, IDS, {"exact_match": {"max_drop": 0.05}})
    assert "max_drop" in str(err.value) and "gates.exact_match" in str(err.value)
    with pytest.raises(HarnessError):
        make_suite(tmp_path, IDS, {"exact_match": {"max_drop_vs_base": -0.1}})


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(passes=st.lists(st.booleans(), min_size=1, max_size=60),
       seconds=st.lists(st.floats(0.001, 10.0), min_size=60, max_size=60),
       margin=st.floats(0.0, 0.5))
def test_a_a_property(tmp_path, passes, seconds, margin):
    """Whatever the data and margins, identical outputs never fail a comparative gate."""
    ids = [f"i{k}" for k in range(len(passes))]
    items = [item(i, p, metrics={"seconds": s}) for i, p, s in zip(ids, passes, seconds)]
    model = model_result(items)
    sr = suite_result({"base": model, "a": model, "b": model})
    baseline = summarize_run({"suites": [suite_result({"base": model, "a": model, "b": model})]})["suites"][0]
    gates = {"exact_match": {"max_drop_vs_base": margin, "max_drop_vs_baseline": margin, "critical": ids[:2]},
             "exact_match.seconds": {"rel_tolerance_vs_base": margin, "max_drop_vs_baseline": margin}}
    result, _ = evaluate_gates(make_suite(tmp_path, ids, gates), sr, baseline)
    assert len(result) == 2 * 6 and not failed(result)


@pytest.mark.parametrize("strict", [False, True])
def test_renamed_adapter_against_baseline_warns_or_fails_strict(tmp_path, strict):
    """A rename (v1 approved, v2 now) must not make baseline gating vanish silently."""
    from factories import results
    from harness.runner import finish

    approved = summarize_run(results([suite_result({"base": model_result(verdicts()),
                                                    "v1": model_result(verdicts())})]))
    approved["_path"] = "reports/baselines/fixture.json"
    run = results([suite_result({"base": model_result(verdicts()), "v2": model_result(verdicts())})])
    code = finish(run, [make_suite(tmp_path, IDS)], tmp_path / "out", approved, strict_baseline=strict)
    (suite,) = run["suites"]
    named = [w for w in suite["warnings"] if "no model 'v2'" in w]
    missing = [g for g in suite["gates"] if g["kind"] == "baseline_missing"]
    if strict:
        assert code == 1 and run["verdict"] == "fail" and missing and missing[0]["model"] == "v2"
        named = [missing[0]["reason"]]
        # once, as the failed gate: summary.md listed it again among the warnings
        assert not [w for w in suite["warnings"] if "no model 'v2'" in w], suite["warnings"]
        assert (tmp_path / "out" / "summary.md").read_text().count("no model 'v2'") == 1
    else:
        assert code == 0 and run["verdict"] == "pass" and not missing
    assert named and "reports/baselines/fixture.json" in named[0] and "(it has: base, v1)" in named[0]


def test_a_critical_gate_no_item_can_fail_is_counted_as_could_not_fail(tmp_path):
    """`critical: [capital-fr]` (harness init's starter suite) against a base that fails
    capital-fr: no critical item can flip pass→fail, yet the gate was one more 'passed'; nor
    can it when --ids or --limit left the critical items out of the run. It now counts as
    could not fail, as a drop gate against a base at 0 does."""
    from factories import results
    from harness.gates import could_not_fail, tally

    suite = make_suite(tmp_path, IDS, {"exact_match": {"critical": ["q00"], "max_drop_vs_base": None}})
    sr = suite_result({"base": model_result(verdicts({"q00"})), "ft": model_result(verdicts({"q00"}))})
    (gate,) = [g for g in evaluate_gates(suite, sr, None)[0] if g["kind"] == "critical_vs_base"]
    assert gate["passed"] and could_not_fail(sr, gate)
    assert "the base passes none of them" in gate["reason"]
    sr["gates"] = [gate]
    assert tally(results([sr])) == "0 of 1 gates passed; 1 passed but could not have failed, see summary.md"
    # the base passes q00: the gate could fail, and does not count as empty
    sr = suite_result({"base": model_result(verdicts()), "ft": model_result(verdicts())})
    (gate,) = [g for g in evaluate_gates(suite, sr, None)[0] if g["kind"] == "critical_vs_base"]
    assert gate["passed"] and not could_not_fail(sr, gate)


def _nine_of_64(candidate_passes: set[str], margin: float, tmp_path):
    """A 64-item suite whose base passes 9 items (0.141, domain_qa ``keywords`` on the fixture
    base); the candidate passes ``candidate_passes``."""
    ids = [f"q{i:02d}" for i in range(64)]
    suite = make_suite(tmp_path, ids, {"exact_match": {"max_drop_vs_base": margin}})
    base = model_result({i: i in ids[:9] for i in ids})
    cand = model_result({i: i in candidate_passes for i in ids})
    sr = suite_result({"base": base, "ft": cand})
    (gate,) = [g for g in evaluate_gates(suite, sr, None)[0] if g["kind"] == "max_drop_vs_base"]
    return sr, gate


def test_a_drop_gate_even_the_worst_candidate_passes_could_not_fail(tmp_path):
    """domain_qa `keywords` had max_drop_vs_base: 0.25 against a base at 9/64 (0.141): a
    candidate failing every item has Tango bound -0.246 and passed, with a green badge as if
    the gate vouched for something. It counts as could not fail now, with the reason; at 0.2
    the same items can fail, and a good candidate's pass is a real one."""
    from factories import results
    from harness.gates import could_not_fail, tally, vacuous_reason
    from harness.stats import tango_paired_ci

    ids = [f"q{i:02d}" for i in range(64)]
    sr, gate = _nine_of_64(set(ids[:9]), 0.25, tmp_path)  # as good as the base
    worst = gate["details"]["worst_case"]
    assert worst["passes"] == 9 and worst["n"] == 64 and worst["passed"]
    assert worst["ci_low"] == pytest.approx(tango_paired_ci(9, 0, 64)[0]) and -0.25 < worst["ci_low"] < -0.24
    assert gate["passed"] and could_not_fail(sr, gate)
    assert vacuous_reason(gate) == "even a candidate failing every item would pass: the base passes only 9 of 64"
    sr["gates"] = [gate]
    assert tally(results([sr])) == "0 of 1 gates passed; 1 passed but could not have failed, see summary.md"
    from harness.reports import junit, summary
    (case,) = junit.context(results([sr]))["suites"][0]["cases"]
    assert case["reason"].startswith("vacuous, passed but could not have failed (even a candidate failing every item would pass")
    assert [g["metric"] for g in summary.context(results([sr]))["vacuous_gates"]] == ["exact_match"]
    # the worst candidate itself: passes (the verdict is unchanged), and could not fail either
    sr, gate = _nine_of_64(set(), 0.25, tmp_path)
    assert gate["passed"] and could_not_fail(sr, gate)
    assert gate["details"]["ci_low"] == pytest.approx(gate["details"]["worst_case"]["ci_low"])
    # the shipped margin, 0.2: the worst candidate fails it, so a good candidate's pass is real
    sr, gate = _nine_of_64(set(ids[:9]), 0.2, tmp_path)
    assert gate["passed"] and gate["details"]["worst_case"] == dict(
        gate["details"]["worst_case"], passed=False, passes=9, n=64)
    assert not could_not_fail(sr, gate)
    sr, gate = _nine_of_64(set(), 0.2, tmp_path)
    assert not gate["passed"]


def test_the_worst_case_of_a_lower_is_better_zero_one_mean_flips_the_good_items(tmp_path):
    """A 0/1 mean where 1 is bad (repetition.seq_rep-like, `worse: 0→1`): its worst candidate
    turns every reference 0 into a 1; the reference clean on 3 of 40 items under a 0.2 margin
    could not fail, under 0.05 it could."""
    from harness.compare import ModelView, paired_delta
    from harness.gates import _worst_case

    ids = [f"q{i:02d}" for i in range(40)]
    info = {"kind": "mean", "value": 0.925, "higher_is_better": False}
    series = {"loops": {i: 0.0 if n < 3 else 1.0 for n, i in enumerate(ids)}}
    ref, cand = ModelView(metrics={"loops": info}, series=series), ModelView(metrics={"loops": info}, series=series)
    delta = paired_delta(ref, cand, "loops")
    assert delta["worse"] == "0→1"
    wide = _worst_case("loops", ref, cand, delta, "max_drop_vs_base", 0.2, False)
    narrow = _worst_case("loops", ref, cand, delta, "max_drop_vs_base", 0.05, False)
    assert wide["passes"] == 3 and wide["passed"] and wide["ci_high"] > 0.075
    assert narrow["passes"] == 3 and not narrow["passed"]
    # read the other way (higher is better), the flips do not count what the gate reads: none
    assert _worst_case("loops", ref, cand, delta, "max_drop_vs_base", 0.2, True) is None


def test_the_worst_case_counts_clusters_as_the_gate_does(tmp_path):
    """The same 9 of 64 under 0.25, but 8 of the 9 in one cluster of 8 (8 clusters): losing
    them all is one cluster's worth of evidence, the worst candidate's interval is as wide as
    the gate's would be (design effect > 1) and fails 0.25, so the gate could fail."""
    from harness.gates import could_not_fail

    ids = [f"q{i:02d}" for i in range(64)]
    suite = make_suite(tmp_path, ids, {"exact_match": {"max_drop_vs_base": 0.25}})
    base, cand = (model_result({i: i in ids[:9] for i in ids}) for _ in range(2))
    for model in (base, cand):
        for n, it in enumerate(model["items"]):
            it["cluster"] = f"c{n // 8}"
    sr = suite_result({"base": base, "ft": cand})
    (gate,) = [g for g in evaluate_gates(suite, sr, None)[0] if g["kind"] == "max_drop_vs_base"]
    worst = gate["details"]["worst_case"]
    assert worst["passes"] == 9 and worst["design_effect"] > 1 and worst["ci_low"] < -0.25
    assert gate["passed"] and not worst["passed"] and not could_not_fail(sr, gate)
