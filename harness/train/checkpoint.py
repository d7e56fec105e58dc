"""Checkpoints that resume exactly: adapter weights, optimizer state, step, RNG, data position.

mlx-lm's ``--resume-adapter-file`` reloads the weights only: Adam's moments restart at
zero, the step count (and so the LR schedule) restarts, and the data order starts over.
Here a checkpoint holds everything the next step depends on:

- ``adapters.safetensors``: the LoRA weights;
- ``optimizer.safetensors``: the optimizer state, flattened (moments, step, lr);
- ``state.json``: step, data position (micro-batches consumed; the order is a function of
  seed and epoch), the loss/token/time sums of the open report window, and the identity of
  config and data, which must match to resume. The RNG needs no state of its own: it is
  reseeded from (seed, step) before every step.

Each checkpoint is written to its own folder, then ``checkpoints/latest.json`` is
replaced atomically to point at it, then older folders go. A kill at any moment leaves
the previous checkpoint intact and pointed to.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten

from ..atomic import write_bytes, write_json
from ..errors import HarnessError
from .adapter import safetensors_bytes

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"


@dataclass
class RunState:
    step: int = 0
    position: int = 0
    trained_tokens: int = 0
    window_loss: float = 0.0  # sum of token losses since the last report
    window_tokens: int = 0
    window_seconds: float = 0.0
    config_hash: str = ""
    data_hashes: dict = field(default_factory=dict)


def step_seed(seed: int, step: int) -> int:
    """The RNG seed of one step (dropout), so a resumed step draws what it would have."""
    return (seed * 1_000_003 + step) % (1 << 63)


def save_checkpoint(folder: Path, weights: dict[str, mx.array], optimizer_state: dict,
                    state: RunState) -> Path:
    root = folder / CHECKPOINTS
    name = f"step-{state.step:07d}"
    target = root / name
    write_bytes(target / "adapters.safetensors", safetensors_bytes(weights))
    opt = dict(tree_flatten(optimizer_state))
    write_bytes(target / "optimizer.safetensors", safetensors_bytes(opt))
    write_json(target / "state.json", asdict(state))
    write_json(root / LATEST, {"checkpoint": name, "step": state.step})
    for old in root.iterdir():
        if old.is_dir() and old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(folder: Path) -> Path | None:
    pointer = folder / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
    except (ValueError, KeyError, TypeError, OSError):
        raise HarnessError("checkpoint pointer is corrupt", path=pointer,
                           hint="restart training without --resume, or restore the folder") from None
    if not isinstance(name, str) or "/" in name or name.startswith("."):
        raise HarnessError(f"checkpoint pointer names {name!r}", path=pointer, field="checkpoint",
                           hint="restart training without --resume")
    return folder / CHECKPOINTS / name


def load_checkpoint(folder: Path) -> tuple[dict[str, mx.array], dict, RunState]:
    """(adapter weights, flat optimizer state, run state) of the latest checkpoint."""
    ckpt = latest_checkpoint(folder)
    if ckpt is None:
        if (folder / "adapters.safetensors").exists():  # mlx_lm.lora's, or copied without checkpoints/
            raise HarnessError("the folder holds an adapter but no harness checkpoint to resume from",
                               path=folder / CHECKPOINTS,
                               hint="train into another adapter_path (a new run will not overwrite it)")
        raise HarnessError("no checkpoint to resume from", path=folder / CHECKPOINTS,
                           hint="run without --resume to start training")
    try:
        weights = mx.load(str(ckpt / "adapters.safetensors"))
        optimizer_state = mx.load(str(ckpt / "optimizer.safetensors"))
        state = RunState(**json.loads((ckpt / "state.json").read_text(encoding="utf-8")))
    except (RuntimeError, ValueError, TypeError, OSError) as exc:  # truncated, missing, not JSON
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise HarnessError(f"checkpoint is corrupt: {first}", path=ckpt,
                           hint="restart training without --resume, or restore the folder") from None
    return weights, optimizer_state, state
