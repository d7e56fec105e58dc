"""The gate's calibration (fast version of `nox -s calibration`): a candidate whose true
drop equals the margin must pass at most 2.5% of the time; identical outputs never fail."""

from __future__ import annotations

import pytest

from harness import calibration as cal
from harness.stats import tango_paired_ci


@pytest.mark.parametrize("n,down,up", [(n, d, u) for n in (40, 100, 500) for d, u in ((0.05, 0.0), (0.10, 0.05))]
                         + [(40, 0.20, 0.15), (100, 0.20, 0.15)])
def test_exact_false_pass_at_the_margin_is_at_most_2_5_percent(n, down, up):
    # Exact (trinomial sum), no simulation error. The percentile bootstrap this replaced
    # passed 9-14% of such candidates at n=100. Tango's test is asymptotic: the worst case
    # found is 2.52% (n=40, 35% of items flipping), hence the 0.05-point tolerance.
    p = cal.exact_pass_probability(n, down, up)
    assert p <= 0.0255
    # ...and the gate is not trivially strict: a much smaller drop passes more often.
    assert cal.exact_pass_probability(n, down - 0.05 + 0.0, up) >= p


def test_gate_simulation_meets_the_targets():
    rows = cal.run(ns=(100,), reps=120, seed=3)
    assert not cal.check(rows, z=3.0), cal.format_rows(rows)
    kinds = {r.kind for r in rows}
    assert kinds == {"boundary", "aa_identical", "aa_churn", "regression_2x", "power_2x"}
    (identical,) = [r for r in rows if r.kind == "aa_identical"]
    assert identical.passed == identical.reps
    text = cal.format_rows(rows)
    assert "False passes at the boundary" in text and "identical outputs" in text


def test_the_gate_is_the_tango_interval():
    # Through evaluate_gates, a run passes exactly when Tango's lower bound clears -margin.
    import numpy as np

    rng = np.random.default_rng(11)
    for _ in range(25):
        n = 60
        cell = rng.choice(4, size=n, p=[0.6, 0.08, 0.04, 0.28])
        base, cand = (cell == 0) | (cell == 1), (cell == 0) | (cell == 2)
        ob, oc = cal._outputs(n, np.ones(n, dtype=bool))
        expect = tango_paired_ci(int((cell == 1).sum()), int((cell == 2).sum()), n)[0] >= -cal.MARGIN
        assert cal.gate_passes(cal._binary_model(base, ob), cal._binary_model(cand, oc), "exact_match") == expect


def test_textbook_power_matches_the_exact_rate():
    for n in (100, 500):
        assert abs(cal.exact_pass_probability(n, 0.05, 0.05) - cal.textbook(n, 0.05, 0.05)) < 0.05


def test_cli_boundary_candidates_rarely_pass(tmp_path):
    # Through `harness score`; the full 300-candidate check is in `nox -s calibration`.
    passed = cal.cli_check(tmp_path, reps=8, n=100, seed=1)
    assert passed <= 1


def test_latency_rows_go_through_the_gate_and_the_p95_bound_misses_less_than_bca():
    # The latency rows of `nox -s calibration` (4,000 / 2,000 runs there), tiny here.
    rows = cal.run_latency(p95_reps=80, mean_reps=80, seed=0, mean_ns=(24,))
    p95 = [r for r in rows if r.kind == "p95_upper"]
    mean = {r.scenario: r for r in rows if r.kind == "latency_mean"}
    assert [(r.n, r.reps) for r in p95] == [(24, 80), (24, 80)]
    # The gate's bound is the wider of BCa and the expanded percentile: never misses more
    # often than BCa alone on the same draws, and on these draws strictly less often.
    assert all(r.gate <= r.bca for r in p95), cal.format_latency(rows)
    assert sum(r.gate for r in p95) < sum(r.bca for r in p95), cal.format_latency(rows)
    assert all(r.gate_rate <= 0.15 for r in p95)
    # The mean gate passes more often the smaller the true increase; at the boundary rarely.
    boundary, half, none = (mean[f"mean, {k}"].gate_rate for k in
                            ("boundary (increase = margin)", "half the margin", "no change"))
    assert boundary <= 0.15 and boundary < half < none and none >= 0.4, cal.format_latency(rows)
    assert not cal.check_latency(rows, z=3.0)
    text = cal.format_latency(rows)
    assert "Latency p95" in text and "BCa alone" in text and "Latency mean" in text


def test_latency_check_flags_a_p95_bound_that_misses_too_often():
    row = cal.LatencyRow("p95_upper", "p95, 10.5% slower, rho 0.8", 24, 2000, gate=120, bca=150)
    (problem,) = cal.check_latency([row])
    assert "120/2000" in problem
    assert not cal.check_latency([cal.LatencyRow("latency_mean", "mean, boundary", 24, 2000, gate=120)])
