"""The scale benchmark under pytest-benchmark (``nox -s bench``): a ~26M-parameter llama,
whole `harness eval` processes against raw `mlx_lm.batch_generate` side by side.

Targets (read, not asserted: shared machines are noisy; see bench_scale.py): prefix-heavy
>= 5x batch_generate with >= 80% identical outputs, short prompts >= 0.95x, cached re-run
>= 20x, and the cost of each extra adapter against the base alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import measure, report  # noqa: E402


def test_scale_against_batch_generate(benchmark):
    benchmark.group = "scale"
    numbers: dict = {}
    benchmark.pedantic(lambda: numbers.update(measure(repeats=1)), rounds=1, iterations=1)
    p, s, c, a = numbers["prefix"], numbers["short"], numbers["cached"], numbers["adapters"]
    benchmark.extra_info.update({
        "parameters": numbers["parameters"],
        "prefix_vs_batch_generate": p["ratio"], "prefix_same_outputs": p["same_outputs"],
        "short_vs_batch_generate": s["ratio"], "short_same_outputs": s["same_outputs"],
        "short_slowdown": 1 / s["ratio"], "short_cpu_slowdown": 1 / s["cpu_ratio"],
        "cached_rerun_speedup": c["ratio"], "cached_rerun_cpu_speedup": c["cpu_ratio"],
        "cached_process_speedup": c["process_ratio"], "cached_process_cpu_speedup": c["process_cpu_ratio"],
        "extra_adapter_vs_base": a["per_extra_vs_base"], "extra_adapter_vs_base_cpu": a["per_extra_vs_base_cpu"],
    })
    print(report(numbers))
    assert p["same_outputs"] >= 0.8 and s["same_outputs"] >= 0.8  # equal work was compared
