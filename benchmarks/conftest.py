"""pytest-benchmark for the project's benchmarks (``nox -s bench``).

Each benchmark measures the harness with pytest-benchmark and its peer (mlx-lm) in the same
test, interleaved round by round (the peer runs in the untimed ``setup`` of each round), so
drift on a shared machine hits both. The ratios go into ``extra_info``; ``nox -s bench``
saves the JSON (``--benchmark-autosave``), and ``nox -s bench -- --benchmark-compare``
shows the drift against the last saved run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_*.py: shared workloads


class Race:
    def __init__(self, benchmark):
        self.benchmark = benchmark

    def __call__(self, harness, peer, rounds: int, args=None) -> dict:
        """Time ``harness`` (pytest-benchmark) and ``peer`` (own timer) alternately for ``rounds``.

        ``args()``, when given, makes fresh arguments for both per round (a new work folder).
        Returns {"harness_s", "peer_s", "peer_result", "harness_result"}: best times of each.
        """
        seen = {"peer": [], "harness": [], "peer_result": None, "harness_result": None}

        def setup():
            a = args() if args else ()
            t0 = time.perf_counter()
            seen["peer_result"] = peer(*a)
            seen["peer"].append(time.perf_counter() - t0)
            return a, {}

        def target(*a):
            t0 = time.perf_counter()
            seen["harness_result"] = harness(*a)
            seen["harness"].append(time.perf_counter() - t0)
            return seen["harness_result"]

        self.benchmark.pedantic(target, setup=setup, rounds=rounds, iterations=1)
        return {"harness_s": min(seen["harness"]), "peer_s": min(seen["peer"]),
                "peer_result": seen["peer_result"], "harness_result": seen["harness_result"]}

    def record(self, **info) -> None:
        self.benchmark.extra_info.update(info)
        print("  " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()))


@pytest.fixture
def race(benchmark):
    return Race(benchmark)
