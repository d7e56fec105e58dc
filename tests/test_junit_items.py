"""`harness eval --junit-items`: one junit test case per item that flipped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from conftest import FIXTURE_MODEL, ROOT, run_harness
from factories import model_result, results, suite_result
from harness.reports import render_junit


def _run_with_flips(junit_items: bool) -> dict:
    base = model_result({"q1": True, "q2": True, "q3": False})
    cand = model_result({"q1": False, "q2": True, "q3": True}, output="<b>&evil")
    suite = suite_result({"base": base, "cand": cand})
    suite["comparisons"] = {"cand": {"exact_match": {
        "vs_base": {"diff": 0.0, "flipped_down": ["q1"], "flipped_up": ["q3"]},
        "vs_baseline": {"diff": -0.3, "flipped_down": ["q1"], "flipped_up": []}}}}
    run = results([suite])
    if junit_items:
        run["report_options"] = {"junit_items": True}
    return run


def test_flipped_items_become_test_cases():
    root = ET.fromstring(render_junit(_run_with_flips(True)))
    cases = {c.get("name"): c for c in root.iter("testcase") if c.get("classname") == "smoke.cand.items"}
    assert set(cases) == {"item q1 vs base", "item q3 vs base", "item q1 vs baseline"}
    down = cases["item q1 vs base"].find("failure")
    assert down is not None and "pass→fail vs base on exact_match" in down.get("message")
    assert "<b>&evil" in down.get("message")  # escaped in the XML, intact once parsed
    assert cases["item q3 vs base"].find("failure") is None
    assert int(root.get("failures")) == 2 and int(root.get("tests")) == 3


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
