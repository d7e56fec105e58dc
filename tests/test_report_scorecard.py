"""The scorecard's content: overview first, every item that failed any gate with both
outputs (the baseline's too), grouped warnings, vacuous floors, honest counts, charts on
shared axes, compare.html with the changed outputs. (The browser test is
test_report_browser.py.)"""

from __future__ import annotations

import re

from factories import item, make_suite, model_result, results, suite_result
from harness.baseline import baseline_outputs, baseline_suite, pack_outputs, summarize_run, unpack_outputs
from harness.gates import comparisons_for, evaluate_gates, tally
from harness.reports import charts, render_html, render_junit, render_summary
from harness.reports.html import compare_context
from harness.reports.items import diff_markup

IDS = [f"q{i:02d}" for i in range(20)]
WEAK = {"q01", "q02", "q03", "q04", "q05"}  # base fails these; the approved adapter passed them
GATES = {"exact_match": {"min": 0.0, "max_drop_vs_base": 0.5, "max_drop_vs_baseline": 0.05, "critical": ["q01"]}}


def _model(failing: set[str], says: str) -> dict:
    return model_result([item(i, i not in failing, f"{says} {i}" if i not in failing else f"{says} wrong {i}",
                              category="ops" if i < "q10" else "arch") for i in IDS])


def failing_run(tmp_path) -> dict:
    """Base weak on WEAK; the approved adapter passed them; the candidate fails them again:
    nothing flips against base, five items flip against the baseline (one critical)."""
    suite = make_suite(tmp_path, IDS, gates=GATES)
    approved = results([suite_result({"base": _model(WEAK, "base"), "ft": _model(set(), "approved")})])
    s = approved["suites"][0]
    s["gates"], s["warnings"] = evaluate_gates(suite, s, None)
    approved["verdict"] = "pass"
    baseline = summarize_run(approved)
    run = results([suite_result({"base": _model(WEAK, "base"), "ft": _model(WEAK, "candidate")})])
    s = run["suites"][0]
    ref = baseline_suite(baseline, "smoke")
    s["comparisons"] = comparisons_for(s, ref)  # as the runner does
    s["gates"], s["warnings"] = evaluate_gates(suite, s, ref, s["comparisons"])
    s["baseline_outputs"] = baseline_outputs(ref, s)
    s["warnings"] += ["adapter ft was trained with the 'chat' prompt format, but suite smoke uses 'raw'",
                      "adapter ft2 was trained with the 'chat' prompt format, but suite smoke uses 'raw'"]
    run["verdict"] = "fail"
    run["baseline"] = {"path": "reports/baselines/v1.json", "created": "2025-01-01T00:00:00+00:00"}
    return run


def section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}"')
    return html[start:html.index("</section>", start)]


def test_every_item_that_failed_a_gate_is_shown_with_the_baseline_text(tmp_path):
    run = failing_run(tmp_path)
    failed = {g["kind"] for g in run["suites"][0]["gates"] if not g["passed"]}
    assert failed == {"max_drop_vs_baseline", "critical_vs_baseline"}
    html = render_html(run)
    part = section(html, "failed-items")
    for i in sorted(WEAK):
        # the candidate's output and the approved one, not a hash
        assert f"approved {i}" in part or f"<del>approved</del> {i}" in part, i
        assert re.search(rf"candidate.*wrong.*{i}", part), i
    assert "gate: exact_match max_drop_vs_baseline; exact_match critical_vs_baseline" in part  # q01
    assert part.count('<details class="card') == len(WEAK)  # q01 (also critical) is shown once
    assert 'href="#item-' in part  # ... and linked the second time
    # the item table links the flipped items to their cards
    table = section(html, "items")
    assert "↓ vs baseline" in table and table.count("<tr>") == 1 + 2 * len(IDS)  # header + rows


def test_overview_comes_first_with_main_metric_delta_and_baseline_value(tmp_path):
    html = render_html(failing_run(tmp_path))
    assert html.index('id="overview"') < html.index('id="failed"') < html.index('id="items"')
    overview = section(html, "overview")
    assert "exact_match" in overview and "✗ 2 of 5 gates failed" in overview
    assert "Δ vs baseline" in overview and "baseline 1.000" in overview  # the baseline's own value


def test_warnings_are_grouped_and_collapsed(tmp_path):
    html = render_html(failing_run(tmp_path))
    part = section(html, "warnings")
    assert part.count("<details") == 1 and "<details open" not in part
    assert re.search(r"\d+ warnings</strong>:\s*2 prompt format", part)


def test_a_vacuous_floor_earns_no_badge(tmp_path):
    html = render_html(failing_run(tmp_path))
    assert "✓ min" not in html
    assert "min (vacuous: floor 0.000)" in html


