"""Statistics for metrics and gates, standard library + numpy only (no scipy).

Public functions
----------------
wilson(k, n, z=1.96) -> (low, high)
    Wilson score interval for a proportion k/n.
bootstrap_mean_ci(values, seed=0, n_boot=2000, level=0.95) -> (low, high)
    Seeded percentile bootstrap interval of a mean.
mcnemar_exact(b, c) -> p
    Exact two-sided McNemar test on the discordant counts b (pass->fail) and
    c (fail->pass): a two-sided binomial test of min(b, c) with p = 0.5.
binom_test_two_sided(k, n, p=0.5) -> p
    Exact two-sided binomial test (R's ``binom.test`` convention).
paired_bootstrap_diff_ci(a, b, seed=0, n_boot=2000, level=0.95, stat="mean", clusters=None)
    Seeded paired BCa bootstrap of stat(b) - stat(a) over items (or clusters)
    resampled jointly: the interval for continuous metrics (method="wider", each
    bound the wider of BCa and the expanded percentile, for quantiles).
tango_paired_ci(down, up, n, level=0.95) -> (low, high)
    Tango's score interval for a paired difference of pass rates: the interval for
    pass/fail metrics (holds its level when few items flip).
scaled_tango_ci(diffs, units, level=0.95, deff=1.0) -> (low, high)
    Tango's interval on paired differences that are not all -1/0/1 (half credit), the
    flips counted in units of their mean square size; the bound a [0, 1] mean's BCa
    interval is widened to.
design_effect(diffs, clusters) -> float
    Clustered over independent variance of a mean difference (>= 1).
items_needed(margin, discordance, level=0.95, power=0.8) -> int
smallest_margin(n, discordance, level=0.95, power=0.8) -> float
expected_discordance(pass_rate) -> float
power_warning(n, margin, pass_rate, level=0.95, power=0.8) -> str | None
    Sample size for a paired non-inferiority gate on a pass rate, and the
    warning when a suite has too few items to show its margin.
quantile(values, q) -> float
    Linear-interpolation quantile (numpy's default), NaN for empty input.
quantile_bound_items(q, level=0.95) -> int
    Fewest items whose order statistics bound the q-quantile on both sides at ``level``
    (no distribution assumed): 72 for a p95, 6 for a median.
"""

from __future__ import annotations

import math
import sys
from functools import lru_cache
from statistics import NormalDist
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "wilson",
    "bootstrap_mean_ci",
    "binom_test_two_sided",
    "mcnemar_exact",
    "paired_bootstrap_diff_ci",
    "tango_paired_ci",
    "scaled_tango_ci",
    "design_effect",
    "items_needed",
    "smallest_margin",
    "expected_discordance",
    "power_warning",
    "quantile",
    "quantile_bound_items",
    "statistic_fn",
    "z_for_level",
]


def z_for_level(level: float = 0.95) -> float:
    """Two-sided normal critical value for a confidence level (0.95 -> 1.95996)."""
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for k successes out of n trials.

    Returns (0.0, 1.0) when n == 0 (nothing is known). Bounds are clamped to
    [0, 1]; at k == 0 the low bound is exactly 0 and at k == n the high bound is 1.
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"wilson: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return (low, high)


def _clean(values: Iterable[float | None]) -> np.ndarray:
    arr = np.asarray([float(v) for v in values if v is not None], dtype=float)
    return arr[~np.isnan(arr)] if arr.size else arr


def bootstrap_mean_ci(
    values: Sequence[float],
    seed: int = 0,
    n_boot: int = 2000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, deterministic for a given seed.

    None/NaN values are dropped. Empty input gives (nan, nan); a single value
    (or constant values) gives a zero-width interval at that value.
    """
    arr = _clean(values)
    n = arr.size
    if n == 0:
        return (math.nan, math.nan)
    if n == 1 or np.all(arr == arr[0]):
        m = float(arr.mean())
        return (m, m)
    means = arr[_resample_indices(n, n_boot, seed)].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(low), float(high))


@lru_cache(maxsize=4)
def _resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap resamples (n_boot rows of n item indices), shared by every interval over
    n items with this seed: the same seed gives the same resamples, and a suite's many
    metrics do not each pay for drawing them."""
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n), dtype=np.int32)
    idx.setflags(write=False)
    return idx


