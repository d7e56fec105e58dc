"""From per-item scores to suite metrics with confidence intervals.

A scorer ``X`` gives metric ``X``: the pass rate with a Wilson interval where items pass
or fail, else the mean of its values with a seeded bootstrap interval. Each per-item
number in ``Score.metrics`` gives ``X.<key>`` (mean, bootstrap). A scorer's own
``aggregate`` adds suite-level metrics such as latency quantiles. The same is computed
per category, so a suite can track its categories apart.
"""

from __future__ import annotations

import math

from .scorers import Score, Scorer
from .stats import bootstrap_mean_ci, wilson

# How a metric's value and interval were computed (results.json `kind`; the schema's enum
# in schemas/results.schema.json must list exactly these, a test checks it).
KINDS = ("proportion", "mean", "pooled", "quantile", "max")


def higher_is_better(metric_name: str) -> bool:
    """Whether a larger value of this metric is better: THE one place a direction comes from.

    The scorer named by the metric's first part decides (``Scorer.higher_is_better``,
    from its ``lower_is_better`` keys). results.json records it per metric, and the
    reports, the gates and docs/scorers.md (checked by a test) all follow it. Plugin
    scorers (``mlx_harness.scorers`` entry points) decide for theirs; a metric of no
    known scorer is higher-is-better.
    """
    try:
        scorer, _ = _scorer_of(metric_name)
    except Exception:  # a broken plugin is reported where a suite names it, not here
        scorer = None
    return scorer.higher_is_better(metric_name) if scorer is not None else True


def _scorer_of(metric_name: str) -> tuple[type[Scorer] | None, bool]:
    """(the scorer class that defines the metric or None, whether it is a built-in): the
    built-in of the longest matching name, else an installed plugin scorer (which decides its
    own). Raises what a broken plugin raises."""
    from .scorers import REGISTRY

    for name in sorted(REGISTRY, key=len, reverse=True):  # longest scorer name first
        if metric_name == name or metric_name.startswith(name + "."):
            return REGISTRY[name], True
    from .scorers.plugins import load_plugin

    return load_plugin(metric_name.split(".", 1)[0]), False


def declared_direction(metric_name: str) -> bool | None:
    """The direction a scorer states for this metric, or None when nobody stated one: a
    plugin scorer that sets neither ``lower_is_better`` nor ``higher_is_better`` (then
    ``higher_is_better`` assumes higher, which is a guess: a toxicity share or a latency
    would pass as it grows). Built-in scorers state every direction."""
    try:
        plugin, built_in = _scorer_of(metric_name)
    except Exception:  # a broken plugin is reported where a suite names it
        return None
    if built_in:
        return plugin.higher_is_better(metric_name)
    if plugin is None:
        return True  # no scorer of that name: the default higher_is_better gives
    stated = any("lower_is_better" in vars(k) or "higher_is_better" in vars(k)
                 for k in plugin.__mro__ if k is not Scorer and issubclass(k, Scorer))
    return plugin.higher_is_better(metric_name) if stated else None


def in_unit_interval(metric_name: str) -> bool | None:
    """Whether the metric's per-item values lie in [0, 1] by its nature (a share, a pass
    rate: True) or not (seconds, tokens/s: False), as its scorer declares it
    (``Scorer.in_unit_interval``, from its ``unbounded`` keys): THE one place, read by
    ``harness.compare.continuous_interval`` and the runner's check of each score. None
    where nobody says: a plugin that leaves ``unbounded`` unset, a metric of no known
    scorer, a plugin that does not load (the comparison then decides on the values)."""
    try:
        scorer, _ = _scorer_of(metric_name)
    except Exception:  # a broken plugin is reported where a suite names it
        return None
    return scorer.in_unit_interval(metric_name) if scorer is not None else None


def metric(value: float | None, low: float | None, high: float | None, n: int, kind: str,
           higher_is_better: bool = True) -> dict:
    def clean(x):
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

    return {"value": clean(value), "ci_low": clean(low), "ci_high": clean(high), "n": int(n),
            "kind": kind, "higher_is_better": higher_is_better}


