"""A file a scorer reads (a JSON Schema, the files its $refs reach) is part of what a baseline
was approved under: edited afterwards, the approved scores meant something else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factories import results
from harness.baseline import check_baseline, summarize_run
from harness.errors import HarnessError
from harness.results import suite_entry
from harness.scorers import make_scorer
from harness.suite import load_suite

SUITE = """\
name: critique
prompt: "{{ q }}"
template: raw
scorers:
  - json_schema: {schema: schemas/critique.schema.json}
cases:
  - {id: c1, q: "photo 1"}
  - {id: c2, q: "photo 2"}
"""


def _write(folder: Path) -> Path:
    (folder / "schemas").mkdir(parents=True)
    (folder / "schemas" / "critique.schema.json").write_text(json.dumps(
        {"type": "object", "required": ["score"], "properties": {"score": {"$ref": "score.schema.json"}}}))
    (folder / "schemas" / "score.schema.json").write_text(json.dumps({"type": "integer", "minimum": 0}))
    (folder / "critique.yaml").write_text(SUITE)
    return folder / "critique.yaml"


def _run(path: Path) -> dict:
    suite = load_suite(path)
    entry = suite_entry(suite, [make_scorer(spec, suite.dir) for spec in suite.scorers])
    return results([dict(entry, models={})], models={"base": {"path": "m", "fingerprint": "sha256:base"}})


@pytest.mark.parametrize("edited", ["critique.schema.json", "score.schema.json"])
def test_a_schema_file_edited_after_approval_is_refused(tmp_path, edited):
    path = _write(tmp_path)
    baseline = summarize_run(_run(path))
    assert set(baseline["suites"][0]["scorers"]["json_schema"]["files"]) == {
        "schemas/critique.schema.json", "schemas/score.schema.json"}
    assert check_baseline(baseline, _run(path), allow_mismatch=False) == []  # unchanged: gates as before
    # loosened: the approved scores were computed under the strict schema (the suite's own
    # hashes did not change, so this gated against them silently before)
    file = tmp_path / "schemas" / edited
    schema = json.loads(file.read_text())
    schema["minimum" if edited == "score.schema.json" else "required"] = -5 if edited == "score.schema.json" else []
    file.write_text(json.dumps(schema))
    with pytest.raises(HarnessError) as err:
        check_baseline(baseline, _run(path), allow_mismatch=False)
    assert f"scorer json_schema file schemas/{edited} differs" in str(err.value)
    warnings = check_baseline(baseline, _run(path), allow_mismatch=True)
    assert any(f"schemas/{edited}" in w for w in warnings)


def test_a_baseline_that_recorded_no_files_is_compared_as_before(tmp_path):
    path = _write(tmp_path)
    baseline = summarize_run(_run(path))
    del baseline["suites"][0]["scorers"]["json_schema"]["files"]  # approved by an older harness
    (tmp_path / "schemas" / "score.schema.json").write_text(json.dumps({"type": "integer"}))
    assert check_baseline(baseline, _run(path), allow_mismatch=False) == []
