"""A delta built from two point estimates (a peak memory's max, no interval on either side)
says so in a key, ``point_only``, and the readers (the scorecard's cell, ``direction``) read
the key, not the method's wording: a point is no evidence of a change."""

from __future__ import annotations

import jsonschema

from harness import compare
from harness.compare import direction, has_interval
from harness.reports.html import _delta_cell
from harness.validation import RESULTS_SCHEMA, load_schema


def _delta_validator() -> jsonschema.Draft202012Validator:
    defs = load_schema(RESULTS_SCHEMA)["$defs"]
    return jsonschema.Draft202012Validator({"$defs": defs, "$ref": "#/$defs/delta"})


def test_a_point_only_delta_says_so_in_a_key():
    point = compare._mover({"value": 1.0}, {"value": 1.5})
    assert point["point_only"] is True and not has_interval(point)
    reported = compare._mover({"value": 1.0, "ci_low": 0.9, "ci_high": 1.1},
                              {"value": 1.5, "ci_low": 1.4, "ci_high": 1.6})
    assert reported["point_only"] is False and has_interval(reported)
    assert direction(reported, True) == "better"
    for delta in (point, reported):
        assert list(_delta_validator().iter_errors(delta)) == []
    assert list(_delta_validator().iter_errors(dict(point, point_only="yes")))


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
