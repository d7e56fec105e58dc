"""`harness doctor`: what the harness runs on (versions, device, BLAS, cache)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="show versions, MLX device, BLAS and cache location")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..blas import find_openblas
    from ..cache import default_cache_dir
    from ..runner import environment

    env = environment()
    rows = [("mlx-harness", env["harness"]), ("python", env["python"]), ("platform", env["platform"]),
            ("mlx", env.get("mlx")), ("mlx-lm", env.get("mlx-lm")), ("device", env.get("device"))]
    if sys.platform.startswith("linux"):
        rows.append(("blas", env.get("blas")))
        lib = find_openblas()
        rows.append(("openblas", lib or "not installed: apt-get install libopenblas0-pthread "
                                        "(about 6x faster training on CPU)"))
    rows.append(("cache", str(default_cache_dir())))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0
