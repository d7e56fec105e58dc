"""mlx-harness: evaluation and regression gates for MLX models and their LoRA adapters."""

__version__ = "0.1.0"
