"""A tokenizer whose ids run past the model's embedding stops the run (exit 2) before any
generation: MLX does not bounds-check the embedding gather, so those ids would read memory
outside the weights (garbage outputs or a segfault: the 26M bench model once had
vocab_size 1024 beside the fixture's 1536-token tokenizer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def small_model(out: Path, vocab: int) -> Path:
    """A random 1-layer llama whose embedding has ``vocab`` rows, with the fixture's tokenizer."""
    from conftest import random_model

    config = json.loads((ROOT / "fixtures" / "model" / "config.json").read_text())
    config.update(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=8)
    return random_model(out, "llama", config)


def test_prompt_ids_past_the_embedding_are_refused(tmp_path):
    model = small_model(tmp_path / "model", vocab=256)
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "eval", str(ROOT / "suites" / "smoke.yaml"),
                           "--model", str(model), "--out", str(tmp_path / "out"), "--no-cache", "--quiet"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "but the model's vocab_size is 256" in proc.stderr
    assert "tokenizer does not match" in proc.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_vocabulary_that_holds_every_id_runs(tmp_path):
    model = small_model(tmp_path / "model", vocab=1536)
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "eval", str(ROOT / "suites" / "smoke.yaml"),
                           "--model", str(model), "--out", str(tmp_path / "out"), "--no-cache", "--quiet"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert (tmp_path / "out" / "results.json").is_file()


def test_check_generator_refuses_token_ids_past_the_embedding(tmp_path):
    from harness.errors import HarnessError
    from harness.generator_check import check_generator

    model = small_model(tmp_path / "model", vocab=256)
    with pytest.raises(HarnessError, match="prompt 1 has token id 300, but the model's vocab_size is 256"):
        check_generator(lambda ids, n: [], str(model), [[5, 6], [7, 300]], max_tokens=2)


def test_training_refuses_rows_past_the_embedding(tmp_path):
    model = small_model(tmp_path / "model", vocab=256)
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"prompt": f"Question {i}: what is {w}?", "completion": w} for i, w in
            enumerate(["apple", "pear", "plum", "fig"])]
    for split in ("train", "valid"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "train",
                           str(ROOT / "fixtures" / "train_configs" / "wikisql.yaml"), "--data", str(data),
                           "--model", str(model), "--steps", "2", "--batch_size", "2",
                           "--adapter_path", str(tmp_path / "adapter"), "--allow-lint-errors"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{data / 'train.jsonl'}:1: the row has token id" in proc.stderr
    assert "but the model's vocab_size is 256" in proc.stderr
    assert not (tmp_path / "adapter").exists()


GENERATE_SPY = """\
import os, sys
from pathlib import Path
from harness import runner
real = runner.generate
def spy(*args, **kwargs):
    Path(os.environ["GENERATED"]).write_text("generated")
    return real(*args, **kwargs)
runner.generate = spy
from harness.cli import main
sys.exit(main())
"""


def _raw_suite(path: Path, name: str, prompts: dict[str, str]) -> Path:
    cases = "".join(f"  - {{id: {item}, prompt: {json.dumps(text)}, target: x}}\n" for item, text in prompts.items())
    path.write_text(f"name: {name}\nprompt: \"{{{{ prompt }}}}\"\ntarget: \"{{{{ target }}}}\"\ntemplate: raw\n"
                    f"generation: {{max_tokens: 2, temperature: 0.0}}\nscorers:\n  - exact_match: {{}}\n"
                    f"cases:\n{cases}")
    return path


def test_a_bad_id_in_the_last_suite_refuses_before_the_first_suite_generates(tmp_path):
    """Every suite's prompts are checked before any suite generates: a refusal found only
    when the last suite's turn came would throw away the earlier suites' generation."""
    from harness.models import load_base
    from harness.prompts import encode_prompt
    from harness.blas import preload_env

    first = _raw_suite(tmp_path / "first.yaml", "first", {"ok-1": "hi"})
    last = _raw_suite(tmp_path / "last.yaml", "last", {"ok-2": "hi", "bad-1": "quixotic xylophone 漢字"})
    tokenizer = load_base(str(ROOT / "fixtures" / "model")).tokenizer
    vocab = 1 + max(encode_prompt(tokenizer, "hi", "raw", None))  # the first suite fits...
    assert max(encode_prompt(tokenizer, "quixotic xylophone 漢字", "raw", None)) >= vocab  # ...bad-1 does not
    model = small_model(tmp_path / "model", vocab=vocab)
    spy = tmp_path / "spy.py"
    spy.write_text(GENERATE_SPY)
    generated = tmp_path / "generated"
    env = preload_env({**os.environ, "GENERATED": str(generated), "PYTHONPATH": str(ROOT),
                       "HARNESS_CACHE_DIR": str(tmp_path / "cache")})
    proc = subprocess.run([sys.executable, str(spy), "eval", str(first), str(last), "--model", str(model),
                           "--out", str(tmp_path / "out"), "--quiet"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert not generated.exists()  # the first suite did not generate
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1, proc.stderr[-2000:]  # one line, naming the suite file and the item
    assert errors[0].startswith(f"harness: error: {last}: suite 'last', case 'bad-1': the prompt has token id ")
    assert f"but the model's vocab_size is {vocab}" in errors[0]
    assert not (tmp_path / "out" / "results.json").exists()
