"""An independent, hand-labelled set of SQL, JSON and repetition cases
(tests/data/labelled/), scored through the real `harness score` command: the scorers
must agree with every label.

The labels were written by reasoning about each case against the references
(WikiSQL's lib/query.py and lib/dbengine.py, RFC 8259, the repetition definition in
docs/scorers.md), not by running the scorers; each line's `why` says the reasoning.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.validation import RESULTS_SCHEMA, _validator
from conftest import ROOT, run_harness

LABELLED = ROOT / "tests" / "data" / "labelled"
MINIMUM = {"sql": 20, "json": 20, "repetition": 15}


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (LABELLED / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]


def scored(name: str, tmp_path: Path) -> dict[str, dict]:
    """Item id -> the item of results.json, from `harness score` on the labelled outputs."""
    completions = tmp_path / f"{name}.completions.jsonl"
    completions.write_text("".join(json.dumps({"id": r["id"], "output": r["output"],
                                               "finish_reason": r["finish_reason"]}) + "\n"
                                   for r in rows(name)), encoding="utf-8")
    out = tmp_path / name
    proc = run_harness("score", str(LABELLED / f"{name}.yaml"), "--completions", str(completions),
                       "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert not list(_validator(RESULTS_SCHEMA).iter_errors(results))
    return {i["id"]: i for i in results["suites"][0]["models"]["base"]["items"]}


def disagreements(name: str, tmp_path: Path, got) -> list[str]:
    items = scored(name, tmp_path)
    out = []
    for row in rows(name):
        for key, want in row["label"].items():
            have = got(items[row["id"]], key)
            if have != want:
                out.append(f"{row['id']}: {key} labelled {want!r}, scored {have!r} "
                           f"({row['why']}) | {json.dumps(items[row['id']]['scores'])[:300]}")
    return out


@pytest.mark.parametrize("name", sorted(MINIMUM))
def test_the_labelled_sets_are_big_enough_and_ids_unique(name):
    ids = [r["id"] for r in rows(name)]
    assert len(ids) >= MINIMUM[name] and len(set(ids)) == len(ids)
    assert all(r["why"] and r["label"] for r in rows(name))


def test_sql_scorers_agree_with_every_label(tmp_path):
    assert disagreements("sql", tmp_path, lambda item, key: item["scores"][key]["passed"]) == []


def test_json_scorer_agrees_with_every_label(tmp_path):
    def got(item, key):
        score = item["scores"]["json_schema"]
        return score["extra"]["json_class"] if key == "json_class" else score["passed"]

    assert disagreements("json", tmp_path, got) == []


def test_repetition_scorer_agrees_with_every_label(tmp_path):
    def got(item, key):
        score = item["scores"]["repetition"]
        return score["passed"] if key == "repetition" else score["metrics"]["loop"] == 1.0

    assert disagreements("repetition", tmp_path, got) == []
