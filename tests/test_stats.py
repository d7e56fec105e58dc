"""Statistics against known values (R's prop.test / binom.test) and their invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.stats import (binom_test_two_sided, bootstrap_mean_ci, items_needed, mcnemar_exact,
                           paired_bootstrap_diff_ci, power_warning, quantile, smallest_margin, wilson,
                           z_for_level)


def test_wilson_known_values():
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson, no correction)
    for (k, n), (low, high) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605),
                                (0, 20): (0.0, 0.1611), (1, 29): (0.0061, 0.1718)}.items():
        got = wilson(k, n)
        assert got == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5)), (k, n)
    # 8 of 10: 0.4902 to 0.9433 (R: prop.test(8, 10, correct = FALSE))
    assert wilson(8, 10) == (pytest.approx(0.4902, abs=5e-5), pytest.approx(0.9433, abs=5e-5))
    # z from the level gives R's qnorm(0.975) interval: 0 of 10 -> 0 to 0.2775328
    assert wilson(0, 10, z_for_level(0.95)) == (0.0, pytest.approx(0.2775328, abs=1e-7))
    assert wilson(10, 10)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)


@given(st.integers(0, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_estimate(kn):
    k, n = kn
    low, high = wilson(k, n)
    assert 0.0 <= low <= high <= 1.0
    if n:
        assert low - 1e-12 <= k / n <= high + 1e-12


def test_mcnemar_exact_known_values():
    # R: binom.test(1, 10)$p.value = 0.02148438 ; mcnemar exact on b=1, c=9
    assert mcnemar_exact(1, 9) == pytest.approx(0.02148438, abs=1e-8)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    # binom.test(3, 12)$p.value = 0.1459961
    assert mcnemar_exact(3, 9) == pytest.approx(0.1459961, abs=1e-7)
    # binom.test(0, 5)$p.value = 0.0625
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(4, 4) == 1.0


def test_binom_test_matches_r_convention():
    assert binom_test_two_sided(1, 10) == pytest.approx(0.02148438, abs=1e-8)
    # R: binom.test(7, 10, p = 0.3)$p.value = 0.01059208
    assert binom_test_two_sided(7, 10, 0.3) == pytest.approx(0.01059208, abs=1e-7)
    # the symmetric case agrees with McNemar for any split
    for b in range(0, 12):
        assert binom_test_two_sided(b, 11) == pytest.approx(mcnemar_exact(b, 11 - b))


@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_is_a_probability_and_symmetric(b, c):
    p = mcnemar_exact(b, c)
    assert 0.0 < p <= 1.0
    assert p == mcnemar_exact(c, b)


def test_bootstrap_mean_ci_is_seeded_and_sane():
    values = [0.1, 0.4, 0.35, 0.8, 0.55, 0.2, 0.9, 0.6]
    a = bootstrap_mean_ci(values, seed=0)
    assert a == bootstrap_mean_ci(values, seed=0)
    assert a != bootstrap_mean_ci(values, seed=1)
    mean = sum(values) / len(values)
    assert a[0] < mean < a[1]
    assert min(values) <= a[0] and a[1] <= max(values)
    assert bootstrap_mean_ci([3.0, 3.0, 3.0]) == (3.0, 3.0)
    assert all(math.isnan(x) for x in bootstrap_mean_ci([]))
    assert bootstrap_mean_ci([1.0, None, float("nan"), 3.0], n_boot=500)[0] >= 1.0


def test_paired_bootstrap_identical_and_shifted():
    a = [0.0, 1.0, 1.0, 0.0, 1.0]
    assert paired_bootstrap_diff_ci(a, a) == (0.0, 0.0, 0.0)
    shifted = [x + 0.5 for x in a]
    assert paired_bootstrap_diff_ci(a, shifted) == pytest.approx((0.5, 0.5, 0.5))


def test_paired_bootstrap_only_improvements_never_below_zero():
    a = [1.0] * 15 + [0.0] * 5
    b = [1.0] * 20
    diff, low, high = paired_bootstrap_diff_ci(a, b, seed=0)
    assert diff == pytest.approx(0.25)
    assert low >= 0.0 and high <= 0.5 and low < diff < high


def test_paired_bootstrap_quantile_and_errors():
    a = [float(i) for i in range(100)]
    b = [x * 2 for x in a]
    diff, low, high = paired_bootstrap_diff_ci(a, b, stat="p95")
    assert diff == pytest.approx(quantile(b, 0.95) - quantile(a, 0.95))
    assert low <= diff <= high
    with pytest.raises(ValueError):
        paired_bootstrap_diff_ci([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        paired_bootstrap_diff_ci([1.0, 2.0], [1.0, 2.0], stat="p95x")


def test_sample_size_and_power_warning():
    assert z_for_level(0.95) == pytest.approx(1.959964, abs=1e-6)
    # n = (1.959964 + 0.841621)^2 * 0.2 / 0.1^2 = 156.98 -> 157
    assert items_needed(0.1, 0.2) == 157
    assert smallest_margin(157, 0.2) == pytest.approx(0.1, abs=0.001)
    text = power_warning(12, 0.05, pass_rate=0.9)
    assert text and "12 paired items" in text and "0.050" in text
    assert power_warning(5000, 0.05, pass_rate=0.9) is None
