"""json_schema: every output class, strict vs lenient compliance, format checking, the best
error as detail, the schema from a file relative to the suite, and bad schemas at load."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.metrics import scorer_metrics
from harness.scorers import REGISTRY, Item
from harness.scorers.json_schema import CLASSES, classify
from harness.case import Case
from timing import within

SCHEMA = {
    "type": "object",
    "required": ["name", "score"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
        "reviewed_on": {"type": "string", "format": "date"},
    },
}
GOOD = '{"name": "dunes", "score": 7}'


def score(output: str, finish_reason: str = "stop", schema=SCHEMA, suite_dir=None):
    case = Case(id="j", index=0, category=None, record={}, prompt="p", target=None)
    scorer = REGISTRY["json_schema"]({"schema": schema}, suite_dir)
    return scorer, scorer.score(Item(case=case, output=output, finish_reason=finish_reason))


CLASS_CASES = [
    # (output, finish_reason, class, strict, lenient)
    (GOOD, "stop", "ok", 1.0, 1.0),
    ("\n  " + GOOD + "\n", "stop", "ok", 1.0, 1.0),
    ("```json\n" + GOOD + "\n```", "stop", "fenced", 0.0, 1.0),
    ("```" + GOOD + "```", "stop", "fenced", 0.0, 1.0),
    ("```json\n" + GOOD + "\n```\nHope this helps.", "stop", "trailing_text", 0.0, 1.0),
    ("Here is the critique:\n" + GOOD, "stop", "prefix_text", 0.0, 1.0),
    ("Sure! ```json\n" + GOOD + "\n``` Hope it helps.", "stop", "prefix_text", 0.0, 1.0),
    ("Scores (see [notes below): " + GOOD, "stop", "prefix_text", 0.0, 1.0),  # an unclosed prose bracket
    (GOOD + "\nLet me know if you need more.", "stop", "trailing_text", 0.0, 1.0),
    (GOOD + GOOD, "stop", "trailing_text", 0.0, 1.0),
    ('{"name": "dunes", "sco', "length", "truncated", 0.0, 0.0),
    ('{"name": "dunes", "score": 7', "length", "truncated", 0.0, 0.0),
    # unfinished, but generation stopped on its own: not a max_tokens problem
    ('{"name": "dunes", "score": 7', "stop", "cut_off", 0.0, 0.0),
    ('Result: {"name": "du', "stop", "cut_off", 0.0, 0.0),
    # never began a JSON value: prose, whatever the finish reason
    ("I cannot produce JSON for this.", "length", "prose", 0.0, 0.0),
    ("I cannot produce JSON for this.", "stop", "prose", 0.0, 0.0),
    ("{name: 'dunes', score: 7}", "stop", "invalid", 0.0, 0.0),
    ('{"name": "dunes", "score": 7,}', "stop", "invalid", 0.0, 0.0),  # trailing comma
    ('{"name": "du\tnes", "score": 7}', "stop", "invalid", 0.0, 0.0),  # raw tab in a string
    ('{"name": "dunes", "score": [7}', "stop", "invalid", 0.0, 0.0),  # mismatched brackets
    ('{"name": "dunes", "score": NaN}', "stop", "non_standard_number", 0.0, 0.0),
    ('{"name": "dunes", "score": -Infinity, "x": {"a": 1}}', "stop", "non_standard_number", 0.0, 0.0),
    ("", "stop", "empty", 0.0, 0.0),
]


@pytest.mark.parametrize("output,finish,cls,strict,lenient", CLASS_CASES)
def test_every_class(output, finish, cls, strict, lenient):
    _, s = score(output, finish)
    assert s.extra["json_class"] == cls
    assert (s.value, s.passed) == (strict, bool(strict))
    assert s.metrics["lenient"] == lenient
    assert s.detail.startswith(cls + ":")


def test_all_classes_are_covered_by_the_cases():
    assert {c[2] for c in CLASS_CASES} == set(CLASSES)


def test_truncation_advice_only_where_json_had_begun_and_hit_max_tokens():
    assert "raise max_tokens" in score('{"name": "du', "length")[1].detail
    for output, finish in [("Let me think about this photo", "length"), ('{"name": "du', "stop")]:
        detail = score(output, finish)[1].detail
        assert "max_tokens" not in detail.replace("not at max_tokens", ""), detail
    assert "no JSON value began" in score("Let me think about this photo", "length")[1].detail
    assert "stop strings" in score('{"name": "du', "stop")[1].detail


def test_nan_and_infinity_are_refused_although_python_json_accepts_them():
    text = '{"name": "dunes", "score": NaN}'
    assert json.loads(text)["score"] != json.loads(text)["score"]  # Python's json: accepted
    _, s = score(text)
    assert s.extra["json_class"] == "non_standard_number" and s.metrics["lenient"] == 0.0
    assert "RFC 8259" in s.detail


def test_a_bare_nan_or_huge_integer_is_not_called_prose():
    """A whole output of ``NaN`` or of a 5,000-digit integer was classed ``prose`` ("no
    JSON value began (no { or [)"): the search for JSON looked only for brackets."""
    for text in ("NaN", "-Infinity", " Infinity\n"):
        assert classify(text, "stop")[0] == "non_standard_number", text
    score = REGISTRY["json_schema"]({"schema": {"type": "integer"}}).score(
        Item(case=Case(id="a", index=0, category=None, record={}, prompt="p", target=None),
             output="-" + "7" * 5000, finish_reason="stop"))
    assert score.extra["json_class"] == "invalid" and "5,000 digits" in score.detail, score.detail
    assert classify("42 is the answer", "stop")[0] == "prose"
    assert classify("NaN is the answer", "stop")[0] == "prose"


def test_a_value_nested_in_broken_json_is_not_taken_for_the_answer():
    assert classify('{"a": NaN, "b": {"name": "x", "score": 1}}', "stop")[0] == "non_standard_number"
    assert classify('{"a": 1,, "b": {"name": "x", "score": 1}}', "stop")[0] == "invalid"


def test_schema_violations_give_the_best_error_with_its_path():
    _, s = score('{"name": "dunes", "score": 11}')
    assert s.extra["json_class"] == "ok" and s.value == 0.0 and s.metrics["lenient"] == 0.0
    assert "$.score" in s.detail and "greater than the maximum of 10" in s.detail
    _, s = score('{"name": "dunes"}')
    assert "'score' is a required property" in s.detail
    _, s = score('```json\n{"name": "dunes", "score": 3, "extra": 1}\n```')
    assert s.extra["json_class"] == "fenced" and "Additional properties" in s.detail


def test_formats_are_checked():
    _, s = score('{"name": "a", "score": 1, "reviewed_on": "2024-02-30"}')
    assert s.value == 0.0 and "is not a 'date'" in s.detail
    _, s = score('{"name": "a", "score": 1, "reviewed_on": "2024-02-29"}')
    assert s.value == 1.0


def test_class_shares_in_aggregate():
    scorer = REGISTRY["json_schema"]({"schema": SCHEMA})
    scores = [score(o, f)[1] for o, f, *_ in CLASS_CASES]
    agg = scorer_metrics(scorer, scores)  # aggregates with their directions
    n_ok = sum(c[2] == "ok" for c in CLASS_CASES)
    assert agg["json_schema.class.ok"]["value"] == pytest.approx(n_ok / len(CLASS_CASES))
    assert agg["json_schema.class.ok"]["higher_is_better"] is True
    assert agg["json_schema.class.truncated"]["higher_is_better"] is False
    assert agg["json_schema.lenient"]["higher_is_better"] is True
    assert sum(agg[f"json_schema.class.{c}"]["value"] for c in CLASSES) == pytest.approx(1.0)
    low, high = agg["json_schema.class.ok"]["ci_low"], agg["json_schema.class.ok"]["ci_high"]
    assert 0 <= low < n_ok / len(CLASS_CASES) < high <= 1


def test_classify_is_total_on_odd_text():
    for text in ["[", "]", "{{{{", '"', "```", "```json\n", "\\", "{\"a\": \"\\", "[1, 2]", "42"]:
        cls, _, _ = classify(text, "stop")
        assert cls in CLASSES
    assert classify("42", "stop")[0] == "ok"  # a scalar is JSON; the schema decides


def test_schema_from_a_file_relative_to_the_suite(tmp_path):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "s.json").write_text(json.dumps(SCHEMA))
    scorer, s = score(GOOD, schema="schemas/s.json", suite_dir=tmp_path)
    scorer.check(tmp_path / "suite.yaml", 5, "scorers[0].json_schema")
    assert s.value == 1.0


def test_missing_or_bad_schema_is_one_clear_error_at_load(tmp_path):
    suite = tmp_path / "suite.yaml"
    with pytest.raises(HarnessError) as err:
        REGISTRY["json_schema"]({"schema": "nope.json"}, tmp_path).check(suite, 5, "scorers[0].json_schema")
    assert err.value.line == 5 and err.value.field == "scorers[0].json_schema.schema"
    assert "not found" in err.value.message
    (tmp_path / "broken.json").write_text('{"type": "object",\n "properties": }')
    with pytest.raises(HarnessError) as err:
        REGISTRY["json_schema"]({"schema": "broken.json"}, tmp_path).check(suite, 5, "scorers[0].json_schema")
    assert err.value.path.endswith("broken.json") and err.value.line == 2
    with pytest.raises(HarnessError) as err:
        REGISTRY["json_schema"]({"schema": {"type": "objekt"}}, tmp_path).check(suite, 5, "scorers[0].json_schema")
    assert "not a valid Draft 2020-12 schema" in err.value.message


_OLD_OPEN_FENCE = r"```[ \t]*[A-Za-z0-9_+.-]*[ \t]*\r?\n?[ \t]*\Z"


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(["```", "`", " ", "\t", "\r", "\n", "json", "!", "{}"]), max_size=14).map("".join))
def test_the_opening_fence_is_the_regex_definition(text):
    """The opening fence before a JSON value, as the regex once found it (cubic in spaces)."""
    import re

    from harness.scorers.json_schema import open_fence_start

    old = re.search(_OLD_OPEN_FENCE, text)
    assert open_fence_start(text) == (old.start() if old else None)


@pytest.mark.parametrize("output", ["```" + " " * 99_000 + "!{}", "```" + " \t" * 49_000 + "!{}",
                                    "```json" + " " * 49_000 + "\n" + " " * 49_000 + "!{}"])
def test_spaces_after_a_fence_marker_classify_in_linear_time(output):
    """Prose between a ``` and the JSON: the opening-fence regex backtracked over the
    spaces cubically (7.4 s at 2,000 spaces, hours at 99,000)."""

    assert within(2.0, lambda: classify(output, "stop"))[0] == "prefix_text"
