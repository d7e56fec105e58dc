"""Reports: index.html (escaped, self-contained, renders in Chromium), junit.xml, summary.md."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path


from factories import item, make_suite, model_result, results, suite_result
from harness.gates import comparisons_for, evaluate_gates
from harness.reports import render_html, render_junit, render_summary, write_reports

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "reports" / "test-artifacts"
IDS = [f"q{i:02d}" for i in range(16)]
EVIL = '<script>document.title="PWNED";document.body.innerHTML="PWNED"</script><img src=x onerror="document.title=\'PWNED\'">'
TITLE = "mlx-harness: FAIL · smoke · sql"


def build(tmp_path: Path, training_log: bool = True) -> dict:
    """A failing run with a regressing adapter, hostile output, categories, latency and a training log."""
    cats = ["architecture", "debugging", "operations", "deployment"]

    def model(failing: set[str], slow: float, hostile: bool) -> dict:
        items = []
        for k, i in enumerate(IDS):
            passed = i not in failing
            out = EVIL if (hostile and not passed) else None
            items.append(item(i, passed, out, category=cats[k % 4], ttft_s=0.05 + slow + 0.004 * k,
                              decode_tps=120 - 30 * slow - k, prompt=f"Question {i} | with <b>markup</b>?",
                              metrics={"seq_rep_4": 0.02 + slow}))
        return model_result(items)

    smoke = suite_result({"base": model({"q15"}, 0.0, False), "ft": model({"q01", "q02", "q03", "q15"}, 0.2, True)})
    sql_items_base = [item(i, True, "SELECT 1", scorer="sql_execution") for i in IDS[:6]]
    sql_items_ft = [item(i, i != "q02", "SELECT 1" if i != "q02" else "SELECT * FROM nope", scorer="sql_execution",
                         extra={"error": "no such table: nope"} if i == "q02" else None) for i in IDS[:6]]
    sql = suite_result({"base": model_result(sql_items_base), "ft": model_result(sql_items_ft)}, name="sql")
    suite = make_suite(tmp_path, IDS)
    for s in (smoke, sql):
        s["comparisons"] = comparisons_for(s, None)  # as the runner stores them for the reports
        s["gates"], s["warnings"] = evaluate_gates(suite if s is smoke else _sql_suite(tmp_path), s, None)
    res = results([smoke, sql])
    res["verdict"] = "fail"
    if training_log:
        log = tmp_path / "adapter" / "train_log.jsonl"
        log.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"step": s, "train_loss": 3.0 * 0.97 ** s, "lr": 1e-4, "tokens_per_s": 900.0, "peak_memory_gb": 0.4}
                for s in range(0, 100, 5)]
        for r in rows[::4]:
            r["val_loss"] = r["train_loss"] + 0.15
        log.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
        res["models"]["ft"]["training_log"] = str(log)
    res["command"] = ["harness", "eval", "suites/smoke.yaml", "--adapter", "ft=adapters/ft dir"]
    return res


def _sql_suite(tmp_path):
    return make_suite(tmp_path, IDS[:6], name="sql")  # gates come from the results, not the scorer


def test_html_escapes_model_output_and_is_self_contained(tmp_path):
    html = render_html(build(tmp_path))
    # one script: ours, allowed by its hash; nothing from the model runs
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert html.lower().count("<script") == 1 and len(scripts) == 1
    assert scripts[0] == (ROOT / "harness" / "templates" / "report.js").read_text()
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html and "default-src 'none'" in html
    assert "onerror=\"" not in html
    assert "&lt;script&gt;document.title=&#34;PWNED&#34;" in html
    assert "&lt;b&gt;markup&lt;/b&gt;" in html
    assert "Content-Security-Policy" in html
    # nothing fetched: no external URLs except the SVG namespace
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(link|img|iframe|object|embed)\b", html)
    # the pieces a person looks for
    for text in ("FAIL", "Failed gates", "max_drop_vs_base", "3 pass→fail", "By category", "architecture",
                 "no such table: nope", "training and validation loss", "Time to first token",
                 "sha256:base", "ft=adapters/ft dir", "mlx-lm"):
        assert text in html, text
    assert html.count("<svg") >= 4


def test_junit_one_case_per_gate_with_reason(tmp_path):
    res = build(tmp_path)
    res["suites"][0]["gates"][0]["reason"] += " \x00\x1b bad control chars & <tags>"
    root = ET.fromstring(render_junit(res).encode())
    cases = root.findall(".//testcase")
    gates = [g for s in res["suites"] for g in s["gates"]]
    assert len(cases) == len(gates)
    failures = root.findall(".//testcase/failure")
    failed = [g for g in gates if not g["passed"]]
    assert len(failures) == len(failed) == int(root.get("failures"))
    assert failures[0].get("message").startswith(failed[0]["reason"].split(" \x00")[0])
    assert "& <tags>" in failures[0].get("message")
    assert cases[0].get("classname") == "smoke.ft" and cases[0].get("name") == "exact_match max_drop_vs_base"


def test_junit_suite_without_gates_is_skipped_not_empty(tmp_path):
    res = results([suite_result({"base": model_result({"a": True})})])
    root = ET.fromstring(render_junit(res).encode())
    (case,) = root.findall(".//testcase")
    assert case.find("skipped") is not None and root.get("failures") == "0"


def test_summary_is_short_and_safe(tmp_path):
    res = build(tmp_path)
    res["suites"][0]["gates"][0]["reason"] += " a|b <img src=x>"
    md = render_summary(res)
    assert md.startswith("## ❌ mlx-harness: FAIL")
    assert "### Failed gates" in md and "a\\|b &lt;img src=x&gt;" in md
    assert "| smoke | `exact_match` | 0.938 | 0.750 (Δ -0.188" in md
    assert len(md) < 6000 and "<img" not in md


def test_write_reports_atomic_and_pass_banner(tmp_path):
    same = model_result({i: True for i in IDS})
    sr = suite_result({"base": same, "ft": same})
    sr["comparisons"] = comparisons_for(sr, None)
    sr["gates"], sr["warnings"] = evaluate_gates(make_suite(tmp_path, IDS), sr, None)
    res = results([sr])
    out = tmp_path / "out"
    write_reports(res, out)
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "junit.xml", "results.json", "summary.md"]
    html = (out / "index.html").read_text()
    assert 'class="banner pass"' in html and "0 of 1 gate failed" in html
    assert "No item changed its pass/fail verdict" in html


def test_missing_training_log_is_a_note_not_a_crash(tmp_path):
    res = build(tmp_path, training_log=False)
    res["models"]["ft"]["training_log"] = str(tmp_path / "nope.jsonl")
    assert "training log not readable" in render_html(res)


def test_a_tiny_change_is_not_printed_as_zero():
    """A memory delta of 0.0004 GB read "-0.000 [-0.000, -0.000]" in the scorecard, coloured
    as a change: numbers that contradicted their colour. Never "-0.000" for zero either."""
    from harness.compare import fmt

    assert fmt(-0.0004123, signed=True) == "-0.000412" and fmt(0.00049) == "0.000490"
    assert fmt(-1e-20, signed=True) == "-1.00e-20"
    assert fmt(-0.0, signed=True) == "+0.000" and fmt(0.0) == "0.000"
    assert fmt(0.1234, signed=True) == "+0.123" and fmt(None) == "–"


def test_the_terminal_points_at_the_warnings(tmp_path):
    """Warnings were only in summary.md and the scorecard: a PASS line said nothing of them."""
    from conftest import ROOT, run_harness

    answers = {"add-1": "4", "add-2": "15", "mul-1": "12", "cap-1": "Paris", "col-1": "blue", "day-1": "7"}
    completions = tmp_path / "c.jsonl"
    completions.write_text("".join(json.dumps({"id": i, "output": a, "model": m}) + "\n"
                                   for m in ("base", "v2") for i, a in answers.items()))
    # smoke's gates without the one against a baseline: none given, that one is a warning (unchecked)
    unbaselined = tmp_path / "smoke.yaml"
    unbaselined.write_text((ROOT / "suites" / "smoke.yaml").read_text().replace(", max_drop_vs_baseline: 0.6", ""))
    quiet = run_harness("score", str(unbaselined), "--completions", str(completions), "--out", str(tmp_path / "a"))
    assert quiet.returncode == 0 and "warning" not in quiet.stdout.lower(), quiet.stdout
    warned = run_harness("score", "suites/smoke.yaml", "--completions", str(completions), "--out", str(tmp_path / "b"),
                         "--baseline", "reports/baselines/fixture.json")  # v2 is not in it; five suites left out
    n = len(json.loads((tmp_path / "b" / "results.json").read_text())["warnings"]) + sum(
        len(s.get("warnings") or []) for s in json.loads((tmp_path / "b" / "results.json").read_text())["suites"])
    assert warned.returncode == 0 and n >= 2
    assert warned.stdout.splitlines()[-1] == f"  {n} warnings: see summary.md (a warning does not change the verdict)"


def test_a_number_reported_without_an_interval_is_never_coloured_as_a_change():
    """The latency suite's peak-memory max has no interval: its delta's "interval" was the point
    itself, so 1 KB less than the baseline read as a significant gain (green) and 1 MB more than
    the base as a loss (red)."""
    from harness.compare import _mover, direction
    from harness.reports.html import _delta_cell

    point = _mover({"value": 0.012024}, {"value": 0.012023})
    assert direction(point, hib=False) == "" and direction(point, hib=True) == ""
    cell = _delta_cell(point, hib=False)
    assert cell["cls"] == "" and cell["ci"] == "(no interval)"
    measured = _mover({"value": 0.5, "ci_low": 0.45, "ci_high": 0.55}, {"value": 0.8, "ci_low": 0.75, "ci_high": 0.85})
    assert direction(measured, hib=True) == "better" and _delta_cell(measured, hib=True)["ci"].startswith("[+")
