"""Where the shipped intervals do and do not hold their level at small n, by seeded simulation
through the real code (docs/ci-gating.md, "The statistics behind a drop gate"). A drop gate
is a one-sided 2.5% test: a candidate whose true drop equals the margin may pass at most
2.5% of the time. The shortfalls left unfixed are pinned at their measured level, so that a change to them
shows up here; the fixed ones are held at the target."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from harness import calibration as cal
from harness.gates import evaluate_gates
from harness.stats import paired_bootstrap_diff_ci, quantile_bound_items, t_quantile

MARGIN = 0.05


def _rate(k: int, reps: int) -> tuple[float, float]:
    p = k / reps
    return p, math.sqrt(max(p * (1 - p), 0.025 * 0.975) / reps)


def test_a_bounded_mean_where_no_item_changed_is_not_a_zero_width_pass():
    # A mean metric of 0/1 values on 12 items, 5% of items losing 1.0 (true drop = the
    # margin): with no item dropping (54% of runs) every difference was 0 and the bootstrap
    # had zero width: 54% false passes (10,000 runs). (Every value 0 or 1 now takes the Tango
    # path, as a pass/fail metric does; the bootstrap's no-flip guard is tested with clusters.)
    rng = np.random.default_rng(7)
    n, reps, passes = 12, 400, 0
    for _ in range(reps):
        base = (rng.random(n) < 0.7).astype(float)
        cand = np.where(rng.random(n) < MARGIN / 0.7, 0.0, base)
        ob, oc = cal._outputs(n, np.ones(n, dtype=bool))
        passes += cal.gate_passes(cal._mean_model(base, ob), cal._mean_model(cand, oc), "partial")
    p, se = _rate(passes, reps)
    assert p <= 0.025 + 3 * se, f"{passes}/{reps} false passes"


def _zero_one_mean_boundary(n: int, reps: int, seed: int) -> int:
    """Gate passes of a kind-mean metric whose values are all 0 or 1: 10% of items lose 1.0,
    5% gain 1.0 (true drop 0.05 = the margin), 30% more rewritten without changing value."""
    rng = np.random.default_rng(seed)
    passes = 0
    for _ in range(reps):
        cell = rng.choice(4, size=n, p=[0.6, 0.10, 0.05, 0.25])  # both, down, up, neither
        base = ((cell == 0) | (cell == 1)).astype(float)
        cand = ((cell == 0) | (cell == 2)).astype(float)
        ob, oc = cal._outputs(n, (base != cand) | (rng.random(n) < 0.3))
        passes += cal.gate_passes(cal._mean_model(base, ob), cal._mean_model(cand, oc), "partial")
    return passes


def test_a_mean_of_zero_one_values_holds_the_level_of_a_pass_rate():
    # kind mean, every value 0 or 1 (keywords.all, repetition.loop, ...): the paired BCa
    # bootstrap passed a true drop equal to the margin 10.2% / 8.0% / 5.8% of the time at 24 /
    # 40 / 100 items (2000 runs each, s.e. 0.7 / 0.6 / 0.5%); Tango's paired score interval,
    # which the pass/fail metrics use, 1.5% / 1.5% / 2.3% (s.e. 0.3%).
    reps = 1000
    passes = _zero_one_mean_boundary(40, reps, seed=11)
    p, se = _rate(passes, reps)
    assert p <= 0.025 + 3 * se, f"{passes}/{reps} false passes"


def _half_credit_churn(n: int, reps: int, seed: int, lose: float = 0.09, gain: float = 0.1) -> int:
    """Gate passes of a mean in [0, 1] with half credit (a keywords share of 2 concepts: 60% of
    items at 1, 20% at 0.5, 20% at 0); sparse changes: an item loses 1.0 or 0.5 with
    probability ``lose`` each (0.5 from 0.5), gains 1.0 or 0.5 from 0 and 0.5 from 0.5 with
    probability ``gain`` each. The defaults make a true drop of 0.051 (the margin)."""
    rng = np.random.default_rng(seed)
    passes = 0
    for _ in range(reps):
        u, v, w = rng.random(n), rng.random(n), rng.random(n)
        base = np.where(u < 0.6, 1.0, np.where(u < 0.8, 0.5, 0.0))
        cand = np.where((base == 1.0) & (v < lose), 0.0, base)
        cand = np.where((base == 1.0) & (v >= lose) & (v < 2 * lose), 0.5, cand)
        cand = np.where((base == 0.5) & (v < lose), 0.0, cand)
        cand = np.where((base == 0.0) & (w < gain), 1.0, cand)
        cand = np.where((base == 0.0) & (w >= gain) & (w < 2 * gain), 0.5, cand)
        cand = np.where((base == 0.5) & (cand == 0.5) & (w < gain), 1.0, cand)
        ob, oc = cal._outputs(n, (base != cand) | (rng.random(n) < 0.3))
        passes += cal.gate_passes(cal._mean_model(base, ob), cal._mean_model(cand, oc), "partial")
    return passes


def test_half_credit_with_sparse_churn_holds_the_level():
    # A mean in [0, 1] with some 0.5 values: BCa alone passed this boundary candidate (true
    # drop 0.051 = the margin) 8.2% / 7.6% / 4.1% / 4.7% of the time at 24 / 40 / 64 / 100
    # items (4000 runs through the gate, s.e. 0.3-0.4%): the runs that lost few items also
    # had a small sample variance. Each bound is now the wider of BCa's and Tango's score
    # interval on the differences counted as flips of their mean square size: 1.3% / 2.3% /
    # 1.8% / 2.3% (docs/ci-gating.md). These 1000 runs each: 1.3% and 2.2% (BCa alone 7.2% and 7.0%).
    reps = 1000
    for n, seed in ((24, 5), (40, 6)):
        passes = _half_credit_churn(n, reps, seed=seed)
        p, se = _rate(passes, reps)
        assert p <= 0.025 + 3 * se, f"n={n}: {passes}/{reps} false passes"


def test_half_credit_gate_still_passes_an_equally_good_candidate():
    # The price, and a check that the gate is not one that can never pass: a candidate as
    # good as its reference on average (losses 4%, gains 10%) passed 43.8% of the time at 100
    # items (BCa alone 52.7%, Tango on the unscaled parts 32%; 4000 runs); these 300: 36%.
    reps = 300
    p, _ = _rate(_half_credit_churn(100, reps, seed=9, lose=0.04, gain=0.1), reps)
    assert 0.3 < p < 0.6, p


def _clustered_half_credit(groups: int, icc: float, reps: int, seed: int, per: int = 8) -> int:
    """Gate passes of the half-credit boundary candidate (losses 9%, gains 10%, true drop
    0.051 = the margin) on ``groups`` declared clusters of ``per`` items, each cluster's loss
    probability from a Beta with mean 0.09 and intra-cluster correlation ``icc``."""
    rng = np.random.default_rng(seed)
    n, scale = groups * per, (1 - icc) / icc
    passes = 0
    for _ in range(reps):
        lose = np.repeat(rng.beta(0.09 * scale, 0.91 * scale, groups), per)
        u, v, w = rng.random(n), rng.random(n), rng.random(n)
        base = np.where(u < 0.6, 1.0, np.where(u < 0.8, 0.5, 0.0))
        cand = np.where((base == 1.0) & (v < lose), 0.0, base)
        cand = np.where((base == 1.0) & (v >= lose) & (v < 2 * lose), 0.5, cand)
        cand = np.where((base == 0.5) & (v < lose), 0.0, cand)
        cand = np.where((base == 0.0) & (w < 0.1), 1.0, cand)
        cand = np.where((base == 0.0) & (w >= 0.1) & (w < 0.2), 0.5, cand)
        cand = np.where((base == 0.5) & (cand == 0.5) & (w < 0.1), 1.0, cand)
        ob, oc = cal._outputs(n, (base != cand) | (rng.random(n) < 0.3))
        models = [cal._mean_model(base, ob), cal._mean_model(cand, oc)]
        for model in models:
            for k, item in enumerate(model["items"]):
                item["cluster"] = f"t{k // per}"
        passes += cal.gate_passes(*models, "partial")
    return passes


def test_clustered_half_credit_counts_its_flips_as_pass_fail_metrics_do():
    # 10 clusters of 8, losses clustered (intra-cluster correlation 0.3): BCa alone passed
    # the boundary 10.4% of the time (1000 runs); the scaled Tango interval with the mean's
    # design effect 5.5%, with the flips' design effect (no gain: each cluster one item at
    # most; a loss never cancels a gain, as for pass/fail metrics) 1.9%. Correlation 0.1: 7.7
    # -> 0.1%; 30 clusters: 4.0 -> 3.0% (0.3), 3.5 -> 1.2% (0.1). These 800 runs: 2.1% (the
    # mean's design effect: 6.0%).
    reps = 800
    passes = _clustered_half_credit(10, 0.3, reps, seed=1)
    p, se = _rate(passes, reps)
    assert p <= 0.025 + 3 * se, f"{passes}/{reps} false passes"


def test_identical_outputs_on_a_mean_metric_still_pass():
    # The A/A rule is kept: the same outputs are the reference, whatever n.
    values = np.linspace(0.0, 1.0, 8)
    ob, _ = cal._outputs(8, np.zeros(8, dtype=bool))
    assert cal.gate_passes(cal._mean_model(values, ob), cal._mean_model(values.copy(), list(ob)), "partial")


def test_skewed_mean_differences_at_small_n_pass_too_often():
    # Documented shortfall: per-item changes with a rare large loss (lognormal sigma 1, the
    # loss side) at n = 20: the BCa lower bound misses the true mean 8.7% of the time (MC s.e.
    # 0.3%, 10,000 runs); the t interval misses 13.2%. No fix in the harness: the published
    # skew-aware intervals narrow it (bootstrap-t 6.6%, Hall's transformation bootstrapped
    # 6.0%, 2000 runs) at a large cost in power where changes are sparse, and none can hold
    # the level for every unbounded distribution (Bahadur & Savage 1956; docs/ci-gating.md).
    rng = np.random.default_rng(20)
    n, reps, miss = 20, 1500, 0
    zeros = np.zeros(n)
    for _ in range(reps):
        d = -(rng.lognormal(0.0, 1.0, n) - math.exp(0.5))
        miss += paired_bootstrap_diff_ci(zeros, d)[1] > 0.0
    p, _ = _rate(miss, reps)
    assert 0.05 < p < 0.13, p


def test_p95_difference_on_24_items_holds_the_level_within_simulation_error():
    # p95 latency on 24 items (the latency suite's size), lognormal sigma 0.5, reference and
    # candidate correlated 0.8, the candidate 10% slower: the upper bound (the side a latency
    # gate decides on) missed the true p95 difference 7.2% of the time with BCa alone; as the
    # wider of BCa's and the expanded percentile bound 2.8% (correlation 0.5: 6.0% -> 2.8%;
    # MC s.e. 0.4% / 0.3%, 4000 runs each with this generator and seed 1; seed 2: 6.9% -> 2.5%,
    # 5.5% -> 2.7%). These 600 runs: BCa 8.0%, the wider bound 2.0%.
    rng = np.random.default_rng(24)
    n, reps, miss, s, rho = 24, 600, 0, 0.5, 0.8
    z95 = 1.6448536269514722
    true = math.exp(0.1 + s * z95) - math.exp(s * z95)
    for _ in range(reps):
        z1, z2 = rng.standard_normal(n), rng.standard_normal(n)
        a = np.exp(s * z1)
        b = np.exp(0.1 + s * (rho * z1 + math.sqrt(1 - rho * rho) * z2))
        miss += paired_bootstrap_diff_ci(a, b, stat="p95", method="wider")[2] < true
    p, se = _rate(miss, reps)
    assert p <= 0.025 + 3 * se, f"{miss}/{reps} missed"


def test_quantile_gates_use_the_wider_bound():
    # The comparison a gate reads takes, for a quantile, each bound the wider of BCa's and
    # the (expanded) percentile bootstrap's, and its method says so; a mean keeps BCa.
    rng = np.random.default_rng(3)
    ref = rng.lognormal(0.0, 0.5, 24)
    cand = ref * np.exp(rng.normal(0.1, 0.3, 24))
    models = {name: cal._ttft_p95_model(values, [f"o{k}" for k in range(24)])
              for name, values in (("base", ref), ("cand", cand))}
    gates, _ = evaluate_gates(cal._suite({"latency.ttft_s.p95": {
        "rel_tolerance_vs_base": 0.25, "higher_is_better": False}}), {"name": "l", "models": models,
                                                                     "scorers": {}}, None)
    (gate,) = gates
    low, high = gate["details"]["ci_low"], gate["details"]["ci_high"]
    assert (low, high) == paired_bootstrap_diff_ci(ref, cand, stat="p95", method="wider")[1:]
    _, bca_low, bca_high = paired_bootstrap_diff_ci(ref, cand, stat="p95")
    # the expanded percentile interval (Hesterberg 2015), computed here from its definition: the
    # plain percentile one on the same resamples at the tail whose normal quantile is
    # sqrt(n/(n-1)) t_{0.025, n-1}
    tail = NormalDist().cdf(math.sqrt(24 / 23) * t_quantile(0.025, 23))
    assert tail < 0.025
    _, pct_low, pct_high = paired_bootstrap_diff_ci(ref, cand, stat="p95", method="percentile", level=1 - 2 * tail)
    assert low == pytest.approx(min(bca_low, pct_low), abs=1e-12)
    assert high == pytest.approx(max(bca_high, pct_high), abs=1e-12)
    # on these items each side takes the other method's bound: a gate that read BCa alone, the
    # percentile interval alone, or one method's pair of bounds, fails one of these
    assert bca_low < pct_low - 0.1 and low == bca_low  # the lower bound: BCa's
    assert pct_high > bca_high + 0.1 and high == pytest.approx(pct_high, abs=1e-12)  # the upper: the percentile's
    assert "the wider bound" in gate["details"]["method"]


def _clustered_boundary(groups: int, icc: float, reps: int, seed: int, per: int = 8) -> int:
    """Gate passes among ``reps`` runs of ``groups`` clusters of ``per`` items, `cluster:`
    declared, each cluster's drop probability from a Beta with mean MARGIN and intra-cluster
    correlation ``icc`` (true drop = the margin), the reference passing 0.7 independently."""
    rng = np.random.default_rng(seed)
    n = groups * per
    labels = [f"t{i // per}" for i in range(n)]
    scale = (1 - icc) / icc
    passes = 0
    for _ in range(reps):
        down = rng.random(n) < np.repeat(rng.beta(MARGIN * scale, (1 - MARGIN) * scale, groups), per)
        both = ~down & (rng.random(n) < 0.65 / 0.95)
        ob, oc = cal._outputs(n, down | (rng.random(n) < 0.3))
        models = [cal._binary_model(down | both, ob), cal._binary_model(both, oc)]
        for model in models:
            for item, label in zip(model["items"], labels):
                item["cluster"] = label
        passes += cal.gate_passes(*models, "exact_match")
    return passes


def test_few_clusters_where_nothing_flipped_count_each_cluster_once():
    # 10 clusters of 8 items, intra-cluster correlation 0.3 in the drops: 39% of runs flip
    # nothing, and those used to borrow the reference's own design effect (about 1 here): 80
    # items' no-flip interval (-0.046) cleared the margin, 8.8% false passes (3000 runs). A
    # no-flip run now counts each cluster once (n_eff = 10): 0 of 3000.
    reps = 300
    passes = _clustered_boundary(10, 0.3, reps, 103)
    p, se = _rate(passes, reps)
    assert p <= 0.025 + 3 * se, f"{passes}/{reps} false passes"


def test_thirty_clusters_with_a_few_scattered_losses_hold_the_level():
    # At 30 clusters (240 items) the false passes were runs with one to a few losses in
    # different clusters and no gain, whose design effect read about 1 (one flip cannot show
    # that flips cluster): intra-cluster correlation 0.5: 9.9-10.0% (3000 and 2000 runs). A
    # run that only lost items is now judged as the run that lost none, by its clusters (a
    # loss may not narrow the interval): 0 of 2000.
    reps = 300
    passes = _clustered_boundary(30, 0.5, reps, 305)
    p, se = _rate(passes, reps)
    assert p <= 0.025 + 3 * se, f"{passes}/{reps} false passes"


def test_losses_that_cluster_next_to_gains_that_do_not_still_pass_too_often():
    # Documented shortfall: 10 clusters of 8, losses clustered (intra-cluster correlation 0.5,
    # mean 0.07) and gains scattered (0.02), true drop = the 0.05 margin: the false passes are
    # runs in which the losses happened to miss most clusters while a few gains showed no
    # clustering; no estimate from those flips can see the losses that did not happen:
    # 11.9% (15.5% before a loss could no longer narrow the interval; 2000 runs each).
    reps = 300
    passes = cal.simulate_correlated_clusters(10, 8, 0.07, 0.02, 0.5, 0.0, reps, 1010)
    p, _ = _rate(passes, reps)
    assert 0.07 < p < 0.28, p


def _unclustered_no_flip_models(groups: int, per: int = 8) -> list[dict]:
    n = groups * per
    verdicts = np.arange(n) % 3 != 0  # the reference's verdicts do not cluster (pass rate 0.67)
    ob, oc = cal._outputs(n, np.arange(n) % 2 == 0)  # half the outputs rewritten, no verdict changed
    models = [cal._binary_model(verdicts, ob), cal._binary_model(verdicts.copy(), oc)]
    for model in models:
        for k, item in enumerate(model["items"]):
            item["cluster"] = f"t{k // per}"
    return models


def test_a_candidate_that_flips_nothing_shows_a_margin_only_with_enough_clusters():
    # The price of the fix: with nothing flipped, 10 clusters show what 10 items show
    # (Tango's no-flip interval, -0.278), so a candidate that changes no verdict fails a 0.05
    # margin there (it passed before: n_eff was 80, from the reference's verdicts); 73
    # clusters or more clear it. The reason says why.
    suite_result = {"name": "c", "models": dict(zip(("base", "cand"), _unclustered_no_flip_models(10))),
                    "scorers": {}}
    gates, _ = evaluate_gates(cal._suite({"exact_match": {"max_drop_vs_base": MARGIN}}), suite_result, None)
    (gate,) = [g for g in gates if g["kind"] == "max_drop_vs_base"]
    assert not gate["passed"]
    assert gate["details"]["n_eff"] == 10 and "each of the 10 clusters counts as one item" in gate["details"]["method"]
    assert cal.gate_passes(*_unclustered_no_flip_models(80), "exact_match")


def test_a_mean_shifted_equally_on_every_item_counts_clusters_too():
    # Every item of a bounded mean moved by the same amount: the differences do not vary, so
    # they cannot show how changes cluster either; 10 clusters count as 10 items, as with no
    # change (before: design effect 1, 80 items, a no-flip interval of -0.046 around -0.002:
    # passed).
    values = np.random.default_rng(3).uniform(0.2, 0.9, 80)
    ob, oc = cal._outputs(80, np.ones(80, dtype=bool))
    models = [cal._mean_model(values, ob), cal._mean_model(values - 0.002, oc)]
    for model in models:
        for k, item in enumerate(model["items"]):
            item["cluster"] = f"t{k // 8}"
    suite_result = {"name": "c", "models": dict(zip(("base", "cand"), models)), "scorers": {}}
    gates, _ = evaluate_gates(cal._suite({"partial": {"max_drop_vs_base": MARGIN}}), suite_result, None)
    (gate,) = gates
    assert gate["details"]["n_eff"] <= 10 and not gate["passed"], gate["reason"]


def test_a_p95_on_too_few_items_for_order_statistics_is_marked_approximate():
    # 24 items cannot bound a p95 without assumptions (the sample maximum is above the p95
    # only with probability 1 - 0.95^24 = 0.71); 72 can. Below that the gate still decides on
    # the bootstrap, and its reason, details and the run's warnings say it is approximate.
    assert [quantile_bound_items(q) for q in (0.5, 0.9, 0.95)] == [6, 36, 72]
    rng = np.random.default_rng(5)
    for n, approximate in ((24, True), (72, False)):
        ref = rng.lognormal(0.0, 0.5, n)
        models = {name: cal._ttft_p95_model(values, [f"o{k}" for k in range(n)])
                  for name, values in (("base", ref), ("cand", ref * 1.05))}
        gates, warnings = evaluate_gates(cal._suite({"latency.ttft_s.p95": {
            "rel_tolerance_vs_base": 0.25, "higher_is_better": False}}), {"name": "l", "models": models,
                                                                         "scorers": {}}, None)
        (gate,) = gates
        assert gate["details"]["statistic"] == "p95"
        assert ("approximate" in gate["reason"]) is approximate, gate["reason"]
        assert any("order statistics bound a p95 only from 72" in w for w in warnings) is approximate


def test_a_sub_second_latency_mean_is_gated_by_bca_and_its_skew_shortfall_is_pinned():
    # A latency mean is no share, whatever its values: 24 items around 0.3 s (lognormal
    # sigma 0.4 across items), the candidate x lognormal(s = 0.15), a true increase equal to
    # the margin (0.03 s). Every run goes through BCa now (the values alone chose the [0, 1]
    # interval in the 93% of these runs whose items all stayed under 1 s). The gate reads the
    # upper bound, BCa's either way: 4.1% pass now, 4.0% when the values chose (4000 runs,
    # s.e. 0.3%; 4.5% in 10,000 other runs); the shortfall is BCa's on a right-skewed mean
    # difference at small n (the skewed means in docs/ci-gating.md), 2.8% at 40 and 2.9% at
    # 100 items. Not fixed: on the same draws the t interval passes 4.5%, bootstrap-t 4.3%,
    # the wider of BCa and t 3.9%, of BCa and bootstrap-t 4.2% (10,000 runs). These 2000
    # runs: 4.2%; pinned above 3.2%, so that a fix (or a worse interval) shows up here.
    rng = np.random.default_rng(11)
    n, reps, margin, sigma, s = 24, 2000, 0.03, 0.4, 0.15
    mean_a = 0.3 * math.exp(sigma * sigma / 2)
    mu = math.log(1 + margin / mean_a) - s * s / 2  # E[b - a] = margin
    passes = 0
    for _ in range(reps):
        a = 0.3 * np.exp(sigma * rng.standard_normal(n))
        b = a * np.exp(mu + s * rng.standard_normal(n))
        ob, oc = cal._outputs(n, np.ones(n, dtype=bool))
        suite_result = {"name": "l", "scorers": {}, "models": {"base": cal._latency_mean_model(a, ob),
                                                                "cand": cal._latency_mean_model(b, oc)}}
        gates, _ = evaluate_gates(cal._suite({"latency": {"max_drop_vs_base": margin}}), suite_result, None)
        (gate,) = gates
        assert gate["details"]["method"].startswith("paired BCa bootstrap"), gate["details"]["method"]
        passes += gate["passed"]
    p, _ = _rate(passes, reps)
    assert 0.032 < p < 0.06, f"{passes}/{reps} passed at the boundary"
