"""A delta built from two point estimates (a peak memory's max, no interval on either side)
says so in a key, ``point_only``, and the readers (the scorecard's cell, ``direction``) read
the key, not the method's wording: a point is no evidence of a change. ``harness compare
--fail-on-regression`` still fails one whose point is worse, as a gate would, and says so."""

from __future__ import annotations

from factories import model_result, results, schema_def_validator, suite_result
from harness import compare
from harness.compare import direction, has_interval
from harness.reports.html import _delta_cell
from harness.runs import compare_runs, format_comparison, regressions


def test_a_point_only_delta_says_so_in_a_key():
    point = compare._mover({"value": 1.0}, {"value": 1.5})
    assert point["point_only"] is True and not has_interval(point)
    reported = compare._mover({"value": 1.0, "ci_low": 0.9, "ci_high": 1.1},
                              {"value": 1.5, "ci_low": 1.4, "ci_high": 1.6})
    assert reported["point_only"] is False and has_interval(reported)
    assert direction(reported, True) == "better"
    for delta in (point, reported):
        assert list(schema_def_validator("delta").iter_errors(delta)) == []
    assert list(schema_def_validator("delta").iter_errors(dict(point, point_only="yes")))


def test_the_key_decides_not_the_method_s_wording():
    # a method reworded (or translated) kept the point's colour: 'better' on no evidence
    reworded = dict(compare._mover({"value": 1.0}, {"value": 1.5}), method="two numbers, no interval")
    assert not has_interval(reworded) and direction(reworded, True) == ""
    cell = _delta_cell(reworded, True)
    assert cell["ci"] == "(no interval)" and cell["cls"] == ""


def test_a_delta_stored_before_the_key_is_read_from_its_method():
    legacy = {k: v for k, v in compare._mover({"value": 1.0}, {"value": 1.5}).items() if k != "point_only"}
    assert legacy["method"] == compare.POINT_ONLY
    assert not has_interval(legacy) and direction(legacy, True) == ""
    assert has_interval({"method": "paired BCa bootstrap (2000 resamples of items, seed 0)",
                         "ci_low": 0.1, "ci_high": 0.2})


def _run_with_peak(peak_gb: float, path: str) -> dict:
    """A run whose one model reports a peak memory with no interval (latency's ``.max``)."""
    model = model_result({"q1": True, "q2": True})
    model["metrics"]["latency.peak_memory_gb.max"] = {"value": peak_gb, "ci_low": None, "ci_high": None, "n": 2,
                                                     "kind": "max", "higher_is_better": False}
    run = results([suite_result({"ft": model})])
    run["_path"] = path
    return run


def test_compare_fails_a_point_only_regression_and_says_it_read_points():
    """As a gate reads it (the point as an interval of width 0: a rel_tolerance gate on peak
    memory fails when the point is past its margin), --fail-on-regression fails a peak memory
    that grew (its margin is 0), and the line says the call is on two numbers, not an
    interval: it read 'worse, Δ +0.500 [+0.500, +0.500]', an interval in form."""
    cmp = compare_runs(_run_with_peak(1.0, "a/results.json"), _run_with_peak(1.5, "b/results.json"))
    (line,) = regressions(cmp)
    assert line.startswith("smoke / ft / latency.peak_memory_gb.max: worse on point estimates only"), line
    assert "[" not in line and "1.000 -> 1.500" in line
    (row,) = [r for r in format_comparison(cmp).splitlines() if "peak_memory_gb.max" in r]
    assert row.endswith("(no interval)  WORSE (point estimates only)"), row
    assert regressions(compare_runs(_run_with_peak(1.5, "a/results.json"), _run_with_peak(1.0, "b/results.json"))) == []
    assert regressions(compare_runs(_run_with_peak(1.0, "a/results.json"), _run_with_peak(1.0, "b/results.json"))) == []


def test_a_gate_on_a_point_only_delta_does_not_call_the_points_an_interval():
    """A tolerance gate reads a point-only delta's bounds, the point twice: it fails when the
    point is past the margin. Its reason said '95% CI +0.200 to +0.200', an interval that was
    never computed; the rule and the verdict are unchanged."""
    from harness.gates import _delta_gate

    point = compare._mover({"value": 1.0, "n": 24}, {"value": 1.2, "n": 24})
    for tolerance, passed in ((0.25, True), (0.1, False)):
        ok, reason, _ = _delta_gate("latency.peak_memory_gb.max", "ft", "base", point, "rel_tolerance_vs_base",
                                    tolerance, False)
        assert ok is passed and "95% CI" not in reason, reason
        assert "(point estimates only, no interval: the point decides, unpaired, n=24" in reason, reason
    reported = compare._mover({"value": 1.0, "ci_low": 0.9, "ci_high": 1.1, "n": 24},
                              {"value": 1.2, "ci_low": 1.1, "ci_high": 1.3, "n": 24})
    _, reason, _ = _delta_gate("m", "ft", "base", reported, "rel_tolerance_vs_base", 0.5, False)
    assert "95% CI +0.059 to +0.341" in reason, reason


def test_compare_html_calls_a_point_only_regression_as_the_text_does(tmp_path):
    """compare.html left a peak memory that grew uncoloured, while `harness compare` printed
    'WORSE (point estimates only)' and --fail-on-regression failed it: two verdicts on one
    comparison. The page now colours it through the same ``direction(..., points=True)`` and
    says the same words; an unchanged or smaller peak stays uncalled."""
    from harness.reports import write_compare_report

    def row(a_gb: float, b_gb: float, folder: str) -> str:
        cmp = compare_runs(_run_with_peak(a_gb, "a/results.json"), _run_with_peak(b_gb, "b/results.json"))
        html = write_compare_report(cmp, tmp_path / folder).read_text(encoding="utf-8")
        return html.split("latency.peak_memory_gb.max</td>", 1)[1].split("</tr>", 1)[0]  # its row

    grew = row(1.0, 1.5, "grew")
    assert '<span class="worse" title="point estimates only (no interval reported)">+0.500</span>' in grew, grew
    assert "(no interval)" in grew and '<span class="worse">worse (point estimates only)</span>' in grew, grew
    shrank = row(1.5, 1.0, "shrank")
    assert '<span class="better" title' in shrank and "better (point estimates only)" in shrank, shrank
    same = row(1.0, 1.0, "same")
    assert '<span class="" title' in same and "point estimates only)</span>" not in same, same