def binom_test_two_sided(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial test p-value (same convention as R's binom.test).

    Sums the probabilities of all outcomes no more likely than the observed
    one (with a small relative tolerance, as R does).
    """
    if n == 0:
        return 1.0
    if not 0 <= k <= n:
        raise ValueError(f"binom test: need 0 <= k <= n, got k={k}, n={n}")
    pmf = [math.comb(n, i) * (p ** i) * ((1 - p) ** (n - i)) for i in range(n + 1)]
    observed = pmf[k]
    tol = 1.0 + 1e-7
    total = sum(x for x in pmf if x <= observed * tol)
    return min(1.0, total)


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from discordant pair counts.

    ``b`` = pairs where the first condition passed and the second failed,
    ``c`` = the reverse. Under H0 the discordant pairs split 50/50, so the test
    is a two-sided binomial test of b out of b + c with p = 0.5 (equal to R's
    ``mcnemar.exact`` / ``binom.test(b, b + c)``). No discordant pairs -> 1.0.
    """
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    # Symmetric binomial: p = 2 * P(X <= k), capped at 1.
    tail = sum(math.comb(n, i) for i in range(k + 1)) / (2 ** n)
    return min(1.0, 2.0 * tail)


# "wider": each bound the wider of BCa's and the expanded percentile interval's (quantiles)
BOOTSTRAP_METHODS = ("bca", "percentile", "wider")


@np.errstate(over="ignore", invalid="ignore")  # values near 1e308 overflow: checked below, no warning
def paired_bootstrap_diff_ci(
    a: Sequence[float],
    b: Sequence[float],
    seed: int = 0,
    n_boot: int = 2000,
    level: float = 0.95,
    stat: str | Callable[[np.ndarray], float] = "mean",
    clusters: Sequence[Any] | None = None,
    method: str = "bca",
) -> tuple[float, float, float]:
    """Paired bootstrap interval of ``stat(b) - stat(a)`` (b is the candidate, a the reference).

    ``a`` and ``b`` are aligned per item (same length, same order); item pairs
    are resampled jointly so correlation between the two conditions is kept.
    Pairs where either value is None/NaN are dropped. ``stat`` is "mean",
    "median", a quantile like "p90"/"p95"/"p99", or a callable on a 1-D array.
    ``clusters`` (one label per item) resamples whole clusters instead of items
    (items of a cluster are not independent). ``method``: "bca" (bias-corrected and
    accelerated, Efron 1987; the default: it holds its level where the percentile
    interval is too narrow, see docs/ci-gating.md), "percentile", or "wider" (each bound
    the wider of BCa's and the expanded percentile one's: what quantile differences use,
    where the jackknife behind BCa's acceleration is unreliable: the p95 difference of 24
    items missed 7.2% on the upper side with BCa, 2.8% with the wider bound).
    Returns (point_estimate, low, high); all NaN for no usable pairs.
    """
    if len(a) != len(b):
        raise ValueError(f"paired bootstrap: lengths differ ({len(a)} vs {len(b)})")
    if clusters is not None and len(clusters) != len(a):
        raise ValueError(f"paired bootstrap: {len(clusters)} cluster labels for {len(a)} items")
    if method not in BOOTSTRAP_METHODS:
        raise ValueError(f"unknown bootstrap method {method!r} (use bca, percentile or wider)")
    keep = [i for i, (x, y) in enumerate(zip(a, b))
            if x is not None and y is not None and not math.isnan(float(x)) and not math.isnan(float(y))]
    if not keep:
        return (math.nan, math.nan, math.nan)
    arr = np.asarray([(float(a[i]), float(b[i])) for i in keep], dtype=float)
    fn = statistic_fn(stat)
    point = float(fn(arr[:, 1]) - fn(arr[:, 0]))
    n = arr.shape[0]
    d = arr[:, 1] - arr[:, 0]
    constant_diff = bool(np.all(d == d[0]))
    if n == 1 or (stat == "mean" and constant_diff):
        return (point, point, point)
    groups = _groups([clusters[i] for i in keep] if clusters is not None else None, n)
    n_groups = int(groups.max()) + 1
    if n_groups == 1:  # one cluster: nothing to resample
        return (point, math.nan, math.nan)
    weights = _resample_counts(n_groups, n_boot, seed)  # n_boot x clusters
    if stat == "mean":  # mean(b) - mean(a) = mean(b - a)
        sums = np.bincount(groups, weights=d, minlength=n_groups)
        sizes = np.bincount(groups, minlength=n_groups).astype(float)
        boot = (weights @ sums) / (weights @ sizes)
        jack = (sums.sum() - sums) / (sizes.sum() - sizes)
    elif isinstance(stat, str):
        q = _quantile_of(stat)
        item_w = weights[:, groups]
        boot = _weighted_quantiles(arr[:, 1], item_w, q) - _weighted_quantiles(arr[:, 0], item_w, q)
        jack = np.array([fn(arr[groups != g, 1]) - fn(arr[groups != g, 0]) for g in range(n_groups)])
    else:
        boot = np.empty(n_boot)
        for r in range(n_boot):
            rep = np.repeat(np.arange(n), weights[r, groups].astype(int))
            boot[r] = fn(arr[rep, 1]) - fn(arr[rep, 0])
        jack = np.array([fn(arr[groups != g, 1]) - fn(arr[groups != g, 0]) for g in range(n_groups)])
    alpha = (1.0 - level) / 2.0
    finite = bool(np.all(np.isfinite(boot)) and np.all(np.isfinite(jack)))
    if not finite:  # values near the float limit (1e308) overflowed: no interval, not a crash
        return (point, math.nan, math.nan)
    if method == "percentile":
        low, high = np.quantile(boot, [alpha, 1.0 - alpha])
        return (point, float(low), float(high))
    low, high = _bca_bounds(boot, jack, point, alpha, n_groups)
    if method == "wider":  # against the expanded percentile interval (Hesterberg 2015), as BCa's tails
        wide = _expanded_tail(alpha, n_groups)
        p_low, p_high = np.quantile(boot, [wide, 1.0 - wide])
        return (point, min(low, float(p_low)), max(high, float(p_high)))
    return (point, low, high)


def _groups(clusters: Sequence[Any] | None, n: int) -> np.ndarray:
    """Cluster labels as 0..G-1 in order of first appearance (None: every item its own)."""
    if clusters is None:
        return np.arange(n)
    codes: dict[Any, int] = {}
    return np.asarray([codes.setdefault(c, len(codes)) for c in clusters], dtype=np.intp)


@lru_cache(maxsize=2)
def _resample_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """How often each of n units is drawn in each of n_boot bootstrap resamples (float, for
    products): the same seed gives the same resamples, and a suite's many metrics do not
    each pay for drawing them."""
    idx = _resample_indices(n, n_boot, seed)
    flat = (idx + (np.arange(n_boot, dtype=np.int64) * n)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(float)
    counts.setflags(write=False)
    return counts


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """Per row of integer ``weights``, the linear-interpolation quantile q of ``values``
    repeated that many times (numpy's default quantile of the resample)."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    cum = np.cumsum(weights[:, order], axis=1)
    total = cum[:, -1]
    h = q * (total - 1.0)
    lo = np.floor(h)
    frac = h - lo
    # the expanded sample's element k is v[j] for the first j with cum[j] > k
    j_lo = np.minimum((cum <= lo[:, None]).sum(axis=1), v.size - 1)
    j_hi = np.minimum((cum <= (lo + 1.0)[:, None]).sum(axis=1), v.size - 1)
    return v[j_lo] + frac * (v[j_hi] - v[j_lo])


def t_quantile(p: float, df: float) -> float:
    """Student t quantile by the Cornish-Fisher expansion of Abramowitz & Stegun 26.7.5
    (error below 1e-4 from 5 degrees of freedom; the normal quantile as df grows)."""
    z = NormalDist().inv_cdf(p)
    if df <= 0 or math.isinf(df):
        return z
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3 + g4 / df ** 4


def _expanded_tail(alpha: float, units: int) -> float:
    """The tail probability whose normal quantile is sqrt(n/(n-1)) t_{alpha, n-1}: the
    percentile bootstrap's small-sample narrowness undone (Hesterberg 2015, "expanded
    percentile"): without it a 95% interval over 40 items covers like a 93.5% one."""
    if units < 3:
        return alpha
    return NormalDist().cdf(math.sqrt(units / (units - 1)) * t_quantile(alpha, units - 1))


def _bca_bounds(boot: np.ndarray, jack: np.ndarray, point: float, alpha: float,
                units: int) -> tuple[float, float]:
    """BCa bounds (Efron 1987; Efron & Tibshirani 1993, ch. 14) from bootstrap replicates and
    leave-one-(cluster-)out jackknife values, with the tails expanded for ``units``
    resampled units (items, or clusters)."""
    nd = NormalDist()
    alpha = _expanded_tail(alpha, units)
    b = boot.size
    share = (np.count_nonzero(boot < point) + 0.5 * np.count_nonzero(boot == point)) / b
    share = min(max(share, 0.5 / b), 1.0 - 0.5 / b)
    z0 = nd.inv_cdf(share)
    dev = jack.mean() - jack
    scale = float(np.max(np.abs(dev))) if dev.size else 0.0
    if scale > 1e100:  # the acceleration is scale-free; dev ** 3 would overflow
        dev = dev / scale
    denom = 6.0 * float(np.sum(dev ** 2)) ** 1.5
    acc = float(np.sum(dev ** 3)) / denom if denom > 0 else 0.0
    out = []
    for tail in (alpha, 1.0 - alpha):
        zt = nd.inv_cdf(tail)
        shrink = 1.0 - acc * (z0 + zt)
        if shrink <= 0:  # acceleration past the edge: the extreme replicate
            adj = 0.0 if tail < 0.5 else 1.0
        else:
            adj = nd.cdf(z0 + (z0 + zt) / shrink)
        out.append(float(np.quantile(boot, adj)))
    return out[0], out[1]


def tango_paired_ci(down: float, up: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Tango's (1998) score interval for a paired difference of proportions.

    The difference is candidate - reference: ``up`` items only the candidate passed,
    ``down`` items only the reference passed, ``n`` paired items. The interval is every
    delta whose score statistic T(delta) = (up - down - n delta) / sqrt(n (2 q + delta (1 -
    delta))) lies within +-z, q being the maximum-likelihood P(reference only) under delta.
    Unlike a bootstrap of the flips it holds its level when few items flip (no flips:
    about -z^2/(n + z^2) to +z^2/(n + z^2), not zero width). Counts may be fractional: a
    clustered suite divides them by the design effect (Rao & Scott 1992).
    """
    if n <= 0:
        return (math.nan, math.nan)
    if not (0 <= down and 0 <= up and down + up <= n * (1 + 1e-12)):
        raise ValueError(f"tango interval: need 0 <= down, up and down + up <= n (got {down}, {up}, {n})")
    z = z_for_level(level)
    est = (up - down) / n

    def score(delta: float) -> float:
        w = -up - down + (2.0 * n - up + down) * delta
        q = (math.sqrt(max(0.0, w * w + 8.0 * n * down * delta * (1.0 - delta))) - w) / (4.0 * n)
        var = n * (2.0 * q + delta * (1.0 - delta))
        num = up - down - n * delta
        if var <= 0.0:
            return math.copysign(math.inf, num) if num else 0.0
        return num / math.sqrt(var)

    def solve(target: float, lo: float, hi: float) -> float:
        # score() decreases in delta; find where it crosses target in [lo, hi]
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if score(mid) > target:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-12:
                break
        return 0.5 * (lo + hi)

    low = -1.0 if score(-1.0 + 1e-15) <= z else solve(z, -1.0, est)
    high = 1.0 if score(1.0 - 1e-15) >= -z else solve(-z, est, 1.0)
    return (max(-1.0, low), min(1.0, high))


def scaled_tango_ci(diffs: Sequence[float], units: int, level: float = 0.95,
                    deff: float = 1.0) -> tuple[float, float]:
    """Tango's paired score interval for a mean of differences that are not all -1, 0 or 1.

    A [0, 1] mean with half credit changes on a few items, by 0.5 or 1: its sample variance
    is small exactly in the runs that happened to lose few items, so BCa passed a true drop
    equal to the margin 8.2% of the time at 24 items (target 2.5%; 4,000 runs through the
    gate, the table in docs/ci-gating.md; as the wider bound, 1.3%). Tango's score interval
    takes the variance under each hypothesised difference instead. The differences are
    counted as flips of one common size m = sum(d^2) / sum(|d|) (their variance per unit of
    change, as Rao & Scott 1992 divide counts by a design effect): sum of losses / m down,
    of gains / m up, on n items, and the interval scaled back by m. Differences of -1, 0 and
    1 give Tango's own interval (m = 1); the interval is scale-equivariant (m scales with
    d). Its tails are expanded for ``units`` resampled units, as BCa's
    (sqrt(n/(n-1)) t_{n-1}); ``deff`` divides the counts and n (clusters), as for pass/fail
    metrics. Needs some nonzero difference (none changed: Tango's no-flip interval).
    Computed on d / max|d| and scaled back (the same interval): d * d lost precision on
    differences under 1e-154 and was 0 under 1.6e-162 (a [0, 1] mean of probabilities), a
    division by zero.
    """
    d = np.asarray(diffs, dtype=float)
    scale = float(np.abs(d).max()) if d.size else 0.0
    if scale == 0.0:
        raise ValueError("scaled_tango_ci: needs at least one nonzero difference")
    d = d / scale
    size = float(np.abs(d).sum())
    unit = float((d * d).sum()) / size
    down = float(np.clip(-d, 0.0, None).sum()) / unit / deff
    up = float(np.clip(d, 0.0, None).sum()) / unit / deff
    n = d.size / deff
    # (sum |d|)^2 / sum d^2 <= n (Cauchy-Schwarz), equal when every change has one size: then
    # rounding put the losses past n (4.000000000000001 of 4 for 0.75 -> 0.6 on each item)
    # and Tango refused a negative gain count, an internal error instead of a verdict
    down = min(down, n)
    up = min(up, n - down)
    expanded = 1.0 - 2.0 * _expanded_tail((1.0 - level) / 2.0, units)
    low, high = tango_paired_ci(down, up, n, expanded)
    return (scale * unit * low, scale * unit * high)


def design_effect(diffs: Sequence[float], clusters: Sequence[Any] | None) -> float:
    """Variance of the mean of ``diffs`` with clustered errors over its variance with
    independent items (Miller 2024, "Adding Error Bars to Evals", sec. 2.2), floored at 1.

    Clustered: G/(G-1) * sum over clusters of (sum of centred diffs)^2; independent:
    n/(n-1) * sum of squared centred diffs (both over n^2). 1.0 without clusters, with
    fewer than two clusters' worth of information, or when nothing varies.
    """
    if clusters is None:
        return 1.0
    d = np.asarray(diffs, dtype=float)
    n = d.size
    groups = _groups(clusters, n)
    g = int(groups.max()) + 1 if n else 0
    if n < 2 or g < 2:
        return 1.0
    e = d - d.mean()
    iid = float(np.sum(e * e)) * n / (n - 1)
    if iid <= 0:
        return 1.0
    clustered = float(np.sum(np.bincount(groups, weights=e, minlength=g) ** 2)) * g / (g - 1)
    return max(1.0, clustered / iid)


def _quantile_of(stat: str) -> float:
    if stat == "median":
        return 0.5
    if stat.startswith("p") and stat[1:].replace(".", "", 1).isdigit():
        return float(stat[1:]) / 100.0
    raise ValueError(f"unknown statistic {stat!r} (use mean, median, p50, p90, p95, p99)")


def statistic_fn(stat: str | Callable[[np.ndarray], float]) -> Callable[[np.ndarray], float]:
    """The statistic named "mean", "median" or "pNN" as a function of a 1-D array."""
    if callable(stat):
        return stat
    if stat == "mean":
        return lambda x: float(np.mean(x))
    q = _quantile_of(stat)
    return lambda x: float(np.quantile(x, q))


def items_needed(margin: float, discordance: float, level: float = 0.95, power: float = 0.8) -> int:
    """Paired items needed so that a candidate truly equal to its reference clears a
    non-inferiority ``margin`` with probability ``power``.

    Normal approximation for a paired difference of proportions whose variance is
    ``discordance / n`` (``discordance``: expected share of items that flip either
    way): n = (z_{1-alpha/2} + z_{power})^2 * discordance / margin^2, with alpha = 1 - level
    matching the two-sided interval whose lower bound the gate checks.
    """
    if margin < 1e-9:  # no number of items shows a zero margin
        return sys.maxsize
    nd = NormalDist()
    z = nd.inv_cdf(0.5 + level / 2.0) + nd.inv_cdf(power)
    return math.ceil(z * z * discordance / (margin * margin))


def smallest_margin(n: int, discordance: float, level: float = 0.95, power: float = 0.8) -> float:
    """The smallest non-inferiority margin n paired items can show (inverse of items_needed)."""
    if n <= 0:
        return math.inf
    nd = NormalDist()
    z = nd.inv_cdf(0.5 + level / 2.0) + nd.inv_cdf(power)
    return z * math.sqrt(discordance / n)


def expected_discordance(pass_rate: float, floor: float = 0.05) -> float:
    """Share of items expected to flip between two comparable models at this pass rate.

    2 p (1 - p) is the share if the two models' errors were independent; it is
    floored so that a reference passing (or failing) everything does not make any
    suite look big enough.
    """
    return max(2.0 * pass_rate * (1.0 - pass_rate), floor)


def power_warning(n: int, margin: float, pass_rate: float, level: float = 0.95,
                  power: float = 0.8) -> str | None:
    """One line when n paired items are too few to show non-inferiority at ``margin``.

    None when n is enough. The message names n, the margin, the smallest margin n
    items can show, and about how many items the margin needs.
    """
    if margin < 1e-9:
        return None  # a zero margin is a deliberate "no item may get worse"
    psi = expected_discordance(pass_rate)
    need = items_needed(margin, psi, level, power)
    if n >= need:
        return None
    return (f"only {n} paired items: at a pass rate of {pass_rate:.2f}, an equally good model that "
            f"changes some answers needs about {need} items to clear a margin of {margin:.3f} "
            f"({power:.0%} power); {n} items can only show a margin of about "
            f"{smallest_margin(n, psi, level, power):.3f}")


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy default) ignoring None/NaN; NaN if empty."""
    arr = _clean(values)
    if arr.size == 0:
        return math.nan
    return float(np.quantile(arr, q))


def quantile_bound_items(q: float, level: float = 0.95) -> int:
    """Fewest items n whose order statistics give a two-sided ``level`` interval for the
    q-quantile, no distribution assumed: the sample maximum is an upper bound only with
    probability 1 - q^n (and the minimum a lower one with 1 - (1 - q)^n), so n needs
    max(q, 1 - q)^n <= (1 - level) / 2. Below it every interval for that quantile rests on
    assumptions (the bootstrap's included): 72 items for a p95, 36 for a p90, 6 for a median."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile_bound_items: need 0 < q < 1, got {q}")
    return math.ceil(math.log((1.0 - level) / 2.0) / math.log(max(q, 1.0 - q)) - 1e-9)
