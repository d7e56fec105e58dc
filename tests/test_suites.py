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


def _score_pair(tmp_path, suite: str, base: dict[str, str], candidate: dict[str, str], *options: str):
    """`harness score` of a base and a candidate's stored outputs on a shipped suite (with
    ``options``, e.g. ``--baseline FILE``): (exit code, the candidate's failed gates as
    METRIC/KIND)."""
    from conftest import run_harness

    tmp_path.mkdir(parents=True, exist_ok=True)
    completions = tmp_path / "c.jsonl"
    completions.write_text("".join(json.dumps({"id": i, "output": o, "model": m, "finish_reason": "stop"}) + "\n"
                                   for m, outs in (("base", base), ("candidate", candidate))
                                   for i, o in outs.items()), encoding="utf-8")
    out = tmp_path / "out"
    proc = run_harness("score", str(SUITES / f"{suite}.yaml"), "--completions", str(completions), "--out", str(out),
                       *options)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    results = json.loads((out / "results.json").read_text())
    failed = {f"{g['metric']}/{g['kind']}" for g in results["suites"][0]["gates"]
              if not g["passed"] and g["model"] == "candidate"}
    return proc.returncode, failed


def test_domain_gate_fails_an_adapter_that_forgot_what_the_base_knew(tmp_path):
    """The fixture base knows 9 of the 64 facts (0.141). An adapter that forgets all nine
    (the regress, forgetful and looping adapters: 0.000, 95% CI -0.246 to -0.076) passed the
    0.25 margin against the base, which no adapter could fail at that base rate."""
    suite = _suite("domain_qa")
    known = {c.id for c in suite.cases[:63:7]}
    assert len(known) == 9
    base = {c.id: (c.target if c.id in known else "I am not sure.") for c in suite.cases}
    code, failed = _score_pair(tmp_path / "forgot", "domain_qa", base, {c.id: "I am not sure." for c in suite.cases})
    assert code == 1 and failed == {"keywords/max_drop_vs_base"}, failed
    # the sql adapter's noise (4 of the nine lost, 2 others gained) still passes
    noisy = dict(base)
    for c in suite.cases[:63:7][:4]:
        noisy[c.id] = "I am not sure."
    for c in suite.cases[1:3]:
        noisy[c.id] = c.target
    code, failed = _score_pair(tmp_path / "noisy", "domain_qa", base, noisy)
    assert code == 0 and not failed, failed


def test_domain_gate_fails_a_release_that_lost_a_third_of_one_category(tmp_path):
    """Suite-wide, a release of the domain adapter that lost 8 of its 14 operations facts
    (0.828 -> 0.703) passed the 0.25 margin against the baseline; each category is now
    gated on its own items: 5 of one category lost fail, 4 (retraining noise) pass."""
    from conftest import run_harness

    suite = _suite("domain_qa")
    answers = {c.id: c.target for c in suite.cases}
    approved = tmp_path / "approved"
    _score_pair(approved, "domain_qa", answers, answers)
    baseline = tmp_path / "baseline.json"
    proc = run_harness("baseline", "approve", str(approved / "out"), "--to", str(baseline))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    operations = [c.id for c in suite.cases if c.category == "operations"]

    def release(lost: int):
        candidate = {i: ("I am not sure." if i in operations[:lost] else a) for i, a in answers.items()}
        code, failed = _score_pair(tmp_path / f"lost{lost}", "domain_qa", answers, candidate, "--baseline", str(baseline))
        return code, {gate.rsplit("/", 1)[0] for gate in failed if gate.endswith("/max_drop_vs_baseline")}

    assert release(5) == (1, {"keywords[operations]"})
    assert release(4) == (0, set())


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



@pytest.mark.parametrize("critique", [
    {**CRITIQUE, "dimensions": [{"name": "composition", "score": 7, "comment": "Room to fly into."}] * 3},
    {**CRITIQUE, "dimensions": CRITIQUE["dimensions"][:2] + [CRITIQUE["dimensions"][0]]},
    {**CRITIQUE, "image_description": " " * 12},
    {**CRITIQUE, "dimensions": [{**d, "comment": "  "} for d in CRITIQUE["dimensions"]]},
], ids=["one-dimension-thrice", "a-dimension-twice", "blank-description", "blank-comments"])
def test_json_suite_schema_refuses_degenerate_critiques(critique):
    """Schema-valid before: a critique that scores one dimension three times (a loop inside
    the JSON), or whose strings are only spaces, passed strict compliance."""
    suite = _suite("json_schema")
    scorer = make_scorer(suite.scorers[0], suite.dir)
    (score,) = scorer.score_all(_items(suite, [json.dumps(critique)]))
    assert not score.passed, score.detail


# --- repetition and latency --------------------------------------------------------------------

def test_repetition_suite_has_open_prompts_and_room_to_loop():
    suite = _suite("repetition")
    assert len(suite.cases) >= 20 and suite.generation.max_tokens >= 128
    assert [s.name for s in suite.scorers] == ["repetition"]


def test_repetition_suite_fails_an_adapter_that_writes_nothing(tmp_path):
    """Empty answers cannot loop: an adapter that stopped at once on every prompt passed the
    repetition suite, 32 of 32 'not collapsed'."""
    suite = _suite("repetition")
    base = {c.id: f"A varied answer about {c.prompt.lower()} with a beginning, a middle and an end."
            for c in suite.cases}
    code, failed = _score_pair(tmp_path, "repetition", base, {c.id: "" for c in suite.cases})
    assert code == 1 and failed == {"repetition/max_drop_vs_base"}, failed


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
