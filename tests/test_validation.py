"""results.json and baseline files are checked against their schemas before they are
written; the schemas cover every metric kind the scorers emit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import jsonschema
import pytest

from harness.metrics import KINDS, scorer_metrics
from harness.scorers import REGISTRY, Item, Score
from harness.case import Case
from harness.errors import HarnessError
from harness.validation import (BASELINE_SCHEMA, RESULTS_SCHEMA, OutputSchemaError, _validator,
                                check_output, load_schema)
from conftest import ROOT, run_harness
from factories import model_result, results, suite_result


def metric_validator():
    defs = load_schema(RESULTS_SCHEMA)["$defs"]
    return jsonschema.Draft202012Validator({"$defs": defs, "$ref": "#/$defs/metric"})


def test_schema_kinds_are_exactly_the_metric_kinds():
    enum = load_schema(RESULTS_SCHEMA)["$defs"]["metric"]["properties"]["kind"]["enum"]
    assert sorted(enum) == sorted(KINDS)


def _item(output: str, target: str | None = "4", stats: dict | None = None) -> Item:
    case = Case(id="c", index=0, category=None, record={"concepts": ["4", ["no", "yes"]]}, prompt="p",
                target=target)
    return Item(case=case, output=output, finish_reason="stop", stats=stats or {})


def _scores_of(name: str) -> list[Score]:
    if name == "token_accuracy":
        from harness.scorers.token_accuracy import _score

        return [_score(3, 4, 2.0), _score(1, 5, 7.5)]
    if name == "latency":
        stats = {"ttft_s": 0.01, "prompt_tps": 900.0, "decode_tps": 120.0, "total_s": 0.2,
                 "peak_memory_gb": 0.1, "prompt_tokens": 9, "output_tokens": 20}
        return [REGISTRY[name]({}).score(_item("x", stats=stats)) for _ in range(30)]
    scorer = REGISTRY[name]({"schema": {"type": "object"}} if name == "json_schema" else {})
    return [scorer.score(_item(o)) for o in ("4", '{"a": 1}', "no no no no no no no no no no")]


# The SQL scorers need a WikiSQL table per item: their results.json is validated end to end
# by tests/test_labelled_agreement.py (through `harness score`).
@pytest.mark.parametrize("name", sorted(n for n in REGISTRY if not n.startswith("sql_")))
def test_every_scorers_metrics_fit_the_schema(name):
    scorer = REGISTRY[name]({"schema": {"type": "object"}} if name == "json_schema" else {})
    scores = _scores_of(name)
    metrics = scorer_metrics(scorer, scores)
    assert metrics
    validator = metric_validator()
    for metric_name, m in metrics.items():
        errors = [e.message for e in validator.iter_errors(m)]
        assert not errors, (metric_name, errors)
        assert m["kind"] in KINDS


def test_check_output_refuses_a_bad_document_with_the_validation_message(tmp_path):
    run = results([suite_result({"base": model_result({"q1": True, "q2": False})})])
    check_output(run, RESULTS_SCHEMA, tmp_path / "results.json")  # a good run passes
    run["suites"][0]["models"]["base"]["metrics"]["exact_match"]["kind"] = "perplexity"
    with pytest.raises(OutputSchemaError, match=r"suites/0/models/base/metrics/exact_match/kind: "
                                                r"'perplexity' is not one of"):
        check_output(run, RESULTS_SCHEMA, tmp_path / "results.json")


def test_a_scorer_emitting_an_unknown_kind_is_exit_3_and_nothing_is_written(tmp_path):
    """The run stops before writing: no results.json, no report (a bug, not bad input)."""
    rows = [{"id": i, "output": o} for i, o in
            (("add-1", "4"), ("add-2", "15"), ("mul-1", "12"), ("cap-1", "paris"), ("col-1", "blue"),
             ("day-1", "seven"))]
    completions = tmp_path / "c.jsonl"
    completions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import sys
        from harness.scorers.exact_match import ExactMatch
        ExactMatch.aggregate = lambda self, scores: {{"exact_match.odd": {{
            "value": 1.0, "ci_low": None, "ci_high": None, "n": 1, "kind": "odd", "higher_is_better": True}}}}
        from harness.cli import main
        sys.exit(main(["score", "suites/smoke.yaml", "--completions", {str(completions)!r}, "--out", {str(out)!r}]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "internal error" in proc.stderr and "results.schema.json" in proc.stderr
    assert "'odd' is not one of" in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_score_run_results_validate(tmp_path):
    rows = [{"id": i, "output": o} for i, o in
            (("add-1", "4"), ("add-2", "15"), ("mul-1", "12"), ("cap-1", "paris"), ("col-1", "blue"),
             ("day-1", "seven"))]
    completions = tmp_path / "c.jsonl"
    completions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    proc = run_harness("score", "suites/smoke.yaml", "--completions", str(completions), "--out", str(tmp_path / "o"))
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    assert not list(_validator(RESULTS_SCHEMA).iter_errors(doc))


def test_approved_baseline_validates_and_a_broken_one_is_refused(tmp_path):
    from harness.baseline import approve, load_baseline
    from harness.errors import HarnessError

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(
        results([suite_result({"base": model_result({"q1": True, "q2": False})})])))
    path = approve(run_dir, tmp_path / "b.json")
    doc = json.loads(path.read_text())
    assert not list(_validator(BASELINE_SCHEMA).iter_errors(doc))
    load_baseline(path)
    doc["suites"][0]["models"]["base"]["items"][0]["values"]["exact_match"] = "yes"
    path.write_text(json.dumps(doc))
    with pytest.raises(HarnessError, match=r"values/exact_match: 'yes' is not of type"):
        load_baseline(path)


def test_approve_refuses_to_write_a_baseline_that_fails_its_schema(tmp_path, monkeypatch):
    """An edited results.json is bad input, refused as it is read (exit 2, naming the field);
    were a bad document to get past that, the output check still refuses to write it."""
    import harness.baseline
    from harness.baseline import approve

    run = results([suite_result({"base": model_result({"q1": True})})])
    run["suites"][0]["models"]["base"]["metrics"]["exact_match"]["n"] = -1
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(run))
    with pytest.raises(HarnessError, match="suites/0/models/base/metrics/exact_match/n"):
        approve(run_dir, tmp_path / "b.json")
    monkeypatch.setattr(harness.baseline, "load_results", lambda p: json.loads(p.read_text()))
    with pytest.raises(OutputSchemaError, match="baseline.schema.json"):
        approve(run_dir, tmp_path / "b.json")
    assert not (tmp_path / "b.json").exists()
