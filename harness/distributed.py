"""Evaluation across processes on MLX's distributed layer (``mlx.launch``).

Under ``mlx.launch -n N -- harness eval ...`` every rank loads the model and applies the
same adapters in turn. For each suite and model, rank 0 looks items up in its completion
cache and tells every rank which items to generate; the items are dealt out round-robin
(item j to rank j mod N, so long and short prompts spread evenly), each rank generates
its share, and the completions are gathered to every rank in item order. Rank 0 writes
the cache, scores, and writes the reports; the other ranks only generate.

Python objects travel as JSON bytes in an ``all_gather`` (padded to the longest), which
works on every backend ``mlx.launch`` offers (ring over TCP on one or several Macs, MPI,
JACCL).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def group() -> Any:
    """The process group (size 1 when not launched, or when MLX has no distributed backend)."""
    try:
        import mlx.core as mx

        return mx.distributed.init()
    except Exception:  # no mlx, or no backend in this build: one process
        return None


def rank_and_size() -> tuple[int, int]:
    g = group()
    return (g.rank(), g.size()) if g is not None else (0, 1)


def all_gather_json(obj: Any) -> list[Any]:
    """``obj`` from every rank, in rank order (JSON-serialisable values only)."""
    import mlx.core as mx
    import numpy as np

    g = group()
    if g is None or g.size() == 1:
        return [obj]
    data = json.dumps(obj, separators=(",", ":")).encode()
    sizes = mx.distributed.all_gather(mx.array([len(data)], dtype=mx.int32), group=g, stream=mx.cpu)
    sizes = sizes.tolist()
    longest = max(sizes)
    mine = np.frombuffer(data.ljust(longest, b" "), dtype=np.uint8)
    everyone = mx.distributed.all_gather(mx.array(mine)[None], group=g, stream=mx.cpu)
    rows = np.array(everyone)
    return [json.loads(rows[r, :sizes[r]].tobytes()) for r in range(g.size())]


def broadcast_json(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    return all_gather_json(obj)[0]


def shard(n_items: int, rank: int, size: int) -> list[int]:
    """The item positions this rank generates: round-robin, so prompt lengths spread evenly."""
    return list(range(rank, n_items, size))


def unshard(per_rank: list[list[Any]], n_items: int) -> list[Any]:
    """Per-rank results (each in its shard's order) back in item order."""
    size = len(per_rank)
    return [per_rank[j % size][j // size] for j in range(n_items)]
