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
paired_bootstrap_diff_ci(a, b, seed=0, n_boot=2000, level=0.95, stat="mean")
    Seeded paired bootstrap of stat(b) - stat(a) over items resampled jointly.
newcombe_paired_diff_ci(n11, n10, n01, n00, z=1.96)
    Newcombe's (1998, method 10) interval for a difference of paired proportions.
min_detectable_drop(n, p, alpha=0.05, power=0.8) -> float
    Approximate smallest drop in a paired pass rate detectable with n items.
power_warning(n, margin, p=..., ...) -> str | None
    Human warning when n items are too few to detect a drop of ``margin``.
quantile(values, q) -> float
    Linear-interpolation quantile (numpy's default), NaN for empty input.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "wilson",
    "bootstrap_mean_ci",
    "binom_test_two_sided",
    "mcnemar_exact",
    "paired_bootstrap_diff_ci",
    "newcombe_paired_diff_ci",
    "min_detectable_drop",
    "power_warning",
    "quantile",
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
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    means = arr[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(low), float(high))


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


def paired_bootstrap_diff_ci(
    a: Sequence[float],
    b: Sequence[float],
    seed: int = 0,
    n_boot: int = 2000,
    level: float = 0.95,
    stat: str | Callable[[np.ndarray], float] = "mean",
) -> tuple[float, float, float]:
    """Paired bootstrap of ``stat(b) - stat(a)`` (b is the candidate, a the reference).

    ``a`` and ``b`` are aligned per item (same length, same order); item pairs
    are resampled jointly so correlation between the two conditions is kept.
    Pairs where either value is None/NaN are dropped. ``stat`` is "mean",
    "median", a quantile like "p90"/"p95"/"p99", or a callable on a 1-D array.
    Returns (point_estimate, low, high); all NaN for no usable pairs.
    """
    if len(a) != len(b):
        raise ValueError(f"paired bootstrap: lengths differ ({len(a)} vs {len(b)})")
    pairs = [
        (float(x), float(y))
        for x, y in zip(a, b)
        if x is not None and y is not None and not math.isnan(float(x)) and not math.isnan(float(y))
    ]
    if not pairs:
        return (math.nan, math.nan, math.nan)
    arr = np.asarray(pairs, dtype=float)
    fn = _stat_fn(stat)
    point = float(fn(arr[:, 1]) - fn(arr[:, 0]))
    n = arr.shape[0]
    constant_diff = bool(np.all(arr[:, 1] - arr[:, 0] == arr[0, 1] - arr[0, 0]))
    if n == 1 or (stat == "mean" and constant_diff):
        return (point, point, point)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    a_s = arr[:, 0][idx]
    b_s = arr[:, 1][idx]
    if stat == "mean":
        diffs = b_s.mean(axis=1) - a_s.mean(axis=1)
    elif isinstance(stat, str):
        q = _quantile_of(stat)
        diffs = np.quantile(b_s, q, axis=1) - np.quantile(a_s, q, axis=1)
    else:
        diffs = np.array([fn(b_s[i]) - fn(a_s[i]) for i in range(n_boot)])
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    return (point, float(low), float(high))


def _quantile_of(stat: str) -> float:
    if stat == "median":
        return 0.5
    if stat.startswith("p") and stat[1:].replace(".", "", 1).isdigit():
        return float(stat[1:]) / 100.0
    raise ValueError(f"unknown statistic {stat!r} (use mean, median, p50, p90, p95, p99)")


def _stat_fn(stat: str | Callable[[np.ndarray], float]) -> Callable[[np.ndarray], float]:
    if callable(stat):
        return stat
    if stat == "mean":
        return lambda x: float(np.mean(x))
    q = _quantile_of(stat)
    return lambda x: float(np.quantile(x, q))


def newcombe_paired_diff_ci(
    n11: int, n10: int, n01: int, n00: int, z: float = 1.96
) -> tuple[float, float, float]:
    """Difference of paired proportions p2 - p1 with Newcombe's method 10 interval.

    Counts: n11 both pass, n10 first passes/second fails, n01 first fails/second
    passes, n00 both fail. Returns (difference, low, high) of
    (second pass rate) - (first pass rate) = (n01 - n10) / n.
    """
    n = n11 + n10 + n01 + n00
    if n == 0:
        return (math.nan, math.nan, math.nan)
    p1 = (n11 + n10) / n
    p2 = (n11 + n01) / n
    d = p2 - p1
    l1, u1 = wilson(n11 + n10, n, z)
    l2, u2 = wilson(n11 + n01, n, z)
    # phi correlation correction (Newcombe 1998, method 10)
    r1 = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    if r1 == 0:
        phi = 0.0
    else:
        num = n11 * n00 - n10 * n01
        if num > 0:
            num = max(num - n / 2.0, 0.0)
        phi = num / math.sqrt(r1)
    dl2 = (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2
    du2 = (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2
    low = d - math.sqrt(max(dl2, 0.0))
    high = d + math.sqrt(max(du2, 0.0))
    return (d, max(-1.0, low), min(1.0, high))


def min_detectable_drop(
    n: int, p: float = 0.8, alpha: float = 0.05, power: float = 0.8, discordance: float | None = None
) -> float:
    """Approximate smallest drop in a paired pass rate that n items can detect.

    Uses the normal approximation for a one-sided paired test of proportions:
    delta = (z_{1-alpha} + z_{power}) * sqrt(psi / n), where psi, the share of
    discordant pairs, is taken as 2 p (1 - p) (independent errors, conservative)
    unless given. Returns 1.0 (nothing detectable) for n == 0.
    """
    if n <= 0:
        return 1.0
    nd = NormalDist()
    za = nd.inv_cdf(1 - alpha)
    zb = nd.inv_cdf(power)
    psi = discordance if discordance is not None else max(2 * p * (1 - p), 0.02)
    return min(1.0, (za + zb) * math.sqrt(psi / n))


def power_warning(
    n: int,
    margin: float,
    p: float = 0.8,
    alpha: float = 0.05,
    power: float = 0.8,
    what: str = "",
) -> str | None:
    """Warn when n paired items cannot detect a drop of ``margin`` with the given power.

    Returns a one-line message naming n, the margin, the minimum detectable
    drop and roughly how many items would be needed; None when n is enough.
    """
    mdd = min_detectable_drop(n, p=p, alpha=alpha, power=power)
    if margin <= 0 or mdd <= margin:
        return None
    nd = NormalDist()
    za, zb = nd.inv_cdf(1 - alpha), nd.inv_cdf(power)
    psi = max(2 * p * (1 - p), 0.02)
    need = math.ceil(((za + zb) ** 2) * psi / (margin ** 2))
    prefix = f"{what}: " if what else ""
    return (
        f"{prefix}only {n} paired items; the smallest drop detectable at "
        f"{int(power * 100)}% power is about {mdd:.3f}, larger than the margin "
        f"{margin:.3f} (about {need} items needed)"
    )


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy default) ignoring None/NaN; NaN if empty."""
    arr = _clean(values)
    if arr.size == 0:
        return math.nan
    return float(np.quantile(arr, q))
