"""LoRA layers on the base, and the adapter folder in mlx-lm's format plus provenance.

The layers are mlx-lm's (``linear_to_lora_layers``, ``LoRALinear``), so the saved
``adapters.safetensors`` (``...lora_a`` (in, r), ``...lora_b`` (r, out)) and
``adapter_config.json`` load with ``mlx_lm.load(base, adapter_path=...)`` unchanged. The
project's own fields (``base_fingerprint``, ``base_model``, ``prompt_format``,
``data_hashes``, ``harness_version``) let ``harness eval`` refuse a wrong base and use the
prompt format the adapter was trained with.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .. import __version__
from ..atomic import json_text, write_folder
from ..errors import HarnessError
from .config import TrainConfig

ADAPTER_WEIGHTS = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def lora_keys(model: nn.Module, num_layers: int, keys: list[str] | None) -> list[str]:
    """The explicit module paths (inside a block) that get LoRA; checks user-given ones."""
    blocks = model.layers[-num_layers:]
    linear = sorted({name for block in blocks for name, m in block.named_modules()
                     if isinstance(m, (nn.Linear, nn.QuantizedLinear)) or hasattr(m, "to_lora")})
    if keys is None:
        return linear
    unknown = [k for k in keys if k not in linear]
    if unknown:
        raise HarnessError(f"no linear layer {unknown[0]!r} in the model's blocks",
                           field="lora_parameters.keys", hint=f"available: {', '.join(linear)}")
    return list(keys)


def apply_lora(model: nn.Module, cfg: TrainConfig) -> dict:
    """Freeze the base, put LoRA on the last ``num_layers`` blocks; returns the
    ``lora_parameters`` and ``num_layers`` to record (keys written out explicitly)."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    depth = len(model.layers)
    # mlx-lm clamps silently. Its default (16) means "up to 16"; any other count the model
    # lacks (num_layers: 100 on a 2-block model) is a mistake worth stopping for.
    if cfg.num_layers > depth and cfg.num_layers != TrainConfig.num_layers:
        raise HarnessError(f"num_layers is {cfg.num_layers} but the model has {depth} blocks",
                           field="num_layers", hint=f"use -1 (all) or a count up to {depth}")
    num_layers = depth if cfg.num_layers == -1 else min(cfg.num_layers, depth)
    lp = cfg.lora_parameters
    params = {"rank": lp.rank, "scale": lp.scale, "dropout": lp.dropout,
              "keys": lora_keys(model, num_layers, lp.keys)}
    model.freeze()
    mx.random.seed(cfg.seed)  # lora_a's initial values
    linear_to_lora_layers(model, num_layers, params)
    return {"num_layers": num_layers, "lora_parameters": params}


def adapter_weights(model: nn.Module) -> dict[str, mx.array]:
    return dict(tree_flatten(model.trainable_parameters()))


def safetensors_bytes(arrays: dict[str, mx.array]) -> bytes:
    buf = io.BytesIO()
    mx.save_safetensors(buf, arrays)
    return buf.getvalue()


def adapter_config(cfg: TrainConfig, lora: dict, base: Any, data: dict, steps_done: int) -> dict:
    import mlx_lm

    return {
        "fine_tune_type": "lora",
        "num_layers": lora["num_layers"],
        "lora_parameters": lora["lora_parameters"],
        "model": base.path,
        "base_model": base.path,
        "base_fingerprint": base.fingerprint,
        "base_weights_fingerprint": base.weights_fingerprint,
        "prompt_format": data.get("prompt_format") or {"template": data["template"], "system": cfg.system},
        "data_format": data["format"],
        "mask_prompt": data["mask_prompt"],
        "data_hashes": data["hashes"],
        "steps": steps_done,
        "harness_version": __version__,
        "mlx_version": mx.__version__,
        "mlx_lm_version": mlx_lm.__version__,
        "train_config": cfg.identity() | {"steps": cfg.steps},
    }


def write_adapter(folder: Path, weights: dict[str, mx.array], config: dict) -> None:
    """Weights and config as one set (``write_folder``): a kill leaves the previous save's
    pair or this one, never new weights beside an old config, or weights with no config
    (which mlx-lm cannot load). The checkpoints and log in the folder are kept."""
    write_folder(folder, {ADAPTER_WEIGHTS: safetensors_bytes(weights), ADAPTER_CONFIG: json_text(config)})
