"""Sampled suites: ``generation.samples: k`` (temperature > 0) draws k completions per item.

Each draw is its own cache entry (the key has the seed and the sample index). Per item,
the k scores of a scorer combine into one (``combine``): a pass/fail scorer's value is the
share of draws that passed, and its per-item metrics add the unbiased ``pass@k`` and
``pass^k`` estimators (Chen et al. 2021; Yao et al. 2024); the within-item variance is in
the item's ``extra`` and, averaged, in the suite metric (``within_item_var``).
The suite metric ``X`` is the mean over items of those shares; its interval treats an
item's k draws as one cluster (Wilson on n/deff, the design effect from the between- and
within-item variance), so k draws of one item never count as k independent items.
Comparisons and gates use the per-item means (paired BCa bootstrap over items, which
carries the within-item variance; see docs/ci-gating.md).
"""

from __future__ import annotations

import math

from .scorers import Score
from .stats import design_effect, wilson


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased P(at least one of k draws passes) from n draws with c passes."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased P(all k draws pass) (pass^k) from n draws with c passes."""
    return math.comb(c, k) / math.comb(n, k) if c >= k else 0.0


def combine(scores: list[Score]) -> Score:
    """One item's k scores from one scorer as one score (see the module docstring)."""
    k = len(scores)
    metric_keys = sorted({key for s in scores for key in s.metrics})
    metrics: dict[str, float] = {}
    for key in metric_keys:
        vals = [float(s.metrics[key]) for s in scores if s.metrics.get(key) is not None]
        vals = [v for v in vals if not math.isnan(v)]
        if vals:
            metrics[key] = sum(vals) / len(vals)
    verdicts = [s.passed for s in scores if s.passed is not None]
    if verdicts and len(verdicts) == k:
        c = sum(1 for v in verdicts if v)
        share = c / k
        metrics[f"pass@{k}"] = pass_at_k(k, c, k)
        metrics[f"pass^{k}"] = pass_hat_k(k, c, k)
        within = share * (1 - share) * k / (k - 1) if k > 1 else 0.0  # unbiased, per item
        return Score(value=share, passed=None, detail=f"{c} of {k} samples passed", metrics=metrics,
                     extra={"samples": [bool(v) for v in verdicts], "within_item_var": within})
    values = [float(s.value) for s in scores if s.value is not None and not math.isnan(float(s.value))]
    value = sum(values) / len(values) if values else None
    return Score(value=value, passed=None, detail=f"mean of {len(values)} of {k} samples", metrics=metrics)


def sampled_proportion(verdicts: list[list[bool]]) -> dict:
    """The pass rate over items x draws, its Wilson interval on n / deff with each item's
    draws as one cluster (results.json metric, kind ``proportion``)."""
    from .metrics import metric

    flat = [1.0 if v else 0.0 for row in verdicts for v in row]
    labels = [i for i, row in enumerate(verdicts) for _ in row]
    n = len(flat)
    if not n:
        return metric(None, None, None, 0, "proportion")
    deff = design_effect(flat, labels)
    low, high = wilson(sum(flat) / deff, n / deff)
    # the mean of per-item shares (equal k: the pooled rate)
    value = sum(sum(1.0 for v in row if v) / len(row) for row in verdicts) / len(verdicts)
    out = metric(value, low, high, len(verdicts), "proportion")
    k = len(verdicts[0])
    within = [sum(row) / k * (1 - sum(row) / k) * k / (k - 1) for row in verdicts] if k > 1 else [0.0]
    # the mean within-item variance of one draw; an item mean's share of it is / k
    out.update(samples=k, design_effect=deff, within_item_var=sum(within) / len(within))
    return out
