"""`harness eval --benchmark-json F`: latency suites as a file pytest-benchmark itself reads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from conftest import FIXTURE_MODEL, run_harness


def test_latency_suite_as_pytest_benchmark_json(tmp_path):
    out, bench = tmp_path / "out", tmp_path / "latency.json"
    proc = run_harness("eval", "suites/latency.yaml", "--limit", "3", "--model", str(FIXTURE_MODEL),
                       "--out", str(out), "--benchmark-json", str(bench), "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(bench.read_text())
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(doc)
    by_name = {b["name"]: b for b in doc["benchmarks"]}
    assert set(by_name) == {"latency[base-total_s]", "latency[base-ttft_s]"}
    total = by_name["latency[base-total_s]"]
    items = json.loads((out / "results.json").read_text())["suites"][0]["models"]["base"]["items"]
    seconds = sorted(i["scores"]["latency"]["metrics"]["total_s"] for i in items)
    assert total["stats"]["rounds"] == 3 and total["stats"]["min"] == seconds[0] and total["stats"]["max"] == seconds[-1]
    assert total["extra_info"]["decode_tps_mean"] > 0

    # pytest-benchmark's own `compare` reads it (two runs side by side)
    shutil.copy(bench, tmp_path / "again.json")
    cmp = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", str(bench),
                          str(tmp_path / "again.json"), "--columns=min,median,rounds"],
                         capture_output=True, text=True, timeout=120)
    assert cmp.returncode == 0, cmp.stderr
    assert "latency[base-total_s]" in cmp.stdout and "harness latency: latency" in cmp.stdout


def test_benchmark_json_without_latency_suite_says_so(tmp_path):
    proc = run_harness("eval", "suites/smoke.yaml", "--model", str(FIXTURE_MODEL), "--out", str(tmp_path / "o"),
                       "--benchmark-json", str(tmp_path / "b.json"), env={"HARNESS_CACHE_DIR": str(tmp_path / "c")})
    assert proc.returncode == 0, proc.stderr
    assert "0 latency benchmark(s)" in proc.stdout and json.loads((tmp_path / "b.json").read_text())["benchmarks"] == []
