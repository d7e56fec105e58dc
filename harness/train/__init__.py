"""The harness's MLX LoRA trainer (``harness train``), one concept per module:

- :mod:`.config`: the ``TrainConfig`` dataclass, YAML and ``--key value`` overrides;
- :mod:`.data`: JSONL splits, format checked on every row, encoded with :mod:`harness.prompts`;
- :mod:`.batching`: length-bucketed batches and the exact loss mask;
- :mod:`.adapter`: LoRA layers and the adapter folder (mlx-lm's format + provenance);
- :mod:`.checkpoint`: checkpoints that resume exactly;
- :mod:`.log`: ``train_log.jsonl`` and progress lines;
- :mod:`.loop`: the training loop (single process or ``mlx.launch`` data-parallel);
- :mod:`.fuse`: an adapter merged into a copy of its base;
- :mod:`.lint`: training-data checks (``harness lint-data``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import TrainConfig, config_from_dict, load_config, parse_overrides
    from .loop import TrainingDiverged, TrainResult, train

# Names are resolved on first use (PEP 562), so reading the config alone (`harness eval`'s
# parser lists the config keys in `harness train --help`) does not import the training
# loop, MLX's optimizers and numpy: ~0.25 s of every `harness` start.
_WHERE = {"TrainConfig": "config", "config_from_dict": "config", "load_config": "config",
          "parse_overrides": "config", "TrainResult": "loop", "TrainingDiverged": "loop", "train": "loop"}

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "config_from_dict", "load_config",
           "parse_overrides", "train"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
