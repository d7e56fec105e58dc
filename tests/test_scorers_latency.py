"""latency: per-item timings from the generator's stats, p50/p95 with order-statistic
intervals, and the flags that make the runner measure live generation."""

from __future__ import annotations

import random

import pytest

from harness.metrics import scorer_metrics
from harness.scorers import REGISTRY, Item
from harness.scorers.latency import quantile_ci
from harness.case import Case

STATS = {"prompt_tokens": 40, "output_tokens": 16, "ttft_s": 0.05, "prompt_tps": 800.0,
         "decode_tps": 120.0, "total_s": 0.18, "peak_memory_gb": 0.3}


def item(stats: dict) -> Item:
    case = Case(id="l", index=0, category="short", record={}, prompt="p", target=None)
    return Item(case=case, output="x", finish_reason="stop", stats=stats)


def test_flags_make_the_runner_generate_live():
    cls = REGISTRY["latency"]
    assert cls.uses_cache is False and cls.needs_model is True
    assert {"latency", "ttft_s", "total_s", "peak_memory_gb"} <= cls.lower_is_better


def test_item_score_reads_the_timings():
    s = REGISTRY["latency"]({}).score(item(STATS))
    assert s.value == 0.18 and s.passed is None
    assert s.metrics == {k: STATS[k] for k in ("ttft_s", "prompt_tps", "decode_tps", "total_s", "peak_memory_gb")}
    assert "first token after 50 ms" in s.detail and "decode 120 tok/s over 16 tokens" in s.detail


def test_no_timings_is_no_value():
    s = REGISTRY["latency"]({}).score(item({"output_tokens": 3}))
    assert s.value is None and s.passed is None and "no timings" in s.detail


def test_aggregate_quantiles():
    scorer = REGISTRY["latency"]({})
    scores = [scorer.score(item({**STATS, "total_s": float(t), "decode_tps": 100.0 + t,
                                 "peak_memory_gb": t / 100}))
              for t in range(1, 101)]
    agg = scorer_metrics(scorer, scores)  # aggregates with their directions
    p50, p95 = agg["latency.total_s.p50"], agg["latency.total_s.p95"]
    assert p50["value"] == pytest.approx(50.5) and p95["value"] == pytest.approx(95.05)
    assert p50["kind"] == "quantile" and p50["higher_is_better"] is False and p50["n"] == 100
    assert p50["ci_low"] < 50.5 < p50["ci_high"]
    assert agg["latency.decode_tps.p50"]["higher_is_better"] is True
    assert agg["latency.peak_memory_gb.max"]["value"] == 1.0
    assert agg["latency.peak_memory_gb.max"]["higher_is_better"] is False
    assert agg["latency"]["higher_is_better"] is False and agg["latency.prompt_tps"]["higher_is_better"] is True
    assert {"latency.ttft_s.p50", "latency.prompt_tps.p95"} <= set(agg)


def test_quantile_interval_covers_and_says_when_it_cannot():
    rng = random.Random(1)
    hits = 0
    for _ in range(400):
        low, high = quantile_ci([rng.random() for _ in range(40)], 0.5)
        hits += low <= 0.5 <= high
    assert hits / 400 >= 0.93
    low, high = quantile_ci([float(i) for i in range(12)], 0.95)
    assert high is None and low is not None  # 12 items cannot bound a p95 from above
