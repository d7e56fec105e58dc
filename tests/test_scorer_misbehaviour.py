"""A scorer that gives NaN, infinity or a non-bool verdict, or raises: one line naming the
scorer and the item (a plugin: exit 2 naming its suite line), never an item dropped from a
mean (NaN was skipped by the mean: a failure vanishing) nor 'not JSON compliant: nan'."""

from __future__ import annotations

import math

import pytest

from factories import make_suite
from harness.errors import HarnessError
from harness.runner import score_model
from harness.scorers import Score, Scorer, make_scorer, plugins

IDS = ["q1", "q2", "q3"]


class Odd(Scorer):
    """Passes q1; on q2 gives what the test sets."""
    name = "odd"
    lower_is_better = frozenset()
    bad: object = None

    def score(self, item):
        if item.case.id != "q2":
            return Score(1.0, True, "fine")
        if isinstance(Odd.bad, Exception):
            raise Odd.bad
        return Odd.bad


@pytest.fixture
def odd_suite(tmp_path, monkeypatch):
    monkeypatch.setattr(plugins, "load_plugin", lambda name: Odd if name == "odd" else None)
    return make_suite(tmp_path, IDS, scorer="odd")


def _score(suite):
    completions = [{"output": "x", "finish_reason": "stop"} for _ in IDS]
    return score_model(suite, [make_scorer(s, suite.dir) for s in suite.scorers], completions, "sha256:m", None)


@pytest.mark.parametrize("bad, said", [
    (Score(math.nan, None, "nan"), "value is nan, not a finite number"),
    (Score(0.0, False, "x", metrics={"m": -math.inf}), "metrics['m'] is -inf, not a finite number"),
    (Score(0.0, "no", "x"), "passed is 'no', not True, False or None"),
    ({"value": 0}, "it returned dict, not a Score"),
    (ValueError("boom"), "raised ValueError: boom"),
])
def test_a_plugin_scorer_that_misbehaves_is_named(odd_suite, bad, said):
    Odd.bad = bad
    with pytest.raises(HarnessError) as err:
        _score(odd_suite)
    text = str(err.value)
    assert said in text and "'odd'" in text and "scorers[0].odd" in text and "smoke.yaml" in text
    if not isinstance(bad, Exception):
        assert "item 'q2'" in text
    Odd.bad = Score(0.0, False, "failed")  # an honest failure scores as before
    result, _ = _score(odd_suite)
    assert result["metrics"]["odd"]["value"] == pytest.approx(2 / 3) and result["metrics"]["odd"]["n"] == 3


def test_a_built_in_scorer_giving_nan_is_an_internal_error_naming_it(tmp_path, monkeypatch):
    from harness.scorers.exact_match import ExactMatch

    monkeypatch.setattr(ExactMatch, "score", lambda self, item: Score(math.nan, None, "nan"))
    with pytest.raises(RuntimeError, match="scorer 'exact_match' gave item 'q1' a score it cannot count: value is nan"):
        _score(make_suite(tmp_path, IDS))
