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
items_needed(margin, discordance, level=0.95, power=0.8) -> int
smallest_margin(n, discordance, level=0.95, power=0.8) -> float
expected_discordance(pass_rate) -> float
power_warning(n, margin, pass_rate, level=0.95, power=0.8) -> str | None
    Sample size for a paired non-inferiority gate on a pass rate, and the
    warning when a suite has too few items to show its margin.
quantile(values, q) -> float
    Linear-interpolation quantile (numpy's default), NaN for empty input.
"""

from __future__ import annotations

import math
import sys
from functools import lru_cache
from statistics import NormalDist
from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "wilson",
    "bootstrap_mean_ci",
    "binom_test_two_sided",
    "mcnemar_exact",
    "paired_bootstrap_diff_ci",
    "items_needed",
    "smallest_margin",
    "expected_discordance",
    "power_warning",
    "quantile",
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
    fn = statistic_fn(stat)
    point = float(fn(arr[:, 1]) - fn(arr[:, 0]))
    n = arr.shape[0]
    constant_diff = bool(np.all(arr[:, 1] - arr[:, 0] == arr[0, 1] - arr[0, 0]))
    if n == 1 or (stat == "mean" and constant_diff):
        return (point, point, point)
    idx = _resample_indices(n, n_boot, seed)
    if stat == "mean":  # mean(b) - mean(a) = mean(b - a): one gather
        diffs = (arr[:, 1] - arr[:, 0])[idx].mean(axis=1)
    else:
        a_s = arr[:, 0][idx]
        b_s = arr[:, 1][idx]
        if isinstance(stat, str):
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
