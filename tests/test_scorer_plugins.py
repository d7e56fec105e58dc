"""Plugin scorers: the `mlx_harness.scorers` entry-point group, and the installable example package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

from conftest import ROOT
from harness.errors import HarnessError
from harness.scorers import plugins, scorer_class

EXAMPLE = ROOT / "examples" / "mlx-harness-scorer-example"

SUITE = """\
name: plugin_smoke
prompt: "{{ q }}"
target: "{{ a }}"
template: raw
scorers:
  - contains_target: {case_sensitive: false}
gates:
  contains_target: {min: 0.5}
cases:
  - {id: c1, q: "2+2?", a: "4"}
  - {id: c2, q: "capital of France?", a: "Paris"}
  - {id: c3, q: "sky colour?", a: "blue"}
  - {id: c4, q: "days in a week?", a: "7"}
"""


@pytest.fixture
def fake_entry_points(monkeypatch):
    def install(*eps: EntryPoint):
        monkeypatch.setattr(plugins, "_entry_points", lambda: list(eps))
        plugins.load_plugin.cache_clear()
    yield install
    plugins.load_plugin.cache_clear()


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=plugins.GROUP)


def test_entry_point_scorer_is_found_and_checked(fake_entry_points):
    fake_entry_points(ep("exact_match_again", "harness.scorers.exact_match:ExactMatch"),
                      ep("broken", "no_such_module_xyz:Thing"), ep("not_a_scorer", "json:dumps"))
    with pytest.raises(HarnessError, match="has name 'exact_match', but its entry point is 'exact_match_again'"):
        scorer_class("exact_match_again")
    with pytest.raises(HarnessError, match="cannot load scorer 'broken': ModuleNotFoundError"):
        scorer_class("broken")
    with pytest.raises(HarnessError, match="not a harness.scorers.Scorer subclass"):
        scorer_class("not_a_scorer")
    with pytest.raises(HarnessError, match="known scorers: .*broken.*exact_match") as err:
        scorer_class("nothing_like_it")
    assert "not_a_scorer" in err.value.hint


def test_builtin_names_cannot_be_replaced(fake_entry_points):
    from harness.scorers.keywords import Keywords

    fake_entry_points(ep("exact_match", "harness.scorers.keywords:Keywords"))
    assert scorer_class("exact_match") is not Keywords


def test_installed_example_package_scores_a_suite(tmp_path):
    """pip-install examples/mlx-harness-scorer-example (offline, --target) and use its scorer in a suite."""
    src = tmp_path / "example-src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(src)], check=True, capture_output=True, timeout=300)
    suite = tmp_path / "plugin_smoke.yaml"
    suite.write_text(SUITE)
    completions = tmp_path / "c.jsonl"
    rows = [("c1", "The answer is 4."), ("c2", "paris, of course"), ("c3", "grey"), ("c4", "seven")]
    completions.write_text("".join(json.dumps({"id": i, "output": o}) + "\n" for i, o in rows))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), str(ROOT)]))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "score", str(suite), "--completions",
                           str(completions), "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((out / "results.json").read_text())
    base = result["suites"][0]["models"]["base"]
    assert base["metrics"]["contains_target"]["value"] == 0.5  # c1, c2 (case-insensitive) of four
    assert [i["scores"]["contains_target"]["passed"] for i in base["items"]] == [True, True, False, False]
    assert base["metrics"]["contains_target.position"]["n"] == 2
    assert result["suites"][0]["scorers"]["contains_target"]["version"] == "1"

    # without the package installed the same suite is bad input naming the scorer
    bare = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "score", str(suite), "--completions",
                           str(completions), "--out", str(tmp_path / "out2")], env=bare, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "unknown scorer 'contains_target'" in proc.stderr
