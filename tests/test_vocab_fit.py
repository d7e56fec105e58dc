"""A tokenizer whose ids run past the model's embedding stops the run (exit 2) before any
generation: MLX does not bounds-check the embedding gather, so those ids would read memory
outside the weights (garbage outputs or a segfault: the 26M bench model once had
vocab_size 1024 beside the fixture's 1536-token tokenizer)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def small_model(out: Path, vocab: int) -> Path:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    config = json.loads((ROOT / "fixtures" / "model" / "config.json").read_text())
    config.update(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=8)
    out.mkdir()
    for f in (ROOT / "fixtures" / "model").iterdir():
        if f.name not in ("model.safetensors", "config.json"):
            shutil.copy(f, out / f.name)
    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    mx.save_safetensors(str(out / "model.safetensors"), dict(tree_flatten(model.parameters())),
                        metadata={"format": "mlx"})
    (out / "config.json").write_text(json.dumps(config))
    return out


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
