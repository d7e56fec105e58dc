"""The shipped suites: each loads and validates, its data is in the project and current, and
its reference answers pass its own scorers (so a failing model is the model's fault)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jsonschema
import pytest

from harness.gates import validate_policy
from harness.scorers import REGISTRY, Item, make_scorer
from harness.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "suites"
SHIPPED = ["domain_qa", "sql", "json_schema", "repetition", "latency"]


def _suite(name: str):
    return load_suite(SUITES / f"{name}.yaml")


def _items(suite, outputs):
    return [Item(case=c, output=o, finish_reason="stop", suite_dir=suite.dir) for c, o in zip(suite.cases, outputs)]


@pytest.mark.parametrize("path", sorted(SUITES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_suite_loads_with_valid_gates(path):
    suite = load_suite(path)
    assert suite.cases and suite.scorers
    validate_policy(suite)
    for spec in suite.scorers:
        make_scorer(spec, suite.dir)


def test_all_shipped_suites_are_there():
    assert {p.stem for p in SUITES.glob("*.yaml")} >= set(SHIPPED)


# --- domain Q&A -----------------------------------------------------------------------------

def _generator():
    spec = importlib.util.spec_from_file_location("make_domain_data", ROOT / "fixtures" / "make_domain_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_domain_data_is_generated_from_the_facts_and_current():
    gen = _generator()
    for path, text in gen.outputs().items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run fixtures/make_domain_data.py"


def test_domain_suite_shape():
    suite = _suite("domain_qa")
    assert len(suite.cases) >= 60
    cats = [c.category for c in suite.cases]
    for cat in ("architecture", "debugging", "operations", "deployment"):
        assert cats.count(cat) >= 12, cat
    for case in suite.cases:
        concepts = case.record["concepts"]
        assert concepts, case.id
        assert any(isinstance(c, list) and len(c) > 1 for c in concepts), f"{case.id}: no synonyms"


def test_domain_reference_answers_pass_and_other_answers_fail():
    suite = _suite("domain_qa")
    scorer = REGISTRY["keywords"]({"mode": "all"})
    own = scorer.score_all(_items(suite, [c.target for c in suite.cases]))
    assert all(s.passed for s in own), [s.detail for s in own if not s.passed]
    # The answer of the next question answers this one almost never.
    shifted = [suite.cases[(i + 1) % len(suite.cases)].target for i in range(len(suite.cases))]
    other = scorer.score_all(_items(suite, shifted))
    assert sum(s.passed for s in other) <= 2
    assert not any(s.passed for s in scorer.score_all(_items(suite, [""] * len(suite.cases))))


def test_domain_training_data_format_and_held_out_validation():
    train = [json.loads(l) for l in (ROOT / "fixtures/data/domain/train.jsonl").read_text().splitlines()]
    valid = [json.loads(l) for l in (ROOT / "fixtures/data/domain/valid.jsonl").read_text().splitlines()]
    suite = _suite("domain_qa")
    assert all(set(r) == {"prompt", "completion"} for r in train + valid)
    assert len(train) == 3 * len(suite.cases) and len(valid) == len(suite.cases)
    assert not {r["prompt"] for r in valid} & {r["prompt"] for r in train}
    # every evaluation question is trained on, with the suite's reference answer
    pairs = {(r["prompt"], r["completion"]) for r in train}
    assert all((c.prompt, c.target) in pairs for c in suite.cases)


# --- SQL -------------------------------------------------------------------------------------

def test_sql_suite_data_is_the_wikisql_sample():
    assert (SUITES / "data/wikisql_valid.jsonl").read_bytes() == (
        ROOT / "fixtures/data/wikisql/valid.jsonl").read_bytes()


def test_sql_gold_queries_pass_every_sql_scorer():
    suite = _suite("sql")
    assert len(suite.cases) == 100 and suite.template == "raw"
    assert all(c.prompt.endswith("\nA: ") and "\ncolumns: " in c.prompt for c in suite.cases)
    items = _items(suite, [c.target for c in suite.cases])
    sql_specs = [spec for spec in suite.scorers if spec.name.startswith("sql_")]
    assert {spec.name for spec in sql_specs} == {"sql_exact", "sql_logical_form", "sql_execution"}
    for spec in sql_specs:
        scores = make_scorer(spec, suite.dir).score_all(items)
        assert all(s.passed for s in scores), (spec.name, [s.detail for s in scores if not s.passed][:3])


# --- JSON schema ---------------------------------------------------------------------------

CRITIQUE = {"image_description": "A heron taking off from a river, wings spread.",
            "dimensions": [{"name": "focus", "score": 9, "comment": "The eye is sharp."},
                           {"name": "composition", "score": 7, "comment": "Room to fly into."},
                           {"name": "lighting", "score": 6, "comment": "Flat but even."}],
            "overall_score": 7.5}


def test_json_suite_schema_and_prompts():
    suite = _suite("json_schema")
    assert len(suite.cases) >= 40
    schema = json.loads((SUITES / "schemas/photo_critique.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    scorer = make_scorer(suite.scorers[0], suite.dir)
    good, fenced, bad = scorer.score_all(_items(suite, [
        json.dumps(CRITIQUE), "```json\n" + json.dumps(CRITIQUE) + "\n```",
        json.dumps({**CRITIQUE, "overall_score": 11})]))
    assert good.passed and not fenced.passed and fenced.metrics["lenient"] == 1.0
    assert not bad.passed and "overall_score" in bad.detail
    assert all("photo" in c.record and c.category for c in suite.cases)


# --- repetition and latency --------------------------------------------------------------------

def test_repetition_suite_has_open_prompts_and_room_to_loop():
    suite = _suite("repetition")
    assert len(suite.cases) >= 20 and suite.generation.max_tokens >= 128
    assert [s.name for s in suite.scorers] == ["repetition"]


def test_latency_suite_grades_prompt_lengths_one_at_a_time():
    suite = _suite("latency")
    assert suite.generation.batch_size == 1
    scorers = [make_scorer(s, suite.dir) for s in suite.scorers]
    assert any(not s.uses_cache for s in scorers)
    by_cat: dict[str, list[int]] = {}
    for c in suite.cases:
        by_cat.setdefault(c.category, []).append(len(c.prompt))
    means = [sum(v) / len(v) for v in by_cat.values()]
    assert len(means) == 4 and means == sorted(means) and means[-1] > 8 * means[0]
    assert len({c.prompt for c in suite.cases}) == len(suite.cases)
