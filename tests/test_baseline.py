"""Baselines: approve -> gate against -> compare, and refusals that name the part that differs."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from factories import make_suite, model_result, results, suite_result
from harness.atomic import write_json
from harness.baseline import (approve, baseline_suite, check_baseline, fingerprint_differences, load_baseline)
from harness.runs import compare_runs, format_comparison, load_run
from harness.errors import HarnessError
from harness.gates import comparisons_for, evaluate_gates

ROOT = Path(__file__).resolve().parents[1]
IDS = [f"q{i:02d}" for i in range(20)]


def run(ft_failing=(), base_failing=()) -> dict:
    # By default ft gives the base's outputs (A/A: it passes on 20 items). One extra pass
    # alone would not: Tango's interval for 1 gain in 20 items reaches below -0.05.
    base = {i: i not in base_failing for i in IDS}
    ft = {i: i not in ft_failing for i in IDS}
    return results([suite_result({"base": model_result(base, fingerprint="sha256:base"),
                                  "ft": model_result(ft, fingerprint="sha256:ft")})])


def write_run(tmp_path: Path, name: str, res: dict, suite=None, baseline=None) -> Path:
    """Gate a run as the runner would, and write its results.json into a run folder."""
    suite = suite or make_suite(tmp_path, IDS)
    for s in res["suites"]:
        reference = baseline_suite(baseline, s["name"]) if baseline else None
        s["comparisons"] = comparisons_for(s, reference)
        s["gates"], s["warnings"] = evaluate_gates(suite, s, reference, s["comparisons"])
    res["verdict"] = "fail" if any(not g["passed"] for s in res["suites"] for g in s["gates"]) else "pass"
    out = tmp_path / name
    write_json(out / "results.json", res)
    return out


def test_approve_writes_small_baseline_with_fingerprints(tmp_path):
    run_dir = write_run(tmp_path, "run1", run())
    path = approve(run_dir, tmp_path / "baselines" / "b.json")
    data = json.loads(path.read_text())
    assert data["format"] == "mlx-harness-baseline/1" and data["approved_from"] == str(run_dir)
    assert data["models"]["base"]["fingerprint"] == "sha256:base"
    suite = data["suites"][0]
    assert suite["fingerprint"] and suite["data_fingerprint"] and suite["scorers"]["exact_match"]["version"] == "1"
    first = suite["models"]["base"]["items"][0]
    assert set(first) == {"id", "category", "output_sha256", "values"} and first["values"]["exact_match"] == 1.0
    assert all("output" not in it and "prompt" not in it for it in suite["models"]["base"]["items"])
    loaded = load_baseline(path)
    assert loaded["_path"] == str(path) and baseline_suite(loaded, "smoke") is not None
    assert baseline_suite(loaded, "other") is None


def test_approve_refuses_a_failing_run(tmp_path):
    run_dir = write_run(tmp_path, "bad", run(ft_failing=("q01", "q02", "q03", "q04")))
    with pytest.raises(HarnessError, match="cannot be approved: smoke/ft/exact_match"):
        approve(run_dir, tmp_path / "b.json")
    assert not (tmp_path / "b.json").exists()


def test_load_baseline_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "mlx-harness-baseline/1",\n "suites": [}')
    with pytest.raises(HarnessError) as err:
        load_baseline(bad)
    assert err.value.path == str(bad) and err.value.line == 2
    run_dir = write_run(tmp_path, "run1", run())
    with pytest.raises(HarnessError, match="approve it first"):
        load_baseline(run_dir / "results.json")
    with pytest.raises(HarnessError, match="not found"):
        load_baseline(tmp_path / "missing.json")
    # a baseline another version approved was 'not a baseline file' (format '.../2')
    newer = json.loads(approve(run_dir, tmp_path / "b.json").read_text())
    newer["format"] = "mlx-harness-baseline/2"
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    with pytest.raises(HarnessError) as err:
        load_baseline(tmp_path / "newer.json")
    assert "is not one this mlx-harness reads" in str(err.value) and "another mlx-harness version" in str(err.value)


def _header(res: dict) -> dict:
    """What the runner knows before generating: results without items/metrics."""
    out = copy.deepcopy(res)
    for s in out["suites"]:
        s["models"] = {}
    return out


@pytest.mark.parametrize("change, part", [
    (lambda r: r["suites"][0].update(data_fingerprint="sha256:other"), "suite smoke: data hash differs"),
    (lambda r: r["suites"][0].update(fingerprint="sha256:edited"), "suite smoke: suite content hash"),
    (lambda r: r["suites"][0]["scorers"]["exact_match"].update(version="2"), "scorer exact_match version differs"),
    (lambda r: r["suites"][0]["generation"].update(max_tokens=64), "generation settings differs"),
    (lambda r: r["models"]["base"].update(fingerprint="sha256:otherbase"), "base model fingerprint"),
])
def test_mismatch_refused_naming_the_part(tmp_path, change, part):
    baseline = load_baseline(approve(write_run(tmp_path, "run1", run()), tmp_path / "b.json"))
    now = _header(run())
    check_baseline(baseline, now, allow_mismatch=False)  # same setup: fine
    change(now)
    with pytest.raises(HarnessError) as err:
        check_baseline(baseline, now, allow_mismatch=False)
    assert part in str(err.value) and "--allow-fingerprint-mismatch" in str(err.value)
    now["warnings"] = []
    warnings = check_baseline(baseline, now, allow_mismatch=True)
    assert warnings and now["warnings"] == warnings and "compared anyway" in warnings[0]


def test_versions_warn_and_new_adapter_is_expected(tmp_path):
    baseline = load_baseline(approve(write_run(tmp_path, "run1", run()), tmp_path / "b.json"))
    now = _header(run())
    now["models"]["ft"]["fingerprint"] = "sha256:retrained"
    now["environment"]["mlx"] = "0.30.0"
    now["harness_version"] = "0.2.0"
    warnings = check_baseline(baseline, now, allow_mismatch=False)
    assert any("mlx version differs" in w for w in warnings)
    assert any("harness version differs" in w for w in warnings)
    assert not any("adapter" in w for w in warnings)
    parts = {d["part"]: d["severity"] for d in fingerprint_differences(baseline, now)}
    assert parts["adapter ft fingerprint"] == "info"
    # tuples in memory (the runner's generation settings) equal lists in the file
    now["suites"][0]["generation"]["stop"] = ("\n",)
    check_baseline(baseline, now, allow_mismatch=False)


def test_round_trip_approve_gate_compare(tmp_path):
    run1 = write_run(tmp_path, "run1", run())
    baseline = load_baseline(approve(run1, tmp_path / "baselines" / "baseline.json"))
    suite = make_suite(tmp_path, IDS, {"exact_match": {"max_drop_vs_base": 0.05, "max_drop_vs_baseline": 0.05}})

    same = run()
    check_baseline(baseline, _header(same), allow_mismatch=False)
    run2 = write_run(tmp_path, "run2", same, suite=suite, baseline=baseline)
    res2 = json.loads((run2 / "results.json").read_text())
    assert res2["verdict"] == "pass"
    kinds = {g["kind"] for g in res2["suites"][0]["gates"]}
    assert kinds == {"max_drop_vs_base", "max_drop_vs_baseline"}

    worse = run(ft_failing=("q19", "q03", "q04", "q05", "q06"))
    run3 = write_run(tmp_path, "run3", worse, suite=suite, baseline=baseline)
    res3 = json.loads((run3 / "results.json").read_text())
    assert res3["verdict"] == "fail"
    vs_baseline = [g for g in res3["suites"][0]["gates"] if g["kind"] == "max_drop_vs_baseline"][0]
    assert not vs_baseline["passed"] and "(q03, q04, q05, q06, q19)" in vs_baseline["reason"]

    cmp = compare_runs(load_run(run1), load_run(run3))
    ft = cmp["suites"][0]["models"]["ft"]
    assert ft["flipped_down"] == ["q03", "q04", "q05", "q06", "q19"] and ft["flipped_up"] == []
    assert ft["changed_outputs"] == ["q03", "q04", "q05", "q06", "q19"]
    assert ft["metrics"]["exact_match"]["delta"]["diff"] == pytest.approx(-0.25)
    text = format_comparison(cmp)
    assert "pass->fail: q03, q04, q05, q06, q19" in text and "WORSE" not in text.split("base:")[1].split("ft:")[0]
    # the baseline file compares like a run
    cmp_b = compare_runs(load_run(tmp_path / "baselines" / "baseline.json"), load_run(run3))
    assert cmp_b["suites"][0]["models"]["ft"]["flipped_down"] == ["q03", "q04", "q05", "q06", "q19"]


def test_cli_approve_and_compare(tmp_path):
    run1 = write_run(tmp_path, "run1", run())
    run3 = write_run(tmp_path, "run3", run(ft_failing=("q19", "q01")))
    to = tmp_path / "bl" / "x.json"
    cmd = [sys.executable, "-m", "harness.cli"]
    done = subprocess.run(cmd + ["baseline", "approve", str(run1), "--to", str(to)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert to.is_file() and str(to) in done.stdout
    done = subprocess.run(cmd + ["baseline", "approve", str(run3), "--to", str(to)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "cannot be approved" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(cmd + ["compare", str(run1), str(run3), "--out", str(tmp_path / "cmp")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pass->fail: q01" in done.stdout
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert "q01" in html and "<script" not in html


def test_renamed_fixture_adapter_against_committed_baseline(tmp_path):
    """A user renames the sql adapter and gates against the committed baseline: the run names
    both in a warning (terminal, results.json); --strict-baseline makes it the one more failure."""
    from conftest import FIXTURE_MODEL, ROOT, run_harness

    args = ["eval", str(ROOT / "suites" / "smoke.yaml"), "--model", str(FIXTURE_MODEL), "--adapter",
            f"sqlv2={ROOT / 'fixtures' / 'adapters' / 'sql'}", "--baseline",
            str(ROOT / "reports" / "baselines" / "fixture.json"), "--quiet"]
    lax = run_harness(*args, "--out", str(tmp_path / "lax"))
    strict = run_harness(*args, "--strict-baseline", "--out", str(tmp_path / "strict"))
    assert lax.returncode in (0, 1) and strict.returncode == 1, lax.stderr + strict.stderr
    shown = [ln for ln in lax.stdout.splitlines() if ln.startswith("  WARNING")]
    # the rename once; then the five approved suites this run of smoke alone left out
    assert len(shown) == 2 and "no model 'sqlv2'" in shown[0] and "fixture.json" in shown[0] and "(it has: " in shown[0]
    assert "approved suite(s) 'domain_qa'" in shown[1] and "sqlv2" not in shown[1]
    lax_run, strict_run = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("lax", "strict"))
    assert any("no model 'sqlv2'" in w for w in lax_run["suites"][0]["warnings"])

    def failed(run):
        return sorted((g["model"], g["metric"], g["kind"]) for g in run["suites"][0]["gates"] if not g["passed"])
    assert failed(strict_run) == sorted(failed(lax_run) + [("sqlv2", "baseline", "baseline_missing")])
    strict_shown = [ln for ln in strict.stdout.splitlines() if ln.startswith("  WARNING")]
    assert len(strict_shown) == 1 and "approved suite(s)" in strict_shown[0]  # the rename is a failed gate there
    assert "FAILED smoke / sqlv2 / baseline" in strict.stdout


def test_the_text_comparison_marks_an_unpaired_interval():
    """A metric the reference keeps without per-item values is compared from the two reported
    intervals (MOVER): far wider than a paired one, so the text says "unpaired" beside it."""
    def metric(method):
        return {"a": {"value": 7.0}, "b": {"value": 7.0}, "higher_is_better": False,
                "delta": {"diff": 0.0, "ci_low": -3.1, "ci_high": 3.1, "method": method}}
    cmp = {"a": "A", "b": "B", "fingerprints": [], "only_in_a": [], "only_in_b": [],
           "suites": [{"name": "s", "fingerprints": [], "models": {"ft": {
               "changed_outputs": [], "compared_outputs": 3, "flipped_down": [], "flipped_up": [],
               "metrics": {"ppl": metric("unpaired, from the reported intervals (MOVER)"),
                           "nll": metric("paired BCa bootstrap (2000 resamples of items, seed 0)")}}}}]}
    lines = {ln.split()[0]: ln for ln in format_comparison(cmp).splitlines() if ln.startswith("    ")}
    assert lines["ppl"].endswith("unpaired") and "unpaired" not in lines["nll"]



def test_a_baseline_from_before_a_generation_option_existed_still_gates(tmp_path):
    """A baseline approved by a harness without `generation.samples` (0.1.0 before sampled
    suites) has no `samples`/`sample` keys; this version writes `samples: 1, sample: 0`, the
    same greedy settings. The gate refused it with 'generation settings differs (baseline
    {'max_tokens': 64, 'temp…, run {'max_tokens': 64, 'temp…)': an upgrade blocked the
    gate, and the message cut off before the part that differed."""
    baseline = load_baseline(approve(write_run(tmp_path, "run1", run()), tmp_path / "b.json"))
    now = _header(run())
    now["suites"][0]["generation"].update(samples=1, sample=0, top_p=1.0, batch_size=32)
    check_baseline(baseline, now, allow_mismatch=False)  # the defaults, written out: the same settings
    now["suites"][0]["generation"].update(max_tokens=64)
    with pytest.raises(HarnessError) as err:
        check_baseline(baseline, now, allow_mismatch=False)
    assert "generation settings differs (baseline {'max_tokens': 16}, run {'max_tokens': 64})" in str(err.value)


def test_an_adapter_the_baseline_lacks_is_one_terminal_line_not_one_per_suite():
    """The red path printed twelve 'renamed?' lines for its two new adapters (six suites each)."""
    from harness.baseline import baseline_notes

    def suite(name, models):
        return {"name": name, "models": {m: {"items": [{"id": "a"}]} for m in models}}

    baseline = {"_path": "b.json", "suites": [
        {"name": n, "models": {m: {"items": [{"id": "a"}]} for m in ("base", "v1")}} for n in ("s1", "s2", "s3")]}
    results = {"suites": [suite(n, ("base", "v1", "new")) for n in ("s1", "s2")] + [suite("s3", ("base", "v1"))]}
    [line] = baseline_notes(baseline, results, [])
    assert line == ("baseline b.json has no model 'new' in suites 's1', 's2' (it has: base, v1); renamed? new is not "
                    "gated against the baseline (--strict-baseline fails it)")
    results["suites"] = results["suites"][:1]
    line, unused = baseline_notes(baseline, results, [])  # one suite: the line baseline_coverage words
    assert "has no model 'new' in suite 's1' (it has: base, v1)" in line and "'s2', 's3'" in unused


def test_a_baseline_given_as_a_run_is_read_once(tmp_path, monkeypatch):
    """`harness compare BASELINE RUN` read the baseline file, saw it was one, and read it
    again through load_baseline (which checked its name a second time too)."""
    import harness.files

    bl = approve(write_run(tmp_path, "run1", run()), tmp_path / "bl.json")
    real, reads = harness.files.read_input, []
    monkeypatch.setattr(harness.files, "read_input",
                        lambda path, *a, **k: (reads.append(Path(path)), real(path, *a, **k))[1])
    loaded = load_run(bl)
    assert reads == [bl] and loaded["format"] == load_baseline(bl)["format"]
