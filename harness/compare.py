"""Paired comparisons of metrics between two models on the same items.

The statistics core: everything that compares one model with another goes through here:
the gates (adapter vs base, candidate vs approved baseline), the report's delta columns,
and ``harness.runs`` (``harness compare RUN_A RUN_B``, which pairs whole run files).

Per-item numbers come in *series*, keyed like metrics:

- ``X``       scorer X's verdict per item (1.0 pass / 0.0 fail), or its value when it
              has no pass/fail;
- ``X.key``   scorer X's per-item ``metrics[key]``;
- ``@field``  an item field measured by generation (``ttft_s``, ``decode_tps``, ...).

A metric resolves to a series and a statistic: ``X`` and ``X.key`` are means of their
series; a suffixed name like ``latency.ttft_s_p95`` is the 95th percentile of the
``latency.ttft_s`` series. Metrics that resolve are compared *paired* (items matched by
id): pass/fail metrics, and means whose every paired value is 0 or 1, by Tango's score
interval for paired proportions (with the flips and the exact McNemar p), other means by a
seeded paired BCa bootstrap (means of a metric in [0, 1] by its nature, a share its scorer
declares so, pooled token accuracy included: each bound the wider of it and Tango's interval
on the differences as scaled flips), quantiles by the wider of
its bounds and the expanded percentile bootstrap's (``continuous_interval`` chooses); items of one
cluster (a suite's ``cluster:`` field) count through the design effect or are resampled
together (see docs/ci-gating.md). Metrics that do not resolve (an
aggregate-only number) fall back to the two reported intervals (MOVER, Newcombe's
method of variance estimates recovery), which is unpaired and wider.

Both results.json model entries (items with ``scores``) and baseline model entries
(items with ``values``; see ``harness.baseline``) are read by ``model_view``.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .stats import (design_effect, mcnemar_exact, paired_bootstrap_diff_ci, quantile_bound_items,
                    scaled_tango_ci, statistic_fn, tango_paired_ci)

ITEM_FIELDS = ("ttft_s", "decode_tps", "prompt_tokens", "output_tokens")
WEIGHT = "#weight"  # series suffix: an item's weight in its scorer's pooled metrics (target tokens)
N_BOOT = 2000
SEED = 0
LEVEL = 0.95

_SUFFIX = re.compile(r"^(?P<series>.+?)[._](?P<stat>p\d{1,2}(?:\.\d+)?|median|mean)$")


@dataclass
class ModelView:
    """One model on one suite: its metrics and its per-item series."""

    metrics: dict[str, dict]
    series: dict[str, dict[str, float]] = field(default_factory=dict)  # series -> id -> value
    categories: dict[str, str | None] = field(default_factory=dict)  # id -> category
    outputs: dict[str, str] = field(default_factory=dict)  # id -> output digest
    clusters: dict[str, str] = field(default_factory=dict)  # id -> cluster label (suite `cluster:`)


def output_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def item_values(item: dict) -> dict[str, float]:
    """The series values of one results.json item (see the module docstring)."""
    out: dict[str, float] = {}
    for scorer, score in (item.get("scores") or {}).items():
        if score.get("passed") is not None:
            out[scorer] = 1.0 if score["passed"] else 0.0
        elif score.get("value") is not None:
            out[scorer] = float(score["value"])
        for key, value in (score.get("metrics") or {}).items():
            if value is not None:
                out[f"{scorer}.{key}"] = float(value)
        weight = (score.get("extra") or {}).get("target_tokens")
        if isinstance(weight, (int, float)) and not isinstance(weight, bool):
            out[f"{scorer}{WEIGHT}"] = float(weight)  # what a pooled metric weights the item by
    for name in ITEM_FIELDS:
        if item.get(name) is not None:
            out[f"@{name}"] = float(item[name])
    return out


def model_view(model: dict) -> ModelView:
    """A ModelView from a results.json or baseline model entry."""
    view = ModelView(metrics=dict(model.get("metrics") or {}))
    for item in model.get("items") or []:
        item_id = str(item["id"])
        values = item["values"] if "values" in item else item_values(item)
        for name, value in values.items():
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                view.series.setdefault(name, {})[item_id] = float(value)
        view.categories[item_id] = item.get("category")
        if item.get("cluster") is not None:
            view.clusters[item_id] = str(item["cluster"])
        if "output_sha256" in item:
            view.outputs[item_id] = item["output_sha256"]
        elif isinstance(item.get("output"), str):
            view.outputs[item_id] = output_digest(item["output"])
    return view


def resolve(metric: str, series: set[str] | dict) -> tuple[str, str] | None:
    """(series, statistic) behind a metric name, or None when it has no per-item series."""
    if metric in series:
        return metric, "mean"
    m = _SUFFIX.match(metric)
    if m:
        name, stat = m.group("series"), m.group("stat")
        stat = "median" if stat == "p50" else stat
        candidates = [name]
        if "." in name:
            candidates += [f"@{name.split('.', 1)[1]}", f"@{name.split('.', 1)[1]}_s"]
        for candidate in candidates:
            if candidate in series:
                return candidate, stat
    return None


def is_binary(view: ModelView, metric: str) -> bool:
    info = view.metrics.get(metric) or {}
    if info.get("kind") == "proportion":
        return True
    values = view.series.get(metric)
    return bool(values) and "." not in metric and all(v in (0.0, 1.0) for v in values.values()) \
        and info.get("kind") in (None, "proportion")


def higher_is_better(metric: str, *views: ModelView, default: bool | None = None) -> bool:
    """The direction a run recorded for the metric, else ``harness.metrics.higher_is_better``.

    ``paired_delta`` counts flips in it, never in a gate's own ``higher_is_better`` (allowed only
    where a plugin scorer states no direction): a run's comparisons are stored with it and read
    by reports and ``harness compare``, which know no policy. The gates read the gate's direction
    (``gates.evaluate_gates``' ``hib``, this function unless the gate sets one) and allow for a
    delta counted the other way (``_worst_case``, ``_critical_gate``)."""
    for view in views:
        info = view.metrics.get(metric)
        if info and "higher_is_better" in info:
            return bool(info["higher_is_better"])
    if default is not None:
        return default
    from .metrics import higher_is_better as defined

    return defined(metric)


def paired_delta(ref: ModelView, cand: ModelView, metric: str) -> dict | None:
    """Candidate minus reference for one metric, with an interval and the flips.

    Returns None when neither side can say anything about the metric. Keys:
    ``diff``, ``ci_low``, ``ci_high`` (candidate - reference), ``ref_value``,
    ``cand_value`` (on the paired items), ``n`` (paired items), ``method``, for
    pass/fail metrics ``flipped_down`` (the ids that got worse), ``flipped_up``,
    ``mcnemar_p`` (also for a mean whose every paired value is 0 or 1) and ``worse``: the
    change ``flipped_down`` names, 'pass→fail' on a pass rate, '1→0' on such a mean, '0→1'
    on any lower-is-better one (flipped_down always lists the items that got worse), and ``missing``: ids of
    the candidate's items that have a reference
    value but no value of their own (not paired).
    """
    names = set(ref.series) & set(cand.series)
    pooled = _pooled_series(ref, cand, metric)
    if pooled is not None:
        return pooled
    resolved = resolve(metric, names)
    if resolved is not None:
        series, stat = resolved
        a_map, b_map = ref.series[series], cand.series[series]
        ids = [i for i in a_map if i in b_map]
        if ids:
            a = [a_map[i] for i in ids]
            b = [b_map[i] for i in ids]
            clusters = _cluster_labels(ref, cand, ids)
            fn = statistic_fn(stat)
            zero_one = all(x in (0.0, 1.0) for x in a) and all(y in (0.0, 1.0) for y in b)
            binary = stat == "mean" and zero_one and (is_binary(ref, metric) or is_binary(cand, metric))
            # a mean whose every value is 0 or 1 on both sides is a paired difference of pass
            # rates: the BCa bootstrap passed a true drop equal to the margin 10.2% / 8.0% / 5.8%
            # of the time at 24 / 40 / 100 items (target 2.5%), Tango 1.5% / 1.5% / 2.3% (2,000
            # runs each; docs/ci-gating.md, "A mean of 0/1 values with flips both ways")
            zero_one_mean = (stat == "mean" and zero_one and not binary
                             and "mean" in {(v.metrics.get(metric) or {}).get("kind") for v in (ref, cand)})
            binary = binary or zero_one_mean
            # flips count in the metric's better direction: flipped_down names the items that got
            # worse (what junit, compare, the critical gate and the baseline read it as), 0→1 on a
            # lower-is-better mean (a loop, a forbidden word) or proportion (a plugin's leak rate,
            # whose pass→fail flips are fixes: listed as regressions, the new leaks as gains);
            # computed on 1 - value there, and the interval turned back
            lower_better = binary and not higher_is_better(metric, cand, ref)
            a_map, b_map = ((a_map, b_map) if not lower_better else
                            ({i: 1.0 - v for i, v in a_map.items()}, {i: 1.0 - v for i, v in b_map.items()}))
            deff = (_flip_design_effect([a_map[i] for i in ids], [b_map[i] for i in ids], clusters) if binary else
                    _design_effect(a, b, clusters) if stat == "mean" else 1.0)
            out: dict[str, Any] = {
                "ref_value": float(fn(_arr(a))), "cand_value": float(fn(_arr(b))),
                "n": len(ids), "statistic": stat, "series": series,
            }
            # items of the candidate's run the reference has a value for and the candidate has
            # none (its scorer said None): left out of the pairing, where a failure would hide
            missing = [i for i in a_map if i not in b_map and i in cand.categories]
            if missing:
                out["missing"] = missing
            if clusters is not None:
                out.update(clusters=len(set(clusters)), design_effect=deff, n_eff=len(ids) / deff)
            if binary:
                down = [i for i in ids if a_map[i] == 1.0 and b_map[i] == 0.0]
                up = [i for i in ids if a_map[i] == 0.0 and b_map[i] == 1.0]
                diff = (len(up) - len(down)) / len(ids)
                if not down and not up and _same_outputs(ref, cand, ids):
                    low = high = 0.0
                    method = f"identical outputs on all {len(ids)} paired items"
                else:
                    low, high = tango_paired_ci(len(down) / deff, len(up) / deff, len(ids) / deff, LEVEL)
                    method = "Tango score interval (paired)" + (
                        f", counts / design effect {deff:.2f}" if clusters is not None else "") + (
                        f"; nothing flipped: each of the {len(set(clusters))} clusters counts as one item"
                        if clusters is not None and not down and not up else
                        f"; nothing gained: each of the {len(set(clusters))} clusters counts as one item at "
                        "most, as with nothing flipped (a loss may not narrow the interval)"
                        if clusters is not None and not up else "")
                    if zero_one_mean:
                        method += "; every value 0 or 1: a mean of pass/fail values, Tango's paired score interval"
                # always written: a reader that took a missing key for pass→fail called a
                # lower-is-better metric's new leaks pass→fail when the key went astray
                out["worse"] = "0→1" if lower_better else ("1→0" if zero_one_mean else "pass→fail")
                if lower_better:
                    diff, low, high = 0.0 - diff, 0.0 - high, 0.0 - low  # 0.0 -: no -0.000 shown
                out.update(diff=diff, ci_low=low, ci_high=high, method=method, flipped_down=down,
                           flipped_up=up, mcnemar_p=mcnemar_exact(len(down), len(up)))
                return out
            interval = continuous_interval(stat, series, a, b)
            diff, low, high, method = _continuous_bounds(interval, stat, a, b, clusters, deff,
                                                         _same_outputs(ref, cand, ids))
            if stat != "mean":
                note = (_approximate_quantile(stat, len(set(clusters)), "clusters") if clusters is not None
                        else _approximate_quantile(stat, len(ids)))
                if note:
                    out["approximate"] = note
                    method += "; approximate: " + note
            out.update(diff=diff, ci_low=low, ci_high=high, method=method)
            return out
    return _mover(ref.metrics.get(metric), cand.metrics.get(metric))


_INTERVAL_NAMES = {"bca": "BCa", "wider": "BCa and expanded percentile (the wider bound)",
                   "bca_tango": "BCa and scaled Tango score (the wider bound)",
                   "bca_out_of_range": "BCa"}
OUT_OF_RANGE = ("values outside [0, 1] on a metric its scorer declares a share in [0, 1] (a scorer "
                "bug, or a file written by another version): Tango's interval for shares not used")


def continuous_interval(stat: str, series: str, a: list[float], b: list[float]) -> str:
    """Which interval a paired difference that is not a difference of pass rates gets: the
    one place that chooses it (keys of ``_INTERVAL_NAMES``; docs/ci-gating.md has the numbers).
    ``series`` names the per-item values (``keywords.fraction``, ``latency``, ``@ttft_s``),
    ``a`` and ``b`` the reference's and the candidate's.

    - a quantile: "wider", each bound the wider of BCa's and the expanded percentile
      bootstrap's (BCa alone missed a p95 difference 7.2% / 5.9% / 3.4% of the time at 24 /
      48 / 100 items, the wider one 2.8% / 1.5% / 0.8%; 4,000 runs each);
    - a mean of a metric whose values lie in [0, 1] by its nature (a pass rate, a keyword
      credit, a repetition rate: ``harness.metrics.in_unit_interval``, from the scorer's
      ``unbounded`` keys; all 0 or 1 goes to Tango before this): "bca_tango", each bound
      the wider of BCa's and Tango's score interval on the differences counted as flips of
      their mean square size (``scaled_tango_ci``): sparse half-credit changes passed a true
      drop equal to the margin 8.2% / 7.6% / 4.1% / 4.7% of the time at 24 / 40 / 64 / 100
      items with BCa, 1.3% / 2.3% / 1.8% / 2.3% so. A value outside [0, 1] there is a
      scorer bug (the runner refuses such a score): "bca_out_of_range", BCa with the
      method saying why, never Tango's interval in units the values do not have;
    - a mean its scorer declares unbounded (seconds, tokens/s, GB, NLL) and an item field
      (``@ttft_s``): "bca" whatever the values: a latency under a second is no share
      (it matched the t interval's level on normal differences);
    - a mean nobody declares (a plugin that leaves ``unbounded`` unset, no known scorer):
      decided on the values, "bca_tango" when all lie in [0, 1], else "bca": the default
      that catches a regression (``Scorer.in_unit_interval`` says why).
    """
    if stat != "mean":
        return "wider"
    in_range = all(0.0 <= v <= 1.0 for v in a) and all(0.0 <= v <= 1.0 for v in b)
    declared = False if series.startswith("@") else _declared_unit_interval(series)
    if declared is None:
        return "bca_tango" if in_range else "bca"
    if not declared:
        return "bca"
    return "bca_tango" if in_range else "bca_out_of_range"


def _declared_unit_interval(series: str) -> bool | None:
    from .metrics import in_unit_interval  # metrics imports the scorers; compare stays light

    return in_unit_interval(series)


def _continuous_bounds(interval: str, stat: str, a: list[float], b: list[float], clusters: list[str] | None,
                       deff: float, same_outputs: bool, of: str = "") -> tuple[float, float, float, str]:
    """(diff, low, high, method) of the paired difference b - a with the interval
    ``continuous_interval`` chose: the bootstrap, Tango's bound where it is the wider, and
    where every item changed by the same amount on a [0, 1] mean, Tango's no-flip interval.
    ``of`` says what the values are, in the method."""
    diff, low, high = paired_bootstrap_diff_ci(a, b, seed=SEED, n_boot=N_BOOT, level=LEVEL, stat=stat,
                                               clusters=clusters,
                                               method="wider" if interval == "wider" else "bca")
    method = (f"paired {_INTERVAL_NAMES[interval]} bootstrap ({N_BOOT} resamples of "
              f"{'clusters' if clusters is not None else 'items'}, seed {SEED}){of}")
    if interval == "bca_out_of_range":
        method += "; " + OUT_OF_RANGE
    if interval == "bca_tango" and low != high:
        # clusters: the flips' design effect, as for pass/fail metrics (no gain: each
        # cluster one item at most; a loss never cancels a gain)
        units = len(set(clusters)) if clusters is not None else len(a)
        t_low, t_high = scaled_tango_ci([y - x for x, y in zip(a, b)], units, LEVEL,
                                        _flip_design_effect(a, b, clusters))
        low, high = min(low, t_low), max(high, t_high)
    if interval == "bca_tango" and low == high and not same_outputs:
        # every item changed by the same amount (usually none changed): a bootstrap has
        # zero width, and 12 items of which none happened to drop passed a true drop of
        # 0.05 54% of the time; bounded in [0, 1], the data say what n items with no
        # flip say (Tango); only identical outputs are the reference (A/A)
        no_flip_low, no_flip_high = tango_paired_ci(0.0, 0.0, len(a) / deff, LEVEL)
        low, high = max(-1.0, diff + no_flip_low), min(1.0, diff + no_flip_high)
        method += "; no item changed differently from the others: Tango's interval for no flips"
    return diff, low, high, method


def _pooled_series(ref: ModelView, cand: ModelView, metric: str) -> dict | None:
    """The paired delta of a pooled metric (kind ``pooled``: token_accuracy, its nll).

    A pooled value is sum(w_i v_i) / sum(w_i) over items (w: target tokens, v: the item's
    own accuracy or mean NLL). With the same weights on both sides (same items, same
    tokenizer), the difference of the pooled values is exactly the mean difference of
    z_i = w_i v_i / mean(w), so the paired interval is the usual one on z, and the delta
    reports the pooled values the metric shows. Returns None where that does not hold
    (other weights per item, no weights recorded): the caller then pairs item values.
    """
    info = cand.metrics.get(metric) or ref.metrics.get(metric) or {}
    if info.get("kind") != "pooled":
        return None
    scorer = metric.split(".", 1)[0]
    weights_a, weights_b = ref.series.get(scorer + WEIGHT), cand.series.get(scorer + WEIGHT)
    a_map, b_map = ref.series.get(metric), cand.series.get(metric)
    if not (weights_a and weights_b and a_map and b_map):
        return None
    ids = [i for i in a_map if i in b_map and i in weights_a and i in weights_b]
    if not ids or any(weights_a[i] != weights_b[i] for i in ids):
        return None
    mean_w = sum(weights_a[i] for i in ids) / len(ids)
    if mean_w <= 0:
        return None
    a = [weights_a[i] * a_map[i] / mean_w for i in ids]
    b = [weights_a[i] * b_map[i] / mean_w for i in ids]
    clusters = _cluster_labels(ref, cand, ids)
    # chosen on the items' own values (an accuracy hits / tokens is a share: 3 of 4 tokens is
    # the half credit of a keywords share), the interval computed on the weighted ones
    interval = continuous_interval("mean", metric, [a_map[i] for i in ids], [b_map[i] for i in ids])
    diff, low, high, method = _continuous_bounds(interval, "mean", a, b, clusters, _design_effect(a, b, clusters),
                                                 _same_outputs(ref, cand, ids),
                                                 of=" of token-weighted item values (pooled over tokens)")
    return {"diff": diff, "ci_low": low, "ci_high": high, "ref_value": sum(a) / len(a),
            "cand_value": sum(b) / len(b), "n": len(ids), "statistic": "pooled", "series": metric,
            "method": method}


def _cluster_labels(ref: ModelView, cand: ModelView, ids: list[str]) -> list[str] | None:
    """Each paired item's cluster, None when neither side is clustered. The candidate's labels
    come first: it is the run of the suite as it stands now (a baseline approved before the
    suite declared `cluster:`, or declared it otherwise, still gets today's clusters)."""
    labels = cand.clusters or ref.clusters
    return [labels.get(i, f"item:{i}") for i in ids] if labels else None


def _design_effect(a: list[float], b: list[float], clusters: list[str] | None) -> float:
    """Design effect of the paired mean difference. When no item differs (or every item
    differs by the same amount), the differences cannot show how changes cluster, so every
    cluster counts as one item (n / clusters), or fewer when the two sides' own values
    cluster more than that (clusters of unequal size): the assumption that cannot pass a
    clustered regression unseen. (The reference's own
    values alone stood in before; they need not cluster as the changes do: at 10 clusters of
    8, intra-cluster correlation 0.3 in the drops, a no-flip run then counted about 80 items
    and the gate passed 8.8% of candidates whose true drop was the margin, 0% now;
    docs/ci-gating.md.)"""
    if clusters is None:
        return 1.0
    diffs = [y - x for x, y in zip(a, b)]
    if max(diffs) - min(diffs) > 1e-9 * max(1.0, max(abs(d) for d in diffs)):  # not all equal but for rounding
        return design_effect(diffs, clusters)
    own = [design_effect(values, clusters) for values in (a, b) if len(set(values)) > 1]
    return max([1.0, len(clusters) / len(set(clusters))] + own)


def _flip_design_effect(a: list[float], b: list[float], clusters: list[str] | None) -> float:
    """Design effect of a pass/fail paired difference: the larger of what the run's flips
    show and what its gains alone show (no gains: what no flip shows, each cluster one item),
    a cluster's gains and losses counted as two clusters so that they never cancel.

    Why: the gate must never pass a candidate for losing one more item, and a few losses in
    as many clusters cannot show that losses do not come together. The flips' own design
    effect did both: one loss in 100 items of 25 clusters read 1.0 (lower bound -0.054) where
    nothing flipped counted clusters (-0.137), so at a 0.10 margin the worse run passed; and
    at 30 clusters of 8 (drop probability Beta, mean 0.05 = the margin, intra-cluster
    correlation 0.5) runs with one to a few scattered losses passed 10.0% of the time, 0 now (2,000 runs).
    A loss added to a cluster holding gains cancelled one of them, read as less clustering,
    and raised the bound; counted apart it cannot (docs/ci-gating.md, "Clustered items")."""
    if clusters is None:
        return 1.0
    gains_only = [max(x, y) for x, y in zip(a, b)]  # every loss undone
    return max(_split_design_effect(a, b, clusters), _split_design_effect(a, gains_only, clusters))


def _split_design_effect(a: list[float], b: list[float], clusters: list[str]) -> float:
    diffs = [y - x for x, y in zip(a, b)]
    if not any(diffs):
        return _design_effect(a, b, clusters)  # nothing flipped: each cluster one item
    return design_effect(diffs, [(c, (d > 0) - (d < 0)) for c, d in zip(clusters, diffs)])


def _approximate_quantile(stat: str, units: int, unit: str = "items") -> str | None:
    """What to say when ``units`` items (or clusters) are too few for any distribution-free
    bound on the quantile ``stat``; None when they suffice. The bootstrap interval is then
    the only one there is, and at small n it is too narrow: the upper bound of a p95
    difference on 24 items (the latency suite's size) missed 2.8% of the time instead of 2.5%,
    even as the wider of BCa's and the expanded percentile bound (docs/ci-gating.md)."""
    q = 0.5 if stat == "median" else float(stat[1:]) / 100.0
    if not 0.0 < q < 1.0:  # p0 / p100: the minimum or maximum, no quantile bound to speak of
        return None
    need = quantile_bound_items(q, LEVEL)
    if units >= need:
        return None
    return (f"{stat} of {units} {unit}: order statistics bound a {stat} only from {need}, so this bootstrap "
            f"interval is approximate and may read too narrow (a p95 difference on 24 items missed on the "
            f"deciding side about 3% of the time, not 2.5%); gate the median, or run {need}+ {unit}")


def _same_outputs(ref: ModelView, cand: ModelView, ids: list[str]) -> bool:
    """Both sides have an output for every paired item and they are byte-identical."""
    return all(i in ref.outputs and i in cand.outputs and ref.outputs[i] == cand.outputs[i] for i in ids)


def _arr(values: list[float]):
    import numpy as np

    return np.asarray(values, dtype=float)


# A run-level number reported without an interval (a peak memory's max): its "interval" is
# the point itself, which shows no uncertainty and must not be read as a significant change.
POINT_ONLY = "point estimates only (no interval reported)"


def has_interval(delta: dict) -> bool:
    """Whether a delta's bounds are an interval, not the points themselves: its ``point_only``
    key (``_mover`` writes it); a delta stored before the key was written is read from its
    method's wording."""
    return not delta.get("point_only", delta.get("method") == POINT_ONLY)


def _mover(ref: dict | None, cand: dict | None) -> dict | None:
    """Unpaired interval of a difference from each side's own interval (MOVER)."""
    if not ref or not cand or ref.get("value") is None or cand.get("value") is None:
        return None
    r, c = float(ref["value"]), float(cand["value"])
    rl = r if ref.get("ci_low") is None else float(ref["ci_low"])
    rh = r if ref.get("ci_high") is None else float(ref["ci_high"])
    cl = c if cand.get("ci_low") is None else float(cand["ci_low"])
    ch = c if cand.get("ci_high") is None else float(cand["ci_high"])
    d = c - r
    low = d - math.sqrt((c - cl) ** 2 + (rh - r) ** 2)
    high = d + math.sqrt((ch - c) ** 2 + (r - rl) ** 2)
    exact = all(ref.get(k) is not None and cand.get(k) is not None for k in ("ci_low", "ci_high"))
    return {"diff": d, "ci_low": low, "ci_high": high, "ref_value": r, "cand_value": c,
            "n": min(int(ref.get("n") or 0), int(cand.get("n") or 0)), "statistic": "reported",
            "series": None,
            "method": "unpaired, from the reported intervals (MOVER)" if exact else POINT_ONLY,
            "point_only": not exact}


def suite_comparisons(suite_result: dict, baseline_suite: dict | None) -> dict:
    """Every metric of every model against base (adapters) and the baseline's same-named model.

    ``{model: {metric: {"vs_base": delta | None, "vs_baseline": delta | None}}}``,
    deltas as ``paired_delta`` returns them. Stored in results.json as the suite's
    ``comparisons`` so reports and summaries need not recompute them.
    """
    models = suite_result.get("models") or {}
    views = {name: model_view(m) for name, m in models.items()}
    base_view = views.get("base")
    base_models = (baseline_suite or {}).get("models") or {}
    baseline_views = {name: model_view(m) for name, m in base_models.items()}
    out: dict[str, dict] = {}
    for name, view in views.items():
        per_metric: dict[str, dict] = {}
        for metric in view.metrics:
            vs_base = paired_delta(base_view, view, metric) if base_view is not None and name != "base" else None
            ref = baseline_views.get(name)
            vs_baseline = paired_delta(ref, view, metric) if ref is not None else None
            per_metric[metric] = {"vs_base": vs_base, "vs_baseline": vs_baseline}
        out[name] = per_metric
    return out


def direction(delta: dict | None, hib: bool, points: bool = False) -> str:
    """'better' or 'worse' when the delta's interval excludes zero, else '' (no call).

    A point-only delta (``has_interval`` false) is no evidence of a change, so the reports leave
    it uncalled; ``points=True`` calls it on its bounds all the same, as the gates do (for two
    bare numbers, the point twice): ``harness compare --fail-on-regression`` then fails a peak
    memory that grew rather than pass one whose noise it cannot measure."""
    if not delta:
        return ""
    low, high = delta.get("ci_low"), delta.get("ci_high")
    if low is None or high is None or not (points or has_interval(delta)):
        return ""
    if (hib and high < 0) or (not hib and low > 0):
        return "worse"
    if (hib and low > 0) or (not hib and high < 0):
        return "better"
    return ""


_REVERSED = {"pass→fail": "fail→pass", "1→0": "0→1", "0→1": "1→0"}


def flip_change(delta: dict, worse: bool) -> str:
    """The change the items in a delta's ``flipped_down`` (``worse``) or ``flipped_up`` went
    through: its ``worse`` key ('pass→fail', '1→0' on a 0/1 mean, '0→1' where lower is better)
    or that turned round; 'got worse' / 'got better' for a delta without it (none
    ``paired_delta`` writes): no direction is assumed."""
    change = delta.get("worse")
    if change not in _REVERSED:
        return "got worse" if worse else "got better"
    return change if worse else _REVERSED[change]


def flip_label(changes: set[str] | list[str], worse: bool) -> str:
    """Words for flipped items, merged over several metrics in ``harness compare``'s per-model
    lists: 'pass→fail' / 'fail→pass' when that is what every one of them did, 'got worse (0→1)'
    when all went one other way (a leak rate's new leaks went 0→1, not pass→fail), else 'got
    worse' / 'got better'."""
    changes = set(changes)
    if len(changes) == 1 and next(iter(changes)) not in ("1→0", "0→1"):
        return next(iter(changes))  # pass→fail, fail→pass, or flip_change's words for no key
    word = "got worse" if worse else "got better"
    return f"{word} ({next(iter(changes))})" if len(changes) == 1 else word


def fmt(x: float | None, digits: int = 3, signed: bool = False) -> str:
    """``digits`` decimals; a non-zero value those decimals would show as 0 gets three
    significant digits instead (a memory delta of 0.0004 GB read "-0.000 [-0.000, -0.000]",
    coloured as a change: a number that contradicted its colour)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    sign = "+" if signed else ""
    if x == 0:
        x = 0.0  # never "-0.000"
    if x and math.isfinite(x) and abs(x) < 0.5 * 10 ** -digits:
        decimals = 2 - math.floor(math.log10(abs(x)))
        return f"{x:{sign}.{decimals}f}" if decimals <= 12 else f"{x:{sign}.2e}"
    return f"{x:{sign}.{digits}f}"
