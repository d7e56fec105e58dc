"""Latency suites as a pytest-benchmark JSON file (``harness eval --benchmark-json F``).

For users who track latency with pytest-benchmark: every suite with the ``latency``
scorer gives, per model, one benchmark per timing in seconds (``total_s``, ``ttft_s``)
whose rounds are the suite's items; rates and memory go in ``extra_info``. The file is
what ``pytest --benchmark-json`` writes (same machine and commit info, same statistics,
computed by pytest-benchmark itself), so ``pytest-benchmark compare A.json B.json`` reads
it. (``pytest --benchmark-compare`` loads it from ``.benchmarks/`` without error but compares
by test fullname, ``harness::<suite>::<model>::<timing>``, which no pytest test has.)
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from .errors import HarnessError

SECONDS = ("total_s", "ttft_s")
RATES = ("decode_tps", "prompt_tps", "peak_memory_gb")


def require_pytest_benchmark() -> None:
    try:
        import pytest_benchmark  # noqa: F401
    except ImportError:
        raise HarnessError("--benchmark-json needs pytest-benchmark, which is not installed",
                           field="--benchmark-json", hint="pip install pytest-benchmark") from None


def benchmarks_of(results: dict) -> list[dict]:
    from pytest_benchmark.stats import Stats

    out = []
    for suite in results.get("suites") or []:
        if "latency" not in (suite.get("scorers") or {}) or (suite["scorers"]["latency"] or {}).get("skipped"):
            continue
        for model, result in (suite.get("models") or {}).items():
            per_item = [((i.get("scores") or {}).get("latency") or {}).get("metrics") or {}
                        for i in result.get("items") or []]
            for timing in SECONDS:
                values = [m[timing] for m in per_item if m.get(timing) is not None]
                if not values:
                    continue
                stats = Stats()
                for v in values:
                    stats.update(float(v))
                extra = {"n_items": len(values), "model_fingerprint": result.get("fingerprint")}
                for rate in RATES:
                    rv = [m[rate] for m in per_item if m.get(rate) is not None]
                    if rv:
                        extra[f"{rate}_mean"] = sum(rv) / len(rv)
                name = f"{suite['name']}[{model}-{timing}]"
                out.append({"group": f"harness latency: {suite['name']}", "name": name,
                            "fullname": f"harness::{suite['name']}::{model}::{timing}",
                            "params": {"model": model, "timing": timing}, "param": f"{model}-{timing}",
                            "extra_info": extra, "options": {"timer": "harness engine (perf_counter)",
                                                             "disable_gc": False, "min_rounds": 1,
                                                             "max_time": None, "warmup": True},
                            "stats": stats.as_dict() | {"data": list(stats.data), "iterations": 1}})
    return out


def write_benchmark_json(results: dict, path: Path) -> int:
    """Write the file atomically; returns how many benchmarks it holds."""
    import pytest_benchmark
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info
    from pytest_benchmark.utils import get_commit_info

    from .atomic import write_text

    benches = benchmarks_of(results)
    doc = {"machine_info": pytest_benchmark_generate_machine_info(), "commit_info": get_commit_info(),
           "benchmarks": benches, "datetime": datetime.now(timezone.utc).isoformat(),
           "version": pytest_benchmark.__version__}
    write_text(path, json.dumps(doc, indent=2, default=str) + "\n")
    return len(benches)
