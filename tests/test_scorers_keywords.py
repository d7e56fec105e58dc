"""keywords: concepts with synonyms on word boundaries, modes, forbidden phrases, bad cases."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.scorers import REGISTRY, Item
from harness.case import Case
from harness.suite import load_suite

CONCEPTS = [["gateway", "api gateway"], ["8443", "port 8443"], [{"regex": r"tls|https"}]]


def item(output: str, concepts=CONCEPTS, forbidden=None, line: int | None = 7) -> Item:
    record = {"question": "q", "concepts": concepts}
    if forbidden is not None:
        record["forbidden"] = forbidden
    case = Case(id="k1", index=0, category="architecture", record=record, prompt="q", target=None,
                source_line=line)
    return Item(case=case, output=output, finish_reason="stop")


def score(output: str, options: dict | None = None, **kw):
    return REGISTRY["keywords"](options or {}).score(item(output, **kw))


def test_all_concepts_matched_after_normalisation():
    s = score("The API-Gateway listens on PORT 8443 (TLS only).")
    assert (s.value, s.passed) == (1.0, True)
    assert s.metrics == {"all": 1.0, "any": 1.0, "fraction": 1.0, "forbidden": 0.0}
    assert s.detail.startswith("matched 3/3")


def test_missing_concept_is_named_in_the_detail():
    s = score("The gateway serves HTTPS.")
    assert (s.value, s.passed) == (0.0, False)
    assert s.metrics["fraction"] == pytest.approx(2 / 3)
    assert "missing: 8443 | port 8443" in s.detail
    assert s.extra["missing"] == ["8443 | port 8443"]


def test_word_boundaries_cat_not_in_concatenate():
    assert score("we concatenate strings", concepts=[["cat"]]).passed is False
    assert score("the cat, sat", concepts=[["cat"]]).passed is True
    # a regex alternative gets word boundaries too
    assert score("concatenate", concepts=[[{"regex": "cat"}]]).passed is False
    assert score("8443x", concepts=[["8443"]]).passed is False


def test_modes_any_and_fraction_threshold():
    out = "the gateway"  # 1 of 3
    assert score(out, {"mode": "any"}).passed is True
    assert score(out, {"mode": "all"}).passed is False
    frac = score(out, {"mode": "fraction", "threshold": 0.3})
    assert frac.passed is True and frac.value == pytest.approx(1 / 3)
    frac = score(out, {"mode": "fraction", "threshold": 0.5})
    assert frac.passed is False and "below threshold 0.5" in frac.detail
    assert score("nothing relevant", {"mode": "any"}).passed is False


def test_forbidden_phrase_fails_the_item():
    s = score("gateway on port 8443 over tls, or port 8080", forbidden=["8080"])
    assert (s.value, s.passed) == (0.0, False)
    assert s.metrics["forbidden"] == 1.0 and s.metrics["all"] == 1.0
    assert "forbidden found: 8080" in s.detail
    # suite-wide forbidden phrases from the options
    s = score("gateway 8443 tls as an AI model", {"forbidden": ["as an ai"]})
    assert s.passed is False
    assert score("gateway 8443 tls", {"forbidden": ["as an ai"]}).passed is True


SUITE = """name: kw
prompt: "{{ question }}"
scorers:
  - keywords: {}
"""


def test_a_bad_case_fails_the_suite_load_naming_file_line_and_field(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text('{"question": "a", "concepts": [["ok"]]}\n'
                    '{"question": "b", "concepts": [["ok"], [{"regex": "("}]]}\n')
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE + "data: qa.jsonl\n")
    with pytest.raises(HarnessError) as err:
        load_suite(suite)
    assert (err.value.path, err.value.line, err.value.field) == (str(data), 2, "concepts[1][0].regex")
    assert "invalid regular expression" in err.value.message

    suite.write_text(SUITE + "cases:\n  - {question: a, concepts: [[ok]]}\n  - {question: b, concepts: [[ok], []]}\n")
    with pytest.raises(HarnessError) as err:
        load_suite(suite)
    assert (err.value.path, err.value.line, err.value.field) == (str(suite), 7, "concepts[1]")

    suite.write_text(SUITE + "cases:\n  - {question: a}\n")
    with pytest.raises(HarnessError) as err:
        load_suite(suite)
    assert err.value.field == "concepts" and "no `concepts` field" in err.value.message


def test_a_bad_case_built_in_code_is_one_clear_error():
    with pytest.raises(HarnessError) as err:
        REGISTRY["keywords"]({}).score_all([item("x", concepts=[["ok"], [{"regex": "("}]])])
    assert err.value.field == "concepts[1][0].regex" and "(line 7)" in err.value.message
    with pytest.raises(HarnessError) as err:
        REGISTRY["keywords"]({}).score(item("x", concepts="gateway"))
    assert "expected a list of concepts" in err.value.message


def test_options_checked_at_load(tmp_path):
    with pytest.raises(HarnessError) as err:
        REGISTRY["keywords"]({"forbidden": ["!!!"]}).check(tmp_path / "s.yaml", 3, "scorers[0].keywords")
    assert err.value.field == "scorers[0].keywords.forbidden[0]" and err.value.line == 3


def test_docs_scorers_md_documents_every_option_with_its_default_and_a_case_that_scores_as_it_says():
    """docs/scorers.md described every scorer but this one: a user writing a keywords suite from
    the docs had no case format (`concepts`, `forbidden`) and no options (`mode`, `threshold`)."""
    import json
    import re

    from conftest import ROOT

    text = (ROOT / "docs" / "scorers.md").read_text(encoding="utf-8")
    section = text.split("## Keywords (`keywords`)", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| `?([^|`]+?)`? \|", section, re.M))
    props = REGISTRY["keywords"].options_schema["properties"]
    assert set(rows) == set(props)
    for name, spec in props.items():
        assert rows[name] == (str(spec["default"]) if "default" in spec else "none"), name
    record = json.loads(section.split("```json", 1)[1].split("```", 1)[0])
    case = Case(id=record["id"], index=0, category=None, record=record, prompt="q", target=None)
    scorer = REGISTRY["keywords"]({})
    assert scorer.score(Item(case=case, output="The API gateway: port 8443.", finish_reason="stop")).passed
    assert not scorer.score(Item(case=case, output="gateway on 8443, not 8080", finish_reason="stop")).passed