def test_a_drop_gate_against_a_reference_at_zero_earns_no_badge(tmp_path):
    """Base and adapter both at 0.000 (the fixture's sql suite): the drop gates passed because
    nothing can drop below 0, so no green badge and no "gates passed" in the overview; the
    summary names them. A drop gate with a reference above 0 keeps its badge."""
    from harness.reports.summary import context

    suite = make_suite(tmp_path, IDS, gates={"exact_match": {"max_drop_vs_base": 0.2}})
    run = results([suite_result({"base": _model(set(IDS), "base"), "ft": _model(set(IDS), "ft")})])
    s = run["suites"][0]
    s["gates"], s["warnings"] = evaluate_gates(suite, s, None)
    assert [g["passed"] for g in s["gates"]] == [True]
    html = render_html(run)
    assert "✓ max_drop_vs_base" not in html
    assert "max_drop_vs_base (vacuous: base already at 0.000)" in html
    assert "only gates that passed but could not have failed" in section(html, "overview")
    assert "0 of 1 gate failed · 1 passed but could not have failed" in html  # the header
    assert tally(run) == "0 of 1 gates passed; 1 passed but could not have failed, see summary.md"
    summary = context(run)
    assert [g["why"] for g in summary["vacuous_gates"]] == ["base already at 0.000"]
    assert ("<system-out>vacuous, passed but could not have failed (base already at 0.000): exact_match"
            in render_junit(run))
    assert ("1 gate passed but could not have failed, so it vouches for nothing" in render_summary(run)
            and "smoke: `exact_match` (1 gate)." in render_summary(run))

    ok = results([suite_result({"base": _model(set(), "base"), "ft": _model(set(), "ft")})])
    s = ok["suites"][0]
    s["gates"], s["warnings"] = evaluate_gates(suite, s, None)
    html = render_html(ok)
    assert "✓ max_drop_vs_base" in html and "vacuous" not in section(html, "overview").split("</table>")[0]
    assert "vacuous" not in render_junit(ok) and tally(ok) == "1 of 1 gates passed"
    s["gates"] = []
    assert tally(ok).startswith("no gate applied")
    assert context(ok)["vacuous_gates"] == [] and "could not have failed" not in render_summary(ok)


def test_flips_that_failed_no_gate_are_counted_honestly(tmp_path):
    suite = make_suite(tmp_path, IDS, gates={})
    run = results([suite_result({"base": _model(set(IDS), "base"), "ft": _model(set(), "ft")})])
    s = run["suites"][0]
    s["gates"], s["warnings"] = evaluate_gates(suite, s, None)
    html = render_html(run)
    assert "20 fail→pass" in html and "0 pass→fail" not in html
    assert "10 of 20 shown here; all 20 are in the" in html


def test_baseline_keeps_its_outputs_compressed(tmp_path):
    outputs = {i: "SELECT name FROM employees WHERE id = 1 " * 5 for i in IDS}
    blob = pack_outputs(outputs)
    assert unpack_outputs(blob) == outputs
    assert len(blob) < sum(len(v) for v in outputs.values()) / 5
    assert unpack_outputs("not base64!") == {} and unpack_outputs(None) == {}
    run = failing_run(tmp_path)
    baseline = summarize_run(run)
    texts = unpack_outputs(baseline["suites"][0]["models"]["ft"]["outputs_z"])
    assert texts["q01"] == "candidate wrong q01"


def test_diff_marks_changed_words_and_escapes():
    left, right = diff_markup("port 7301 <b>", "port 8443 <b>")
    assert str(left) == "port <del>7301</del> &lt;b&gt;"
    assert str(right) == "port <ins>8443</ins> &lt;b&gt;"


def test_charts_share_one_axis_per_kind_and_keep_their_labels():
    long = "json_schema.class.trailing_text_after_the_object"
    svg = str(charts.bar_chart("t", [{"label": long, "values": {"base": (0.344, 0.2, 0.5)}},
                                     {"label": "b", "values": {"base": (0.344, 0.2, 0.5)}}],
                               ["base"], {"base": "#000"}, scale="unit"))
    bars = r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)" height="12" fill="#000" fill-opacity'
    widths = [float(w) for _, w in re.findall(bars, svg)]
    assert len(widths) == 2 and widths[0] == widths[1]  # the same 0.344 is the same length
    x0 = float(re.search(bars, svg).group(1))
    assert x0 >= len("base") * 6  # the model labels fit left of the bars
    assert 'width="1160"' in svg and ">1<" in svg and ">0<" in svg
    log = str(charts.bar_chart("p", [{"label": "token_accuracy.perplexity",
                                      "values": {"base": (1854.9, 1700.0, 1900.0), "ft": (6.66, 6.2, 7.1)}}],
                               ["base", "ft"], {"base": "#000", "ft": "#111"}, scale="log"))
    for tick in (">1<", ">10<", ">100<", ">1000<", ">10000<"):
        assert tick in log, tick
    assert "1855 [1700, 1900]" in log and "6.660 [6.200, 7.100]" in log


