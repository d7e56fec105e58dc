"""Sampled suites (`generation.samples: k`): k cached draws per item, per-item means, pass@k."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from factories import make_suite
from harness.errors import HarnessError
from harness.generation import GenerationConfig
from harness.runner import score_sampled
from harness.sampling import pass_at_k, pass_hat_k
from harness.scorers import make_scorer
from harness.suite import load_suite


def test_unbiased_estimators_by_hand():
    # n=5 draws, c=2 passed: pass@2 = 1 - C(3,2)/C(5,2) = 0.7; pass^2 = C(2,2)/C(5,2) = 0.1
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_hat_k(5, 2, 2) == pytest.approx(0.1)
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4) == pass_hat_k(5, 2, 1)
    assert pass_at_k(3, 0, 3) == 0.0 and pass_at_k(3, 1, 3) == 1.0
    assert pass_hat_k(3, 3, 3) == 1.0 and pass_hat_k(3, 2, 3) == 0.0


def test_samples_need_temperature_and_each_draw_has_its_own_cache_key(tmp_path):
    doc = {"name": "s", "prompt": "{{ q }}", "scorers": [{"exact_match": {}}], "cases": [{"q": "a"}],
           "generation": {"samples": 4, "temperature": 0.0}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(HarnessError) as err:
        load_suite(path)
    assert err.value.field == "generation.samples" and "temperature" in str(err.value)
    doc["generation"]["temperature"] = 0.7
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert load_suite(path).generation.samples == 4
    keys = {json.dumps(GenerationConfig(temperature=0.7, seed=3 + j, sample=j).cache_key(), sort_keys=True)
            for j in range(4)}
    assert len(keys) == 4
    greedy = GenerationConfig(temperature=0.0, sample=2).cache_key()
    assert "sample" not in greedy and "seed" not in greedy


def _draws(rng, probs, k):
    return [[{"output": "4" if rng.random() < p else "wrong", "finish_reason": "stop"} for p in probs]
            for _ in range(k)]


def test_score_sampled_combines_draws(tmp_path):
    ids = [f"q{i}" for i in range(4)]
    suite = make_suite(tmp_path, ids)
    scorers = [make_scorer(s, suite.dir) for s in suite.scorers]
    draws = [[{"output": out, "finish_reason": "stop"} for out in row]
             for row in (["4", "4", "no", "no"], ["4", "no", "no", "no"], ["4", "4", "4", "no"])]
    result, skipped = score_sampled(suite, scorers, draws, "fp", None)
    assert not skipped
    first = result["items"][0]
    assert first["scores"]["exact_match"]["value"] == 1.0 and len(first["samples"]) == 3
    shares = [it["scores"]["exact_match"]["value"] for it in result["items"]]
    assert shares == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    m = result["metrics"]
    assert m["exact_match"]["kind"] == "proportion" and m["exact_match"]["samples"] == 3
    assert m["exact_match"]["value"] == pytest.approx(0.5)
    assert m["exact_match.pass@3"]["value"] == pytest.approx(0.75)   # 3 of 4 items pass at least once
    assert m["exact_match.pass^3"]["value"] == pytest.approx(0.25)   # 1 of 4 passes every draw
    # the interval counts items, not the 12 draws: wider than a Wilson interval on 12 draws
    from harness.stats import wilson
    lo, hi = wilson(6, 12)
    assert m["exact_match"]["ci_high"] - m["exact_match"]["ci_low"] > hi - lo


def test_sampled_a_a_is_not_called_worse_more_often_than_the_level(tmp_path):
    # One model against itself, fresh draws each side: the paired interval must exclude 0 on
    # the worse side (a "worse" verdict) at most 2.5% of the time. Treating the n x k draws as
    # independent items (or one draw per item as the whole truth) would do so far more often.
    from harness.compare import direction
    from harness.gates import comparisons_for

    n, k, reps = 80, 4, 120
    ids = [f"q{i}" for i in range(n)]
    suite = make_suite(tmp_path, ids)
    scorers = [make_scorer(s, suite.dir) for s in suite.scorers]
    rng = np.random.default_rng(0)
    worse = 0
    for _ in range(reps):
        probs = rng.beta(1.0, 1.0, n)
        base, _ = score_sampled(suite, scorers, _draws(rng, probs, k), "a", None)
        cand, _ = score_sampled(suite, scorers, _draws(rng, probs, k), "b", None)
        sr = {"name": "smoke", "models": {"base": base, "ft": cand}}
        delta = comparisons_for(sr, None)["ft"]["exact_match"]["vs_base"]
        worse += direction(delta, True) == "worse"
    assert worse / reps <= 0.025 + 2 * (0.025 * 0.975 / reps) ** 0.5


def test_sampled_eval_caches_every_draw(tmp_path, monkeypatch):
    from conftest import FIXTURE_MODEL
    from harness.cli import main

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    doc = {"name": "sampled", "prompt": "{{ q }}", "target": "{{ a }}", "template": "raw",
           "generation": {"max_tokens": 6, "temperature": 0.9, "samples": 3},
           "scorers": [{"exact_match": {}}], "gates": {"exact_match": {"min": 0.0}},
           "cases": [{"id": f"c{i}", "q": f"{i} + {i} =", "a": str(2 * i)} for i in range(3)]}
    path = tmp_path / "sampled.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["eval", str(path), "--model", str(FIXTURE_MODEL), "--out", str(tmp_path / "a")]) == 0
    first = json.loads((tmp_path / "a" / "results.json").read_text())["suites"][0]["models"]["base"]
    item = first["items"][0]
    assert len(item["samples"]) == 3 and item["output"] == item["samples"][0]["output"]
    assert first["metrics"]["exact_match"]["samples"] == 3 and "exact_match.pass@3" in first["metrics"]
    assert main(["eval", str(path), "--model", str(FIXTURE_MODEL), "--out", str(tmp_path / "b")]) == 0
    again = json.loads((tmp_path / "b" / "results.json").read_text())["suites"][0]["models"]["base"]
    assert all(it["cached"] for it in again["items"])
    assert [s["output"] for it in again["items"] for s in it["samples"]] == \
        [s["output"] for it in first["items"] for s in it["samples"]]


def test_harness_score_reads_sampled_completions(tmp_path, capsys):
    from harness.cli import main

    doc = {"name": "sampled", "prompt": "{{ q }}", "target": "{{ a }}",
           "generation": {"temperature": 0.7, "samples": 2}, "scorers": [{"exact_match": {}}],
           "cases": [{"id": f"c{i}", "q": "?", "a": "4"} for i in range(3)]}
    path = tmp_path / "sampled.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    lines = [{"id": f"c{i}", "sample": j, "output": "4" if (i + j) % 2 else "no"} for i in range(3) for j in range(2)]
    comp = tmp_path / "c.jsonl"
    comp.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert main(["score", str(path), "--completions", str(comp), "--out", str(tmp_path / "out")]) == 0
    base = json.loads((tmp_path / "out" / "results.json").read_text())["suites"][0]["models"]["base"]
    assert [it["scores"]["exact_match"]["value"] for it in base["items"]] == [0.5, 0.5, 0.5]
    assert base["metrics"]["exact_match.pass@2"]["value"] == 1.0
    assert base["metrics"]["exact_match.pass^2"]["value"] == 0.0
    comp.write_text("\n".join(json.dumps(x) for x in lines[:-1] + [dict(lines[-1], sample=2)]) + "\n")
    assert main(["score", str(path), "--completions", str(comp), "--out", str(tmp_path / "bad")]) == 2
    assert "sample must be" in capsys.readouterr().err


def test_an_integrity_failure_in_a_later_draw_fails_the_run(tmp_path, capsys, monkeypatch):
    """Each draw of a sampled suite has its own cache entries and its own check; only the
    first draw's result used to reach the gate, so a failing second draw passed."""
    from harness import runner
    from hostile_util import FIXTURE_MODEL, cli

    real = runner.generate_suite

    def second_draw_fails(suite, *args, **kwargs):
        completions, checked = real(suite, *args, **kwargs)
        if suite.generation.sample == 1:
            checked = {"checked": 1, "passed": False, "detail": "planted mismatch in draw 2"}
        return completions, checked

    monkeypatch.setattr(runner, "generate_suite", second_draw_fails)
    doc = {"name": "sampled", "prompt": "{{ q }}", "target": "{{ a }}", "template": "chat",
           "generation": {"samples": 2, "temperature": 0.7, "max_tokens": 8},
           "scorers": [{"exact_match": {}}], "gates": {},
           "cases": [{"q": "What is 2 + 2?", "a": "4"}, {"q": "Name a colour.", "a": "blue"}]}
    suite = tmp_path / "suite" / "sampled.yaml"
    suite.parent.mkdir()
    suite.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, _, err = cli(capsys, "eval", suite, "--model", FIXTURE_MODEL, "--no-cache", "--out", tmp_path / "out")
    assert code == 1, err
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    integrity = result["suites"][0]["models"]["base"]["integrity"]
    assert integrity["passed"] is False and "planted mismatch in draw 2" in integrity["detail"]
    assert "1 of 2 draws failed" in integrity["detail"]
