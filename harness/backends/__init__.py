"""Model backends other than the local mlx-lm engine (an OpenAI-compatible endpoint)."""
