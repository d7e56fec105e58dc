"""End to end through `harness eval` on the fixture model: a regressing adapter exits 1 and
the failing gate is named in junit.xml, summary.md and index.html; base alone exits 0;
approve -> eval --baseline -> compare round trip."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import yaml

from conftest import FIXTURE_MODEL, ROOT, make_random_adapter, run_harness


def _self_target_suite(tmp_path, outputs: dict[str, str]) -> str:
    """The smoke suite with the base model's own outputs as targets: base passes every item,
    so anything that changes an output is a regression."""
    doc = yaml.safe_load((ROOT / "suites" / "smoke.yaml").read_text())
    doc["name"] = "selftarget"
    for case in doc["cases"]:
        case["answer"] = outputs[case["id"]]
    doc["gates"] = {"exact_match": {"max_drop_vs_base": 0.05, "max_drop_vs_baseline": 0.05,
                                    "critical": [doc["cases"][0]["id"]]}}
    path = tmp_path / "selftarget.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return str(path)


def test_regression_fails_base_passes_and_baseline_round_trip(tmp_path):
    env = {"HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    model = str(FIXTURE_MODEL)

    first = run_harness("eval", "suites/smoke.yaml", "--model", model, "--out", str(tmp_path / "probe"), env=env)
    assert first.returncode == 0, first.stderr
    items = json.loads((tmp_path / "probe" / "results.json").read_text())["suites"][0]["models"]["base"]["items"]
    suite = _self_target_suite(tmp_path, {i["id"]: i["output"] for i in items})

    # base alone: passes (nothing to compare against, and it matches its own outputs)
    base_run = tmp_path / "base"
    proc = run_harness("eval", suite, "--model", model, "--out", str(base_run), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_harness("baseline", "approve", str(base_run), "--to", str(tmp_path / "baseline.json"))
    assert proc.returncode == 0, proc.stderr

    # a regressing adapter, gated against base and the approved baseline of base
    noisy = make_random_adapter(FIXTURE_MODEL, tmp_path / "noisy", seed=1, scale=1.0)
    bad_run = tmp_path / "bad"
    proc = run_harness("eval", suite, "--model", model, "--adapter", f"noisy={noisy}",
                       "--baseline", str(tmp_path / "baseline.json"), "--out", str(bad_run), env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    results = json.loads((bad_run / "results.json").read_text())
    failed = [g for g in results["suites"][0]["gates"] if not g["passed"]]
    kinds = {g["kind"] for g in failed}
    assert {"max_drop_vs_base", "critical_vs_base"} <= kinds, failed
    drop = next(g for g in failed if g["kind"] == "max_drop_vs_base")
    assert "noisy - base = -" in drop["reason"] and "flipped pass→fail" in drop["reason"]

    junit = ET.parse(bad_run / "junit.xml").getroot()
    messages = [f.get("message") for f in junit.iter("failure")]
    assert drop["reason"] in messages
    assert "| noisy | `exact_match` | max_drop_vs_base |" in (bad_run / "summary.md").read_text()
    assert "noisy - base = -" in (bad_run / "summary.md").read_text()
    html = (bad_run / "index.html").read_text()
    assert 'class="banner fail"' in html and "max_drop_vs_base" in html and "Flipped items: noisy vs base" in html

    # the same setup against the baseline: base equals the approved base
    proc = run_harness("eval", suite, "--model", model, "--baseline", str(tmp_path / "baseline.json"),
                       "--out", str(tmp_path / "again"), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert [g["kind"] for g in again["suites"][0]["gates"]] == ["max_drop_vs_baseline", "critical_vs_baseline"]

    proc = run_harness("compare", str(base_run), str(bad_run), "--out", str(tmp_path / "cmp"))
    assert proc.returncode == 0, proc.stderr
    assert "base: 0/6 outputs changed" in proc.stdout
    assert (tmp_path / "cmp" / "compare.html").is_file()

    # a changed suite is refused against the old baseline, naming the part
    edited = tmp_path / "edited.yaml"
    doc = yaml.safe_load(open(suite))
    doc["cases"][0]["question"] = "What is 2 + 3?"
    edited.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    proc = run_harness("eval", str(edited), "--model", model, "--baseline", str(tmp_path / "baseline.json"),
                       "--out", str(tmp_path / "edited"), env=env)
    assert proc.returncode == 2 and "data hash differs" in proc.stderr, proc.stderr
