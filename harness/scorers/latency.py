"""Latency and memory of live generation: time to first token, tokens/s, seconds, peak memory.

It reads the timings the generator records per item (``Item.stats``), so it needs a
model run: stored or cached completions carry no honest timings (``needs_model`` and
``uses_cache = False`` make the runner generate afresh, after a warm-up, and skip this
scorer for ``harness score``). Suites that use it should decode one prompt at a time
(``generation: {batch_size: 1}``), or every item's numbers are the batch's.

Per item: ``ttft_s``, ``prompt_tps``, ``decode_tps``, ``total_s`` (the item's value) and
``peak_memory_gb``. Per suite (``aggregate``): the p50 and p95 of each timing, with a
distribution-free 95% interval from order statistics (``None`` where the suite has too
few items to bound that quantile), and the maximum peak memory. Absolute times from a
shared machine are noise; compare models measured side by side in one run.
"""

from __future__ import annotations

import math

from ..stats import quantile
from .base import Item, Score, Scorer

TIMINGS = ("ttft_s", "prompt_tps", "decode_tps", "total_s")


def _binom_cdf(n: int, p: float) -> list[float]:
    """[P(B <= k) for k in 0..n], B ~ Binomial(n, p), in log space (no overflow for large n)."""
    cdf, total = [], 0.0
    for k in range(n + 1):
        log_pmf = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                   + k * math.log(p) + (n - k) * math.log1p(-p))
        total += math.exp(log_pmf)
        cdf.append(min(total, 1.0))
    return cdf


def quantile_ci(values: list[float], q: float, level: float = 0.95) -> tuple[float | None, float | None]:
    """Order-statistic confidence interval for the q-quantile (0 < q < 1; no distribution assumed).

    [x_(l), x_(u)] covers the quantile with probability P(l <= B < u), B ~ Binomial(n, q);
    l and u are the tightest ranks leaving at most (1 - level)/2 on each side. A bound
    that no rank can give (too few items) is None.
    """
    xs = sorted(values)
    n = len(xs)
    cdf = _binom_cdf(n, q)
    tail = (1 - level) / 2
    # Largest rank l with P(B <= l - 1) <= tail; smallest rank u with P(B >= u) <= tail.
    low = next((xs[l - 1] for l in range(n, 0, -1) if cdf[l - 1] <= tail), None)
    high = next((xs[u - 1] for u in range(1, n + 1) if 1 - cdf[u - 1] <= tail), None)
    return low, high


class Latency(Scorer):
    name = "latency"
    version = "1"
    needs_model = True
    model_needs = ("the local engine's own timings of each item (time to first token, prompt and decode "
                   "tokens/s) and its peak memory")
    uses_cache = False
    lower_is_better = frozenset({"latency", "ttft_s", "total_s", "peak_memory_gb"})
    metric_keys = frozenset({*TIMINGS, "peak_memory_gb", "peak_memory_gb.max",
                             *(f"{t}.{q}" for t in TIMINGS for q in ("p50", "p95"))})
    unbounded = frozenset({"latency", *metric_keys})  # seconds, tokens/s, GB: none is a share

    @classmethod
    def higher_is_better(cls, metric: str) -> bool:
        """``latency.ttft_s.p95`` and ``latency.peak_memory_gb.max`` go the way of their timing."""
        for suffix in (".p50", ".p95", ".max"):
            if metric.endswith(suffix):
                metric = metric[: -len(suffix)]
        return super().higher_is_better(metric)

    def score(self, item: Item) -> Score:
        s = item.stats
        metrics = {k: float(s[k]) for k in TIMINGS + ("peak_memory_gb",) if s.get(k) is not None}
        if "total_s" not in metrics:
            return Score(None, None, "no timings recorded for this item (not a live generation)")
        parts = [f"{metrics['total_s']:.3f} s end to end"]
        if "ttft_s" in metrics:
            parts.append(f"first token after {metrics['ttft_s'] * 1000:.0f} ms")
        if "prompt_tps" in metrics:
            parts.append(f"prompt {metrics['prompt_tps']:.0f} tok/s over {s.get('prompt_tokens')} tokens")
        if "decode_tps" in metrics:
            parts.append(f"decode {metrics['decode_tps']:.0f} tok/s over {s.get('output_tokens')} tokens")
        if "peak_memory_gb" in metrics:
            parts.append(f"peak memory {metrics['peak_memory_gb']:.2f} GB")
        return Score(metrics["total_s"], None, ", ".join(parts), metrics=metrics)

    def aggregate(self, scores: list[Score]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for key in TIMINGS:
            values = [s.metrics[key] for s in scores if key in s.metrics]
            if not values:
                continue
            for q in (0.5, 0.95):
                low, high = quantile_ci(values, q)
                out[f"{self.name}.{key}.p{round(q * 100)}"] = {
                    "value": quantile(values, q), "ci_low": low, "ci_high": high, "n": len(values),
                    "kind": "quantile"}
        memory = [s.metrics["peak_memory_gb"] for s in scores if "peak_memory_gb" in s.metrics]
        if memory:
            out[f"{self.name}.peak_memory_gb.max"] = {
                "value": max(memory), "ci_low": None, "ci_high": None, "n": len(memory),
                "kind": "max"}
        return out
