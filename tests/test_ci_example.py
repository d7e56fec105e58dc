"""docs/github-actions-example.yml: its structure for both runners, and its shell steps run
here (as on ubuntu-latest, and with the macOS step's HARNESS_DEVICE) on the fixture model."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
import yaml

from conftest import FIXTURE_MODEL, ROOT, run_harness

WORKFLOW = ROOT / "docs" / "github-actions-example.yml"


def _job():
    doc = yaml.safe_load(WORKFLOW.read_text())
    return doc, doc["jobs"]["gate"]


def _step(job, name_start):
    matches = [s for s in job["steps"] if s.get("name", "").startswith(name_start)]
    assert len(matches) == 1, name_start
    return matches[0]


def test_structure_for_ubuntu_and_macos():
    doc, job = _job()
    assert job["strategy"]["matrix"]["os"] == ["ubuntu-latest", "macos-14"]
    assert job["runs-on"] == "${{ matrix.os }}"
    apt = [s for s in job["steps"] if "apt-get" in s.get("run", "")]
    assert apt and all(s.get("if") == "runner.os == 'Linux'" for s in apt)  # no apt on macOS
    device = _step(job, "MLX on the CPU")
    assert device["if"] == "runner.os == 'macOS'" and "HARNESS_DEVICE=cpu" in device["run"]
    assert "Metal" in WORKFLOW.read_text().split("name: adapter-gate")[0]  # the comment says why
    caches = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/cache@")]
    assert {c["with"]["path"] for c in caches} == {"${{ env.MODEL_DIR }}", "${{ env.HARNESS_CACHE_DIR }}"}
    download = _step(job, "Download the base model")
    assert download["if"] == "steps.model-cache.outputs.cache-hit != 'true'"
    gate = _step(job, "Gate")
    assert '--baseline "$BASELINE"' in gate["run"] and "--junit-items" in gate["run"]
    assert job["env"]["BASELINE"].startswith("reports/baselines/")
    summary = _step(job, "Job summary")
    assert summary["if"] == "always()" and "$GITHUB_STEP_SUMMARY" in summary["run"]
    upload = _step(job, "Upload the report")
    assert upload["uses"].startswith("actions/upload-artifact@") and upload["with"]["path"] == "${{ env.OUT }}/"
    junit = _step(job, "Publish gates")
    assert junit["if"] == "always()" and junit["with"]["report_paths"] == "${{ env.OUT }}/junit.xml"
    assert doc["permissions"]["checks"] == "write"


def _bash(script: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True, timeout=600)


def test_shell_steps_run_on_the_fixture(tmp_path):
    _, job = _job()
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "harness").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m harness.cli "$@"\n')
    (shim / "harness").chmod(stat.S_IRWXU)
    cache = tmp_path / "cache"
    env = dict(os.environ, PATH=f"{shim}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT),
               HARNESS_CACHE_DIR=str(cache))
    # the committed baseline: a passing run of the candidate, approved
    adapter = ROOT / "fixtures" / "adapters" / "sql"
    first = tmp_path / "approved-run"
    proc = run_harness("eval", "suites/smoke.yaml", "--model", str(FIXTURE_MODEL), "--adapter",
                       f"candidate={adapter}", "--out", str(first), env={"HARNESS_CACHE_DIR": str(cache)})
    assert proc.returncode == 0, proc.stderr
    baseline = tmp_path / "reports" / "baselines" / "baseline.json"
    proc = run_harness("baseline", "approve", str(first), "--to", str(baseline))
    assert proc.returncode == 0, proc.stderr

    for runner_os in ("Linux", "macOS"):
        out = tmp_path / f"out-{runner_os}"
        github_env, summary = tmp_path / f"env-{runner_os}", tmp_path / f"summary-{runner_os}.md"
        github_env.write_text("")
        step_env = dict(env, MODEL_DIR=str(FIXTURE_MODEL), ADAPTER=str(adapter), SUITES="suites/smoke.yaml",
                        BASELINE=str(baseline), OUT=str(out), GITHUB_ENV=str(github_env),
                        GITHUB_STEP_SUMMARY=str(summary))
        if runner_os == "macOS":
            proc = _bash(_step(job, "MLX on the CPU")["run"], step_env)
            assert proc.returncode == 0, proc.stderr
            assert github_env.read_text().strip() == "HARNESS_DEVICE=cpu"
            step_env.update(line.split("=", 1) for line in github_env.read_text().splitlines())
        proc = subprocess.run(["bash", "-e", "-c", _step(job, "Gate")["run"]], env=step_env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (out / "junit.xml").is_file() and (out / "index.html").is_file()
        gated = json.loads((out / "results.json").read_text())
        assert gated["baseline"] and gated["baseline"]["path"].endswith("baseline.json")  # gated against it
        proc = _bash(_step(job, "Job summary")["run"], step_env)
        assert proc.returncode == 0, proc.stderr
        assert summary.read_text() == (out / "summary.md").read_text() != ""


def test_bad_device_env_is_bad_input():
    proc = run_harness("doctor", env={"HARNESS_DEVICE": "tpu"})
    assert proc.returncode == 2 and "HARNESS_DEVICE" in proc.stderr


def test_a_device_mlx_cannot_use_here_is_bad_input(monkeypatch):
    """`HARNESS_DEVICE=gpu` on MLX's Linux CPU wheel was 'harness: internal error: ValueError:
    [set_default_device] Cannot set gpu device without gpu backend' (exit 3, 'a bug in the
    harness'); it is the user's setting, so bad input naming it (exit 2)."""
    import mlx.core as mx

    from harness.cli import apply_device_env
    from harness.errors import HarnessError

    def no_gpu(device):
        raise ValueError("[set_default_device] Cannot set gpu device without gpu backend.")

    monkeypatch.setattr(mx, "set_default_device", no_gpu)
    monkeypatch.setenv("HARNESS_DEVICE", "gpu")
    with pytest.raises(HarnessError) as err:
        apply_device_env()
    assert "HARNESS_DEVICE=gpu: MLX cannot use that device here" in str(err.value)
    assert "without gpu backend" in str(err.value)
