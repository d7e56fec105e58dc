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

from .config import TrainConfig, config_from_dict, load_config, parse_overrides
from .loop import TrainingDiverged, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "config_from_dict", "load_config",
           "parse_overrides", "train"]