def test_compare_shows_changed_outputs_side_by_side(tmp_path):
    from harness.runs import compare_runs

    a = failing_run(tmp_path)
    b = failing_run(tmp_path)
    for it in b["suites"][0]["models"]["ft"]["items"][:3]:
        it["output"] = it["output"] + " and more"
    a["_path"], b["_path"] = "a/results.json", "b/results.json"
    ctx = compare_context(compare_runs(a, b), a, b)
    (model,) = [m for m in ctx["suites"][0]["models"] if m["name"] == "ft"]
    assert len(model["changed"]) == 3 and model["texts"] == 3
    assert "<ins> and more</ins>" in str(model["changed"][0]["right"])
    from harness.reports import environment

    html = environment().get_template("compare.html.j2").render(**ctx)
    assert "3 of 20 outputs changed" in html and "0 pass→fail" not in html
    assert "<ins> and more</ins>" in html


def test_items_behind_category_and_floor_gates_are_shown(tmp_path):
    # the floor and the category gate only (the default drop gate on the whole metric turned off)
    gates = {"exact_match": {"min": 0.9, "max_drop_vs_base": None, "categories": {"ops": {"max_drop_vs_base": 0.05}}}}
    import yaml

    from harness.suite import load_suite

    doc = {"name": "smoke", "prompt": "{{ q }}", "target": "{{ a }}", "scorers": [{"exact_match": {}}],
           "gates": gates, "cases": [{"id": i, "category": "ops" if i < "q10" else "arch", "q": f"Q {i}?", "a": "4"}
                                     for i in IDS]}
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    suite = load_suite(tmp_path / "smoke.yaml")
    run = results([suite_result({"base": _model(set(), "base"), "ft": _model(WEAK | {"q15"}, "ft")})])
    s = run["suites"][0]
    s["comparisons"] = comparisons_for(s, None)
    s["gates"], s["warnings"] = evaluate_gates(suite, s, None, s["comparisons"])
    failed = {(g["metric"], g["kind"]) for g in s["gates"] if not g["passed"]}
    assert {("exact_match", "min"), ("exact_match[ops]", "max_drop_vs_base")} <= failed, s["gates"]
    part = section(render_html(run), "failed-items")
    # the floor: all six failing items of ft, next to base, each once; the category gate's
    # five (in ops) link to them
    assert part.count('<details class="card') == 6
    cat = part[part.index("<span class=\"mono\">exact_match[ops]</span>"):]
    assert all(f'<span class="mono">{i}</span></a>' in cat for i in WEAK)
    assert "base wrong" not in part and "ft wrong q15" in part.replace("<ins>", "").replace("</ins>", "")


def test_a_drop_gate_that_failed_on_width_alone_says_so(tmp_path):
    run = results([suite_result({"base": _model(set(), "base"), "ft": _model(set(), "ft")})])
    run["suites"][0]["gates"] = [{"suite": "smoke", "model": "ft", "metric": "exact_match", "kind": "max_drop_vs_base",
                                  "passed": False, "reason": "interval too wide",
                                  "details": {"flipped_down": [], "flipped_up": [], "higher_is_better": True}}]
    part = section(render_html(run), "failed-items")
    assert "0 items" in part and "No item got worse: the gate failed because the interval is wider" in part


def test_the_vacuous_phrase_comes_from_its_one_constant(tmp_path, monkeypatch):
    """gates.VACUOUS_PHRASE is the one wording of these gates in every report; the badge's
    title and the overview's note retyped it in the templates, so a rewording changed the
    header, junit and summary.md but not them. Reworded, the page has no other copy."""
    import harness.reports.html as html_module

    suite = make_suite(tmp_path, IDS, gates={"exact_match": {"max_drop_vs_base": 0.2}})
    run = results([suite_result({"base": _model(set(IDS), "base"), "ft": _model(set(IDS), "ft")})])
    s = run["suites"][0]
    s["gates"], s["warnings"] = evaluate_gates(suite, s, None)
    monkeypatch.setattr(html_module, "VACUOUS_PHRASE", "passed, proving nothing")
    html = render_html(run)
    assert "could not have failed" not in html
    assert "(this gate passed, proving nothing)" in html  # the badge's title
    assert "A gate that passed, proving nothing earns no pass badge" in section(html, "overview")


def test_overview_badge_counts_one_gate_in_the_singular():
    from harness.reports.html import _overview

    suite = {"name": "s", "models": {"base": {"metrics": {}}, "v2": {"metrics": {}}},
             "gates": [{"model": "v2", "metric": "keywords", "kind": "max_drop_vs_base", "passed": False}]}
    cell = _overview([suite], ["base", "v2"])["rows"][0]["cells"][1]
    assert cell["label"] == "✗ 1 of 1 gate failed", cell
