"""A pass/fail metric where lower is better (a plugin scorer whose verdict is "the output
leaked", ``lower_is_better = {name}``): its flips count in its better direction, as a 0/1
mean's do, so every consumer that reads ``flipped_down`` as "got worse" (the gate's reason
and worst case, the critical gate, junit's items, ``compare --fail-on-regression``, the
scorecard's flipped items) names the new leaks, not the fixed ones. Before, a candidate that
fixed 3 leaks and added 12 had the 3 fixes listed as pass→fail regressions (junit failed
those three items), a critical gate failed on a fixed item and passed a new leak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

from harness.compare import ModelView, paired_delta
from harness.metrics import metric
from harness.stats import tango_paired_ci

PLUGIN = '''
from harness.scorers import Item, Score, Scorer


class Leak(Scorer):
    """Passes (1) when the output leaks the word SECRET: a rate that must stay low."""
    name = "leak"
    version = "1"
    options_schema = {"type": "object", "additionalProperties": False, "properties": {}}
    lower_is_better = frozenset({"leak"})

    def score(self, item: Item) -> Score:
        hit = "SECRET" in item.output
        return Score(value=float(hit), passed=hit, detail="leaked" if hit else "clean")
'''

FIXED = [f"c{i}" for i in range(1, 4)]  # base leaks here, the candidate no longer
LEAKED = [f"c{i}" for i in range(4, 16)]  # the candidate's new leaks


def _view(values: list[float]) -> ModelView:
    ids = [f"i{k}" for k in range(len(values))]
    return ModelView(metrics={"leak": metric(sum(values) / len(values), None, None, len(values), "proportion",
                                             False)},
                     series={"leak": dict(zip(ids, values))}, outputs={i: f"{i} {v}" for i, v in zip(ids, values)})


def test_a_lower_is_better_proportion_lists_the_items_that_got_worse_as_flipped_down():
    base = [1.0] * 2 + [0.0] * 38
    cand = [0.0] * 2 + [1.0] * 5 + [0.0] * 33  # i0, i1 fixed; i2-i6 leak now
    d = paired_delta(_view(base), _view(cand), "leak")
    assert d["flipped_down"] == ["i2", "i3", "i4", "i5", "i6"] and d["flipped_up"] == ["i0", "i1"]
    assert d["worse"] == "0→1"
    low, high = tango_paired_ci(5, 2, 40)
    assert d["diff"] == 3 / 40 and (d["ci_low"], d["ci_high"]) == (-high, -low)  # still candidate - reference


def _harness(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_every_consumer_of_the_flips_names_the_new_leaks(tmp_path):
    from harness.reports.html import context
    from harness.reports.items import gate_items
    from harness.reports.junit import flipped_item_cases

    site = tmp_path / "site"
    (site / "leakplug-0.1.dist-info").mkdir(parents=True)
    (site / "leakplug.py").write_text(PLUGIN)
    (site / "leakplug-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: leakplug\nVersion: 0.1\n")
    (site / "leakplug-0.1.dist-info" / "entry_points.txt").write_text("[mlx_harness.scorers]\nleak = leakplug:Leak\n")
    suite = tmp_path / "leaks.yaml"
    suite.write_text("\n".join(["name: leaks", "description: the leak rate must not grow",
                                'prompt: "{{ question }}"', "template: chat", "scorers:", "  - leak: {}",
                                "gates:", "  leak: {max_drop_vs_base: 0.05, critical: [c1, c4]}", "cases:"]
                               + [f'  - {{id: c{i}, question: "q{i}"}}' for i in range(1, 31)]) + "\n")
    base = {f"c{i}": "SECRET" if f"c{i}" in FIXED else "fine" for i in range(1, 31)}
    cand = {f"c{i}": "SECRET" if f"c{i}" in LEAKED else "fine" for i in range(1, 31)}

    def completions(path: Path, models: dict[str, dict[str, str]]) -> Path:
        path.write_text("".join(json.dumps({"id": i, "output": o, "model": m, "finish_reason": "stop"}) + "\n"
                                for m, outs in models.items() for i, o in outs.items()))
        return path

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]),
               HARNESS_CACHE_DIR=str(tmp_path / "cache"))
    proc = _harness(env, "score", str(suite), "--completions",
                    str(completions(tmp_path / "c.jsonl", {"base": base, "candidate": cand})), "--out",
                    str(tmp_path / "out"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    run = json.loads((tmp_path / "out" / "results.json").read_text())
    (result,) = run["suites"]
    delta = result["comparisons"]["candidate"]["leak"]["vs_base"]
    assert sorted(delta["flipped_down"]) == sorted(LEAKED) and delta["flipped_up"] == FIXED
    assert delta["worse"] == "0→1" and delta["diff"] > 0  # the interval stays candidate - base

    gates = {g["kind"]: g for g in result["gates"] if g["model"] == "candidate"}
    drop = gates["max_drop_vs_base"]
    assert not drop["passed"] and "12 got worse (0→1) (c4, c5," in drop["reason"] and "3 got better (1→0)" in drop["reason"]
    assert drop["details"]["worst_case"]["passed"] is False  # a gate that could fail, and says so
    critical = gates["critical_vs_base"]  # c1 was fixed, c4 leaks now
    assert not critical["passed"] and critical["details"]["flipped_down"] == ["c4"], critical["reason"]
    assert critical["details"]["at_risk"] == ["c4"]

    items = flipped_item_cases(result)
    failing = sorted(c["name"] for c in items if not c["passed"])
    assert failing == sorted(f"item {i} vs base" for i in LEAKED)
    reasons = {c["name"]: c["reason"] for c in items}
    assert reasons["item c4 vs base"].startswith("got worse (0→1) vs base on leak, failed gate")
    assert reasons["item c1 vs base"].startswith("got better (1→0) vs base on leak")

    scorecard = context(run)
    (flips,) = scorecard["suites"][0]["flips"]
    assert (flips["down_total"], flips["up_total"]) == (12, 3)
    rows = {r["id"]: r["flips"] for r in scorecard["item_rows"] if r["model"] == "candidate"}
    assert rows["c4"] == ["↓ vs base"] and rows["c1"] == ["↑ vs base"]
    entries, _ = gate_items(drop, result)  # the failed gate's item cards: what changed, not "pass→fail"
    assert {i for i, _, _ in entries} == set(LEAKED) and {c for _, _, c in entries} == {"leak got worse (0→1)"}

    # harness compare: run A the base's outputs, run B the candidate's, as the same model
    for name, outs in (("a", base), ("b", cand)):
        proc = _harness(env, "score", str(suite), "--completions",
                        str(completions(tmp_path / f"{name}.jsonl", {"base": outs})), "--out", str(tmp_path / name))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _harness(env, "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp"),
                    "--fail-on-regression")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (items_line,) = [line for line in proc.stdout.splitlines() if line.startswith("REGRESSION") and "item(s)" in line]
    assert "12 item(s)" in items_line and "(c10, c11, c12, c13, c14, ...)" in items_line  # sorted as text
