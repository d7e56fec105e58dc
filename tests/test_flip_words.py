"""The words for items that flipped: `harness compare`'s per-model lists merge every
metric's flips, and on a lower-is-better pass/fail metric (a plugin scorer's leak rate) the
items that got worse went 0→1, not pass→fail. The text, the regression line and
compare.html say the change those items went through, or "got worse" / "got better" where
the metrics behind one list disagree; so does the scorecard's "Flipped items" badge.
Before, every badge read "pass→fail"."""

from __future__ import annotations

from factories import item, model_result, results, suite_result
from harness.reports import environment, render_html
from harness.reports.html import compare_context
from harness.runs import compare_runs, format_comparison, regressions

IDS = [f"q{i:02d}" for i in range(20)]


def _model(leaks: set[str], wrong: set[str]) -> dict:
    """Scored by exact_match and by a lower-is-better `leak` (passed: it leaked)."""
    items = []
    for i in IDS:
        it = item(i, i not in wrong, ("leak " if i in leaks else "") + ("wrong" if i in wrong else "4"))
        it["scores"]["leak"] = {"value": float(i in leaks), "passed": i in leaks, "detail": ""}
        items.append(it)
    model = model_result(items)
    model["metrics"]["leak"]["higher_is_better"] = False
    return model


def _run(leaks: set[str], wrong: set[str], path: str) -> dict:
    run = results([suite_result({"ft": _model(leaks, wrong)})])
    run["_path"] = path
    return run


def _html(cmp: dict, a: dict, b: dict) -> tuple[dict, str]:
    ctx = compare_context(cmp, a, b)
    (model,) = ctx["suites"][0]["models"]
    return model, environment().get_template("compare.html.j2").render(**ctx)


def test_new_leaks_are_called_0_to_1_and_fixed_ones_1_to_0():
    a, b = _run({"q01"}, set(), "a/results.json"), _run({"q05", "q06"}, set(), "b/results.json")
    cmp = compare_runs(a, b)
    entry = cmp["suites"][0]["models"]["ft"]
    assert entry["flipped_down"] == ["q05", "q06"] and entry["flipped_up"] == ["q01"]

    text = format_comparison(cmp)
    assert "3/20 outputs changed, 2 got worse (0->1), 1 got better (1->0)" in text
    assert "    got worse (0->1): q05, q06" in text and "pass->fail" not in text
    assert "smoke / ft: 2 item(s) got worse (0->1) (q05, q06)" in regressions(cmp)

    model, html = _html(cmp, a, b)
    assert '<span class="badge fail">2 got worse (0→1)</span>' in html
    assert '<span class="badge pass">1 got better (1→0)</span>' in html
    assert "pass→fail" not in html and "fail→pass" not in html
    cards = {c["id"]: (c["flip"], c["down"]) for c in model["changed"]}
    assert cards == {"q05": ("got worse (0→1)", True), "q06": ("got worse (0→1)", True),
                     "q01": ("got better (1→0)", False)}


def test_a_list_merged_from_both_directions_says_got_worse():
    a = _run(set(), set(), "a/results.json")
    b = _run({"q05"}, {"q07"}, "b/results.json")  # a new leak, and an answer that went wrong
    cmp = compare_runs(a, b)
    entry = cmp["suites"][0]["models"]["ft"]
    assert entry["flipped_down"] == ["q05", "q07"]

    text = format_comparison(cmp)
    assert "2 got worse, 0 got better" in text and "    got worse: q05, q07" in text
    assert "smoke / ft: 2 item(s) got worse (q05, q07)" in regressions(cmp)

    model, html = _html(cmp, a, b)
    assert '<span class="badge fail">2 got worse</span>' in html and "2 pass→fail" not in html
    cards = {c["id"]: c["flip"] for c in model["changed"]}
    assert cards == {"q05": "got worse (0→1)", "q07": "pass→fail"}  # each item says its own change


def test_a_pass_rate_alone_keeps_pass_to_fail():
    a, b = _run(set(), set(), "a/results.json"), _run(set(), {"q03"}, "b/results.json")
    cmp = compare_runs(a, b)
    assert "1/20 outputs changed, 1 pass->fail" in format_comparison(cmp)
    _, html = _html(cmp, a, b)
    assert '<span class="badge fail">1 pass→fail</span>' in html


def _flip_header(html: str) -> str:
    start = html.index("<h3>Flipped items: ft vs base")
    return html[start:html.index("</h3>", start)]


def test_the_scorecard_badge_says_got_worse_when_a_lower_is_better_scorer_flipped():
    """The badge and the items' cards say what `harness compare` says of the same items
    (compare.flip_label's words): they read 'got worse' and 'worse vs base (leak)' where
    compare said 'got worse (0→1)'."""
    run = results([suite_result({"base": _model({"q01"}, set()), "ft": _model({"q05", "q06"}, set())})])
    html = render_html(run)
    header = _flip_header(html)
    assert '<span class="badge fail">2 got worse (0→1)</span>' in header
    assert '<span class="badge pass">1 got better (1→0)</span>' in header
    assert "pass" not in header.replace("badge pass", "")
    assert "got worse (0→1) vs base (leak)" in html and "got better (1→0) vs base (leak)" in html

    run = results([suite_result({"base": _model(set(), set()), "ft": _model({"q05"}, {"q03"})})])
    assert '<span class="badge fail">2 got worse</span>' in _flip_header(render_html(run))  # leak and exact_match

    run = results([suite_result({"base": _model(set(), set()), "ft": _model(set(), {"q03"})})])
    assert '<span class="badge fail">1 pass→fail</span>' in _flip_header(render_html(run))


def test_junit_items_and_the_gate_reason_say_a_change_as_compare_does():
    """junit's item that got better read '1→0 (better)' where `harness compare` and the
    scorecard said 'got better (1→0)' for the same item, and the drop gate's reason (junit's
    failure message) '1 better', naming no change: one form now, compare.flip_label's."""
    from harness.calibration import _suite
    from harness.gates import comparisons_for, evaluate_gates
    from harness.reports.junit import flipped_item_cases

    a, b = _run({"q01"}, set(), "a/results.json"), _run({"q05", "q06"}, set(), "b/results.json")
    model, _ = _html(compare_runs(a, b), a, b)
    cards = {c["id"]: c["flip"] for c in model["changed"]}
    assert cards["q01"] == "got better (1→0)" and cards["q05"] == "got worse (0→1)"

    sr = suite_result({"base": _model({"q01"}, set()), "ft": _model({"q05", "q06"}, set())})
    sr["comparisons"] = comparisons_for(sr, None)
    sr["gates"], _ = evaluate_gates(_suite({"leak": {"max_drop_vs_base": 0.05}}), sr, None, sr["comparisons"])
    notes = {c["name"]: c["reason"] for c in flipped_item_cases(sr)}
    for i in ("q01", "q05", "q06"):
        assert notes[f"item {i} vs base"].startswith(f"{cards[i]} vs base on leak"), notes
    (gate,) = [g for g in sr["gates"] if g["metric"] == "leak" and g["kind"] == "max_drop_vs_base"]
    assert "; 2 got worse (0→1) (q05, q06), 1 got better (1→0); McNemar" in gate["reason"], gate["reason"]
