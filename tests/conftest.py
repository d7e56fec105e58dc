"""Shared fixtures: the project's fixture model, the third-party stories260K model, and a
way to run the real `harness` command in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_MODEL = ROOT / "fixtures" / "model"
STORIES_MODEL = ROOT / "fixtures" / "stories260K"  # third-party, MIT: see its README.md


@pytest.fixture(scope="session")
def fixture_base():
    from harness.models import load_base

    return load_base(str(FIXTURE_MODEL))


@pytest.fixture(scope="session")
def stories_base():
    from harness.models import load_base

    return load_base(str(STORIES_MODEL))


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


def run_harness(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: int = 600
                ) -> subprocess.CompletedProcess:
    """Run `python -m harness.cli ARGS` as a user would, capturing its output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def score_stored(tmp_path: Path, suite: str | Path, rows: list[dict]) -> tuple[subprocess.CompletedProcess, dict]:
    """`harness score SUITE --completions` on ``rows`` (one JSON object per line), as a user
    scores stored outputs; the process and its results.json ({} when none was written)."""
    import json

    completions = tmp_path / "c.jsonl"
    completions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out"
    proc = run_harness("score", str(suite), "--completions", str(completions), "--out", str(out))
    results = out / "results.json"
    return proc, (json.loads(results.read_text()) if results.is_file() else {})


def make_random_adapter(model_path: Path, out: Path, seed: int = 0, scale: float = 1.0) -> Path:
    """An mlx-lm-format LoRA adapter with random (non-zero) weights, for plumbing tests."""
    import json

    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load

    model, _ = load(str(model_path))
    params = {"rank": 4, "scale": 10.0, "dropout": 0.0, "keys": ["self_attn.q_proj", "self_attn.v_proj"]}
    linear_to_lora_layers(model, 2, params)
    mx.random.seed(seed)
    weights = {k: mx.random.normal(v.shape) * scale for k, v in tree_flatten(model.trainable_parameters())
               if k.endswith(("lora_a", "lora_b"))}
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    (out / "adapter_config.json").write_text(json.dumps(
        {"fine_tune_type": "lora", "num_layers": 2, "lora_parameters": params}))
    return out


def few_positions_llama(out: Path, positions: int) -> Path:
    """The fixture model with config.json cut to ``positions`` (training and eval past the positions)."""
    shutil.copytree(FIXTURE_MODEL, out)
    config = json.loads((out / "config.json").read_text())
    config["max_position_embeddings"] = positions
    (out / "config.json").write_text(json.dumps(config))
    return out


def random_model(out: Path, module: str, config: dict) -> Path:
    """A randomly initialised mlx-lm ``module`` (llama, gpt2, ...) of ``config`` with the
    fixture's tokenizer files, saved as a model folder: small models with the shapes a test
    needs (few positions, a short vocabulary), no checkpoint needed."""
    import importlib

    import mlx.core as mx
    from mlx.utils import tree_flatten

    arch = importlib.import_module(f"mlx_lm.models.{module}")
    out.mkdir()
    for f in FIXTURE_MODEL.iterdir():
        if f.name not in ("model.safetensors", "config.json"):
            shutil.copy(f, out / f.name)
    mx.random.seed(0)
    model = arch.Model(arch.ModelArgs.from_dict(config))
    mx.save_safetensors(str(out / "model.safetensors"), dict(tree_flatten(model.parameters())),
                        metadata={"format": "mlx"})
    (out / "config.json").write_text(json.dumps(config))
    return out


def tiny_gpt2(out: Path, positions: int) -> Path:
    """A random 1-layer GPT-2 (a learned position table of ``positions`` rows) with the
    fixture's tokenizer: enough for mlx-lm to load it."""
    return random_model(out, "gpt2", dict(model_type="gpt2", n_ctx=positions, n_positions=positions, n_embd=16,
                                          n_head=2, n_layer=1, layer_norm_epsilon=1e-5, vocab_size=1536,
                                          bos_token_id=1, eos_token_id=2))
