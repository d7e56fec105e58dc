"""Eval items whose prompt + generation.max_tokens go past the model's positions
(config.json): a warning per suite in the run's results on a RoPE model (their outputs are
degraded, and the scorecard would blame the model), a refusal before any generation on a
learned position table (GPT-2: MLX does not bounds-check the gather)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import few_positions_llama, run_harness, tiny_gpt2
from harness.errors import HarnessError
from harness.positions import Positions, eval_overrun, model_positions

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "fixtures" / "model"
LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 4)


def write_suite(folder: Path, max_tokens: int = 4) -> Path:
    """Raw prompts: one that fits 24 positions with its answer, three that do not."""
    cases = [{"id": "short", "question": "2+2=", "answer": "4"}] + [
        {"id": f"long-{i}", "question": LONG[: 120 + 20 * i], "answer": "x"} for i in range(3)]
    path = folder / "lengths.yaml"
    path.write_text(json.dumps({
        "name": "lengths", "prompt": "{{ question }}", "target": "{{ answer }}", "template": "raw",
        "generation": {"max_tokens": max_tokens, "temperature": 0.0}, "scorers": [{"exact_match": {}}],
        "cases": cases}))  # JSON is YAML
    return path


def harness(*args: str, cache: Path):
    return run_harness(*args, env={"HARNESS_CACHE_DIR": str(cache)}, timeout=180)


def test_prompt_plus_max_tokens_is_what_must_fit():
    rope = Positions(24, "config.json's max_position_embeddings (24)")
    assert eval_overrun(rope, [("a", 8), ("b", 20)], 16, "s.yaml") is not None
    assert eval_overrun(rope, [("a", 8), ("b", 4)], 16, "s.yaml") is None  # 8 + 16 = 24 fits
    assert eval_overrun(None, [("a", 5000)], 16, "s.yaml") is None  # no field, no check
    text = eval_overrun(rope, [("a", 9), ("b", 3), ("c", 30), ("d", 10), ("e", 12)], 16, "suites/s.yaml")
    assert text.startswith("suite suites/s.yaml: 4 of 5 items ('a', 'c', 'd' and 1 more) need more positions "
                           "than the model has: the longest, 'c', is a 30-token prompt + generation.max_tokens "
                           "16 = 46, the model has 24 (config.json's max_position_embeddings (24))")
    assert "shorten those prompts: the longest alone fills all 24 positions" in text and "\n" not in text
    fixable = eval_overrun(rope, [("a", 12)], 16, "s.yaml")
    assert "lower generation.max_tokens to 12 or less" in fixable


def test_a_learned_position_table_refuses_the_items():
    learned = model_positions({"model_type": "gpt2", "n_positions": 24})
    assert eval_overrun(learned, [("a", 20)], 4, "s.yaml") is None
    with pytest.raises(HarnessError) as exc:
        eval_overrun(learned, [("a", 20), ("b", 21)], 4, "suites/s.yaml")
    line = exc.value.one_line()
    assert line.startswith("suites/s.yaml [generation.max_tokens]: 1 of 2 items ('b') need more positions")
    assert "config.json's n_positions (24)" in line and "read memory outside the weights" in line
    assert "lower generation.max_tokens to 3 or less" in line


def test_eval_past_the_positions_warns_in_the_scorecard(tmp_path):
    model = few_positions_llama(tmp_path / "model", 24)
    suite = write_suite(tmp_path)
    out = tmp_path / "out"
    proc = harness("eval", str(suite), "--model", str(model), "--out", str(out), "--quiet",
                   cache=tmp_path / "cache")
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    [header] = results["suites"]
    [warning] = [w for w in header["warnings"] if "positions" in w]
    assert warning.startswith(f"suite {suite}: 3 of 4 items ('long-0', 'long-1', 'long-2') need more positions "
                              f"than the model has: the longest, 'long-2', is a ")
    assert "the model has 24 (config.json's max_position_embeddings (24))" in warning
    assert len(header["models"]["base"]["items"]) == 4  # still generated: a warning, not a refusal
    assert warning in (out / "summary.md").read_text()
    html = (out / "index.html").read_text()
    assert "prompts past the model&#39;s positions" in html or "prompts past the model's positions" in html
    assert "need more positions than the model has" in html


def test_eval_on_a_learned_position_table_is_refused_before_generation(tmp_path):
    model = tiny_gpt2(tmp_path / "gpt2", 24)
    suite = write_suite(tmp_path)
    cache = tmp_path / "cache"
    proc = harness("eval", str(suite), "--model", str(model), "--out", str(tmp_path / "out"), "--quiet",
                   cache=cache)
    assert proc.returncode == 2, proc.stderr[-2000:]
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("harness: error:")]
    assert f"{suite} [generation.max_tokens]: 3 of 4 items ('long-0', 'long-1', 'long-2') need more positions" in line
    assert "config.json's n_positions (24)" in line and "shorten those prompts" in line
    assert not (tmp_path / "out").exists()
    # the same suite with everything fitting runs: the check is on lengths, not on GPT-2
    fits = tiny_gpt2(tmp_path / "gpt2-long", 512)
    proc = harness("eval", str(suite), "--model", str(fits), "--out", str(tmp_path / "out2"), "--quiet",
                   cache=cache)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "positions" not in (tmp_path / "out2" / "results.json").read_text()


def test_the_shipped_suites_fit_the_fixture_model():
    from harness.models import load_base
    from harness.runner import check_prompts_fit, load_suites

    base = load_base(str(MODEL))
    suites = load_suites(sorted((ROOT / "suites").glob("*.yaml")), None)
    assert model_positions(base.config).count == 1024
    assert check_prompts_fit(base, suites) == {}
