"""Generation: the harness's eval path against mlx-lm (pytest-benchmark; see bench_generation.py).

Targets (read, not asserted: shared machines are noisy): harness / mlx_lm.generate loop
>= 5x tokens/s, harness / batch_generate >= 0.9x, uncached / cached time >= 20x.
"""

from __future__ import annotations

import pytest

from bench_generation import Workload


@pytest.fixture(scope="module")
def workload():
    w = Workload(n_prompts=64, max_tokens=32)
    w.raw_batch()  # warm-up: compile, allocate
    return w


def test_harness_vs_batch_generate(benchmark, race, workload):
    benchmark.group = "generation"
    r = race(workload.harness, workload.raw_batch, rounds=5)
    tps_h, tps_b = r["harness_result"] / r["harness_s"], r["peer_result"] / r["peer_s"]
    race.record(peer="mlx_lm.batch_generate", harness_tok_s=tps_h, peer_tok_s=tps_b,
                ratio=tps_h / tps_b, target=">= 0.90", meets_target=tps_h / tps_b >= 0.90)


def test_harness_vs_generate_loop(benchmark, race, workload):
    benchmark.group = "generation"
    r = race(workload.harness, workload.plain_loop, rounds=1)
    tps_h, tps_a = r["harness_result"] / r["harness_s"], r["peer_result"] / r["peer_s"]
    race.record(peer="mlx_lm.generate loop", harness_tok_s=tps_h, peer_tok_s=tps_a,
                ratio=tps_h / tps_a, target=">= 5", meets_target=tps_h / tps_a >= 5)


def test_cached_rerun_vs_uncached(benchmark, race, workload, tmp_path):
    from harness.cache import CompletionCache

    benchmark.group = "generation"
    cache = CompletionCache(tmp_path)
    workload.harness(cache)  # fill the cache
    try:
        r = race(lambda: workload.harness(cache), workload.harness, rounds=5)
    finally:
        cache.close()
    race.record(peer="harness uncached", cached_s=r["harness_s"], uncached_s=r["peer_s"],
                ratio=r["peer_s"] / r["harness_s"], target=">= 20", meets_target=r["peer_s"] / r["harness_s"] >= 20)