def proportion(passed: list[bool]) -> dict:
    k, n = sum(passed), len(passed)
    low, high = wilson(k, n) if n else (None, None)
    return metric(k / n if n else None, low, high, n, "proportion")


def mean(values: list[float], higher_is_better: bool = True) -> dict:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return metric(None, None, None, 0, "mean", higher_is_better)
    low, high = bootstrap_mean_ci(vals, seed=0)
    return metric(sum(vals) / len(vals), low, high, len(vals), "mean", higher_is_better)


def scorer_metrics(scorer: Scorer, scores: list[Score]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    verdicts = [s.passed for s in scores if s.passed is not None]
    if verdicts:
        out[scorer.name] = proportion(verdicts)
    elif any(s.value is not None for s in scores):
        out[scorer.name] = mean([s.value for s in scores])
    keys = sorted({k for s in scores for k in s.metrics})
    for key in keys:
        out[f"{scorer.name}.{key}"] = mean([s.metrics.get(key) for s in scores])
    out.update(scorer.aggregate(scores))
    for name, m in out.items():  # every direction from the one place
        m["higher_is_better"] = scorer.higher_is_better(name)
    return out


def suite_metrics(scorers: list[Scorer], scores: dict[str, list[Score]],
                  categories: list[str | None]) -> tuple[dict, dict]:
    """(metrics, per-category metrics) for one model on one suite."""
    metrics: dict[str, dict] = {}
    for scorer in scorers:
        if scorer.name in scores:
            metrics.update(scorer_metrics(scorer, scores[scorer.name]))
    by_category: dict[str, dict] = {}
    for cat in sorted({c for c in categories if c is not None}):
        idx = [i for i, c in enumerate(categories) if c == cat]
        cat_metrics: dict[str, dict] = {}
        for scorer in scorers:
            if scorer.name in scores:
                cat_metrics.update(scorer_metrics(scorer, [scores[scorer.name][i] for i in idx]))
        by_category[cat] = cat_metrics
    return metrics, by_category


def cluster_adjust(metrics: dict[str, dict], scores: dict[str, list[Score]],
                   clusters: list[str | None]) -> dict[str, dict]:
    """Cluster-robust intervals for a clustered suite (the suite's ``cluster:`` field).

    Items of one cluster (questions about one table) are not independent, so a pass rate's
    Wilson interval uses the effective count n / design effect (Rao & Scott 1992) and a
    mean's interval resamples whole clusters (BCa). Each adjusted metric gets
    ``design_effect``. Pooled, quantile and max metrics keep their intervals.
    """
    from .stats import design_effect, paired_bootstrap_diff_ci

    out = dict(metrics)
    for name, info in metrics.items():
        scorer, _, key = name.partition(".")
        per_item = scores.get(scorer)
        if per_item is None or info.get("value") is None or len(per_item) != len(clusters):
            continue
        if info.get("kind") == "proportion" and not key:
            pairs = [(1.0 if s.passed else 0.0, c) for s, c in zip(per_item, clusters) if s.passed is not None]
        elif info.get("kind") == "mean":
            raw = [(s.value if not key else s.metrics.get(key)) for s in per_item]
            pairs = [(float(v), c) for v, c in zip(raw, clusters)
                     if v is not None and not math.isnan(float(v))]
        else:
            continue
        if len(pairs) < 2:
            continue
        values = [v for v, _ in pairs]
        labels = [c if c is not None else f"item:{i}" for i, (_, c) in enumerate(pairs)]
        deff = design_effect(values, labels)
        adjusted = dict(info, design_effect=deff)
        if info["kind"] == "proportion":
            n = len(values)
            low, high = wilson(sum(values) / deff, n / deff)
        else:
            _, low, high = paired_bootstrap_diff_ci([0.0] * len(values), values, clusters=labels)
        adjusted["ci_low"] = None if math.isnan(low) else float(low)
        adjusted["ci_high"] = None if math.isnan(high) else float(high)
        out[name] = adjusted
    return out
