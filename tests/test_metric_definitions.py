"""One definition per metric: directions from one place (and docs/scorers.md agrees),
repetition identical in `harness eval` and `harness score`, token metrics pooled so that
exp(nll) is the perplexity."""

from __future__ import annotations

import json
import math
import re

import pytest

from harness.metrics import higher_is_better, scorer_metrics
from harness.scorers import REGISTRY
from harness.validation import RESULTS_SCHEMA, _validator
from conftest import FIXTURE_MODEL, ROOT, run_harness
from test_validation import _scores_of

ROW = re.compile(r"^\| `([a-z_0-9.]+)` \| (\w+) \| (higher|lower) \|", re.M)


def documented() -> dict[str, tuple[str, bool]]:
    text = (ROOT / "docs" / "scorers.md").read_text(encoding="utf-8")
    return {name: (kind, better == "higher") for name, kind, better in ROW.findall(text)}


def emitted() -> dict[str, tuple[str, bool]]:
    out = {"sql_exact": ("proportion", True), "sql_logical_form": ("proportion", True),
           "sql_execution": ("proportion", True), "sql_execution.executed": ("mean", True),
           **{f"sql_logical_form.{part}": ("mean", True) for part in ("agg", "select", "where")}}
    for name in REGISTRY:
        if name.startswith("sql_"):
            continue
        scorer = REGISTRY[name]({"schema": {"type": "object"}} if name == "json_schema" else {})
        for metric, m in scorer_metrics(scorer, _scores_of(name)).items():
            out[metric] = (m["kind"], m["higher_is_better"])
    return out


def test_the_docs_table_lists_every_metric_with_the_code_s_kind_and_direction():
    docs, code = documented(), emitted()
    assert len(docs) > 30
    assert set(docs) == set(code), set(docs) ^ set(code)
    for name, (kind, hib) in code.items():
        assert docs[name] == (kind, hib), name
        assert higher_is_better(name) is hib, name  # the one place, as results.json records it


def test_the_docs_table_says_which_metrics_are_shares_as_the_scorers_declare():
    from harness.metrics import in_unit_interval

    text = (ROOT / "docs" / "scorers.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_0-9.]+)` \| \w+ \| (?:higher|lower) \| ([^|]+?) \|", text, re.M)
    assert {name for name, _ in rows} == set(documented())
    assert {name: values for name, values in rows} == {
        name: "[0, 1]" if in_unit_interval(name) else "any" for name, _ in rows}
    assert {values for _, values in rows} == {"[0, 1]", "any"}


def test_directions_of_the_metrics_that_were_contradictory():
    assert higher_is_better("repetition") is True  # share of items that did not collapse
    assert higher_is_better("repetition.seq_rep") is False and higher_is_better("repetition.loop") is False
    assert higher_is_better("token_accuracy.nll") is False and higher_is_better("latency.ttft_s.p95") is False
    assert higher_is_better("latency.decode_tps.p50") is True
    gating = (ROOT / "docs" / "ci-gating.md").read_text(encoding="utf-8")
    assert "repetition: lower" not in gating


def test_eval_and_score_agree_on_repetition_and_token_metrics_are_pooled(tmp_path):
    out = tmp_path / "eval"
    env = {"HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    proc = run_harness("eval", "suites/repetition.yaml", "suites/sql.yaml",
                       "--model", str(FIXTURE_MODEL), "--out", str(out), env=env)
    assert proc.returncode in (0, 1), proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert not list(_validator(RESULTS_SCHEMA).iter_errors(results))
    suites = {s["name"]: s for s in results["suites"]}

    metrics = suites["sql"]["models"]["base"]["metrics"]
    nll, ppl = metrics["token_accuracy.nll"], metrics["token_accuracy.perplexity"]
    assert math.exp(nll["value"]) == pytest.approx(ppl["value"], rel=1e-12)
    assert math.exp(nll["ci_high"]) == pytest.approx(ppl["ci_high"], rel=1e-12)
    items = suites["sql"]["models"]["base"]["items"]
    assert all("token_accuracy" in i["scores"] for i in items)  # per-item values stay

    rep = suites["repetition"]["models"]["base"]
    completions = tmp_path / "c.jsonl"
    completions.write_text("".join(json.dumps({"id": i["id"], "output": i["output"],
                                               "finish_reason": i["finish_reason"]}) + "\n"
                                   for i in rep["items"]))
    proc = run_harness("score", "suites/repetition.yaml", "--completions", str(completions),
                       "--out", str(tmp_path / "score"))
    assert proc.returncode in (0, 1), proc.stderr
    scored = json.loads((tmp_path / "score" / "results.json").read_text())["suites"][0]["models"]["base"]
    assert [i["id"] for i in scored["items"]] == [i["id"] for i in rep["items"]]
    for a, b in zip(rep["items"], scored["items"]):
        assert a["scores"]["repetition"] == b["scores"]["repetition"]
    for name in ("repetition", "repetition.seq_rep", "repetition.loop"):
        assert rep["metrics"][name] == scored["metrics"][name]


def _token_model(rows: list[tuple[int, int, float]]) -> dict:
    """A results.json model entry from (hits, target tokens, nll sum) per item."""
    from harness.scorers.token_accuracy import _score

    scorer = REGISTRY["token_accuracy"]({})
    scores = [_score(*r) for r in rows]
    items = [{"id": f"q{i}", "category": None, "scores": {"token_accuracy": s.to_json()}}
             for i, s in enumerate(scores)]
    return {"fingerprint": "x", "metrics": scorer_metrics(scorer, scores), "items": items}


def test_paired_deltas_of_pooled_metrics_are_differences_of_the_pooled_values():
    from harness.compare import model_view, paired_delta

    # lengths 2..40 tokens: pooled and item-mean values differ a lot
    ref = _token_model([(1, 2, 3.0), (30, 40, 20.0), (2, 5, 6.0), (9, 10, 2.0)])
    cand = _token_model([(2, 2, 1.0), (20, 40, 35.0), (4, 5, 3.0), (9, 10, 2.5)])
    for metric in ("token_accuracy", "token_accuracy.nll"):
        d = paired_delta(model_view(ref), model_view(cand), metric)
        assert d["ref_value"] == pytest.approx(ref["metrics"][metric]["value"], rel=1e-12)
        assert d["cand_value"] == pytest.approx(cand["metrics"][metric]["value"], rel=1e-12)
        assert d["diff"] == pytest.approx(cand["metrics"][metric]["value"] - ref["metrics"][metric]["value"])
        assert d["ci_low"] <= d["diff"] <= d["ci_high"] and d["statistic"] == "pooled"
    # other weights per item (another tokenizer): the item values are paired as before
    other = _token_model([(1, 3, 3.0), (30, 41, 20.0), (2, 5, 6.0), (9, 10, 2.0)])
    assert paired_delta(model_view(ref), model_view(other), "token_accuracy")["statistic"] == "mean"


def test_a_plugin_scorer_decides_the_direction_of_its_metrics(monkeypatch):
    from harness.scorers import Scorer
    from harness.scorers import plugins

    class Typos(Scorer):
        name = "typos"
        lower_is_better = frozenset({"typos", "per_100_words"})

    monkeypatch.setattr(plugins, "load_plugin", lambda name: Typos if name == "typos" else None)
    assert higher_is_better("typos") is False and higher_is_better("typos.per_100_words") is False
    assert higher_is_better("typos.fixed") is True and higher_is_better("unknown.metric") is True
