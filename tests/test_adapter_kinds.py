"""Every adapter kind mlx-lm's ``load_adapters`` reads (``lora``, ``dora``, ``full``) comes
off the base again: the next adapter and the base itself see the base's own weights.

mlx-lm's ``remove_lora_layers`` unwraps ``LoRALinear`` only, and a ``full`` adapter
replaces base weights in place; the eval's preflight puts every adapter on and takes it
off before the base generates, so either leak made the "base" outputs (and the cache
entries keyed by the base) those of a fine-tune.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import pytest
from mlx.utils import tree_flatten

from harness.models import adapter_applied, load_base

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "fixtures" / "model"


def write_adapter(folder: Path, kind: str) -> Path:
    """A small adapter of ``kind`` on the fixture model's last block, with non-zero updates."""
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load

    model, _ = load(str(MODEL))
    params = {"rank": 4, "scale": 10.0, "dropout": 0.0, "keys": ["self_attn.q_proj", "mlp.down_proj"]}
    model.freeze()
    if kind == "full":
        model.layers[-1].unfreeze()
    else:
        linear_to_lora_layers(model, 1, params, use_dora=kind == "dora")
    mx.random.seed(3)
    weights = {k: v + 0.05 * mx.random.normal(v.shape) for k, v in tree_flatten(model.trainable_parameters())}
    folder.mkdir(parents=True)
    mx.save_safetensors(str(folder / "adapters.safetensors"), weights)
    (folder / "adapter_config.json").write_text(json.dumps(
        {"fine_tune_type": kind, "num_layers": 1, "lora_parameters": params, "model": str(MODEL)}))
    return folder


@pytest.mark.parametrize("kind", ["dora", "full"])
def test_adapter_comes_off_the_base(tmp_path, kind):
    base = load_base(str(MODEL))
    x = mx.array([base.tokenizer.encode("The gateway's SLO is")])
    before = base.model(x)
    folder = write_adapter(tmp_path / kind, kind)
    with adapter_applied(base, kind, folder):
        with_adapter = base.model(x)
    assert mx.abs(with_adapter - before).max().item() > 1e-3  # the adapter does something
    assert mx.array_equal(base.model(x), before).item()  # and is gone afterwards
    with adapter_applied(base, kind, folder):  # a second time (eval's preflight, then its run)
        again = base.model(x)
    assert mx.allclose(again, with_adapter, atol=1e-6).item()
    assert mx.array_equal(base.model(x), before).item()
