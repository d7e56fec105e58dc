"""`harness eval --junit-items`: one junit test case per item that flipped; a pass->fail
flip is a failure only under a failed gate, so junit.xml fails exactly when the run does."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from conftest import FIXTURE_MODEL, ROOT, run_harness
from factories import make_suite, model_result, results, suite_result
from harness.gates import comparisons_for, evaluate_gates
from harness.reports import render_junit

IDS = [f"q{i:02d}" for i in range(20)]


def _run_with_flips(junit_items: bool) -> dict:
    base = model_result({"q1": True, "q2": True, "q3": False})
    cand = model_result({"q1": False, "q2": True, "q3": True}, output="<b>&evil")
    suite = suite_result({"base": base, "cand": cand})
    suite["comparisons"] = {"cand": {"exact_match": {
        "vs_base": {"diff": 0.0, "flipped_down": ["q1"], "flipped_up": ["q3"], "worse": "pass→fail"},
        "vs_baseline": {"diff": -0.3, "flipped_down": ["q1"], "flipped_up": [], "worse": "pass→fail"}}}}
    run = results([suite])
    if junit_items:
        run["report_options"] = {"junit_items": True}
    return run


def test_flipped_items_become_test_cases():
    root = ET.fromstring(render_junit(_run_with_flips(True)))
    cases = {c.get("name"): c for c in root.iter("testcase") if c.get("classname") == "smoke.cand.items"}
    assert set(cases) == {"item q1 vs base", "item q3 vs base", "item q1 vs baseline"}
    down = cases["item q1 vs base"]
    assert down.find("failure") is None  # no gate at all in this run: nothing failed
    note = down.find("system-out").text
    assert "pass→fail vs base on exact_match, not gated (no gate on exact_match vs base)" in note
    assert "<b>&evil" in note  # escaped in the XML, intact once parsed
    assert "fail→pass vs base on exact_match" in cases["item q3 vs base"].find("system-out").text
    assert int(root.get("failures")) == 0 and int(root.get("tests")) == 3


def _gated_run(tmp_path, gates: dict, failing: set[str], baseline_failing: set[str] | None = None) -> dict:
    """A run gated as the runner gates it: base passes all of IDS, ``ft`` fails ``failing``;
    with ``baseline_failing`` an approved baseline whose ``ft`` failed those."""
    suite = make_suite(tmp_path, IDS, gates=gates)
    run = suite_result({"base": model_result({i: True for i in IDS}),
                        "ft": model_result({i: i not in failing for i in IDS})})
    baseline = None if baseline_failing is None else suite_result(
        {"base": model_result({i: True for i in IDS}),
         "ft": model_result({i: i not in baseline_failing for i in IDS})})
    run["comparisons"] = comparisons_for(run, baseline)
    run["gates"], run["warnings"] = evaluate_gates(suite, run, baseline, run["comparisons"])
    out = results([run])
    out["verdict"] = "fail" if any(not g["passed"] for g in run["gates"]) else "pass"
    out["report_options"] = {"junit_items": True}
    return out


def _items(root: ET.Element) -> dict[str, ET.Element]:
    return {c.get("name"): c for c in root.iter("testcase") if c.get("classname") == "smoke.ft.items"}


def test_flip_the_gate_allowed_is_a_passing_case_and_a_passing_run_has_no_failure(tmp_path):
    """A drop within the gate's margin exits 0; CI reporters turn the check red on any
    <failure>, so the report must not contradict the verdict."""
    run = _gated_run(tmp_path, {"exact_match": {"max_drop_vs_base": 0.5}}, failing={"q03"})
    assert run["verdict"] == "pass"
    root = ET.fromstring(render_junit(run))
    case = _items(root)["item q03 vs base"]
    assert case.find("failure") is None
    assert ("pass→fail vs base on exact_match, within the gate's margin "
            "(exact_match max_drop_vs_base passed)") in case.find("system-out").text
    assert int(root.get("failures")) == 0 and int(root.find("testsuite").get("failures")) == 0


def test_flip_under_a_failed_gate_is_a_failure_naming_the_gate(tmp_path):
    run = _gated_run(tmp_path, {"exact_match": {"max_drop_vs_base": 0.0}}, failing={"q03", "q07"})
    assert run["verdict"] == "fail"
    root = ET.fromstring(render_junit(run))
    failure = _items(root)["item q07 vs base"].find("failure")
    assert failure is not None and failure.get("type") == "flipped_item"
    assert "pass→fail vs base on exact_match, failed gate: exact_match max_drop_vs_base" in failure.get("message")
    assert int(root.get("failures")) == 3  # the gate and its two items


def test_only_a_failed_gate_against_the_same_reference_makes_a_flip_a_failure(tmp_path):
    """q03 fails against both the base (gate passed, margin 0.5) and the baseline (gate
    failed, margin 0): one failure, vs the baseline."""
    run = _gated_run(tmp_path, {"exact_match": {"max_drop_vs_base": 0.5, "max_drop_vs_baseline": 0.0}},
                     failing={"q03"}, baseline_failing=set())
    items = _items(ET.fromstring(render_junit(run)))
    assert items["item q03 vs base"].find("failure") is None
    assert "within the gate's margin" in items["item q03 vs base"].find("system-out").text
    failure = items["item q03 vs baseline"].find("failure")
    assert failure is not None and "failed gate: exact_match max_drop_vs_baseline" in failure.get("message")


def test_a_failed_critical_gate_fails_its_own_items_only(tmp_path):
    run = _gated_run(tmp_path, {"exact_match": {"max_drop_vs_base": 0.9, "critical": ["q07"]}},
                     failing={"q03", "q07"})
    items = _items(ET.fromstring(render_junit(run)))
    failure = items["item q07 vs base"].find("failure")
    assert failure is not None and "failed gate: exact_match critical_vs_base" in failure.get("message")
    assert items["item q03 vs base"].find("failure") is None  # not critical; the drop gate allowed it
    assert "exact_match max_drop_vs_base passed" in items["item q03 vs base"].find("system-out").text


def test_without_the_flag_only_gates():
    root = ET.fromstring(render_junit(_run_with_flips(False)))
    assert not [c for c in root.iter("testcase") if c.get("classname", "").endswith(".items")]


def test_eval_junit_items_end_to_end(tmp_path):
    out = tmp_path / "out"
    proc = run_harness("eval", "suites/domain_qa.yaml", "--limit", "8", "--model", str(FIXTURE_MODEL),
                       "--adapter", f"domain={ROOT / 'fixtures' / 'adapters' / 'domain'}", "--junit-items",
                       "--out", str(out), "--quiet", env={"HARNESS_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode in (0, 1), proc.stderr
    import json

    res = json.loads((out / "results.json").read_text())
    flips = {i for d in res["suites"][0]["comparisons"]["domain"].values() for i in
             ((d or {}).get("vs_base") or {}).get("flipped_up", []) + ((d or {}).get("vs_base") or {}).get("flipped_down", [])}
    assert flips, "the domain adapter should change some items on the fixture model"
    names = {c.get("name") for c in ET.parse(out / "junit.xml").getroot().iter("testcase")
             if c.get("classname") == "domain_qa.domain.items"}
    assert names == {f"item {i} vs base" for i in flips}
    assert (int(ET.parse(out / "junit.xml").getroot().get("failures")) == 0) == (proc.returncode == 0)


def test_a_failed_category_gate_fails_the_items_of_its_category_only(tmp_path):
    """``exact_match[architecture]`` failed, the suite-wide gate passed: an architecture
    item's flip is a failure, an operations item's flip is not."""
    import yaml

    from factories import item

    arch, ops = [f"a{i:02d}" for i in range(20)], [f"o{i:02d}" for i in range(40)]
    cat = {**{i: "architecture" for i in arch}, **{i: "operations" for i in ops}}
    doc = {"name": "smoke", "prompt": "{{ q }}", "target": "{{ a }}", "scorers": [{"exact_match": {}}],
           "cases": [{"id": i, "q": f"{i}?", "a": "4", "category": c} for i, c in cat.items()],
           "gates": {"exact_match": {"max_drop_vs_base": 0.4,
                                     "categories": {"architecture": {"max_drop_vs_base": 0.05}}}}}
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    from harness.suite import load_suite

    failing = set(arch[:8]) | {"o05"}
    sr = suite_result({m: model_result([item(i, m == "base" or i not in failing, category=c) for i, c in cat.items()])
                       for m in ("base", "ft")})
    sr["comparisons"] = comparisons_for(sr, None)
    sr["gates"], sr["warnings"] = evaluate_gates(load_suite(tmp_path / "smoke.yaml"), sr, None, sr["comparisons"])
    assert [g["passed"] for g in sr["gates"]] == [True, False]  # exact_match, exact_match[architecture]
    run = results([sr])
    run["report_options"] = {"junit_items": True}
    items = _items(ET.fromstring(render_junit(run)))
    failure = items["item a03 vs base"].find("failure")
    assert failure is not None
    assert "failed gate: exact_match[architecture] max_drop_vs_base" in failure.get("message")
    assert items["item o05 vs base"].find("failure") is None
    assert "(exact_match max_drop_vs_base passed)" in items["item o05 vs base"].find("system-out").text
