"""`harness doctor`: what the harness runs on (versions, device, BLAS, cache)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="show versions, MLX device, BLAS and the cache's health",
                       description="Show versions, the MLX device, the BLAS in use and whether the completion "
                                   "cache is healthy; exits 1 when the cache is corrupt or read-only.")
    p.add_argument("--cache-dir", help="cache folder (default: user cache dir, or $HARNESS_CACHE_DIR)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..blas import find_openblas
    from ..cache import cache_size, check_cache, default_cache_dir, human_bytes
    from ..errors import printable
    from ..runner import environment

    env = environment()
    rows = [("mlx-harness", env["harness"]), ("python", env["python"]), ("platform", env["platform"]),
            ("mlx", env.get("mlx")), ("mlx-lm", env.get("mlx-lm")), ("device", env.get("device"))]
    if sys.platform.startswith("linux"):
        rows.append(("blas", env.get("blas")))
        lib = find_openblas()
        rows.append(("openblas", lib or "not installed: apt-get install libopenblas0-pthread "
                                        "(about 6x faster training on CPU)"))
    folder = getattr(args, "cache_dir", None) or default_cache_dir()
    healthy, cache_line = check_cache(folder)
    rows.append(("cache", cache_line))
    size, files = cache_size(folder)
    rows.append(("cache size", f"{human_bytes(size)} in {files} file(s)"
                               + ("; `harness cache prune --older-than 30d` trims it" if size else "")))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {printable(value)}")
    return 0 if healthy else 1
