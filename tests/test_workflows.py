"""The GitHub workflows the project hands to users fit GitHub's workflow syntax.

Neither has run on GitHub from here (CI has no GitHub), so they are checked offline against
SchemaStore's `github-workflow.json` (the schema editors use; copied with its licence into
tests/data/schemastore/): the example in docs/ and the one `harness init` writes. Their
shell steps are run by test_ci_example.py.
"""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import pytest
import yaml

from conftest import ROOT, run_harness

SCHEMA = json.loads((ROOT / "tests" / "data" / "schemastore" / "github-workflow.json").read_text())


class _GitHubYaml(yaml.SafeLoader):
    """YAML as GitHub reads a workflow: `on:` is the key "on", not the boolean True
    (PyYAML follows YAML 1.1, where on/off/yes/no are booleans)."""


_GitHubYaml.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_GitHubYaml.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                  list("tTfF"))


def _errors(doc: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:160]}"
            for e in validator.iter_errors(doc)]


def _workflows(tmp_path) -> dict[str, dict]:
    proc = run_harness("init", str(tmp_path / "proj"), "--model", "models/base")
    assert proc.returncode == 0, proc.stderr
    files = {"docs/github-actions-example.yml": ROOT / "docs" / "github-actions-example.yml",
             "harness init": tmp_path / "proj" / ".github" / "workflows" / "harness.yml"}
    return {name: yaml.load(path.read_text(), Loader=_GitHubYaml) for name, path in files.items()}


def test_the_schema_is_a_valid_draft7_schema():
    jsonschema.Draft7Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("name", ["docs/github-actions-example.yml", "harness init"])
def test_shipped_workflows_fit_githubs_workflow_syntax(tmp_path, name):
    doc = _workflows(tmp_path)[name]
    assert "on" in doc and "jobs" in doc
    assert _errors(doc) == []


def test_the_check_catches_what_github_would_reject(tmp_path):
    """The check can fail: typical slips in a workflow are errors here."""
    doc = _workflows(tmp_path)["harness init"]
    job = next(iter(doc["jobs"]))
    slips = []
    bad = copy.deepcopy(doc)
    bad["jobs"][job]["runs_on"] = bad["jobs"][job].pop("runs-on")  # underscore for hyphen
    slips.append(bad)
    bad = copy.deepcopy(doc)
    bad["jobs"][job]["timeout-minutes"] = "thirty"
    slips.append(bad)
    bad = copy.deepcopy(doc)
    bad["permissions"] = {"contents": "readonly"}
    slips.append(bad)
    bad = copy.deepcopy(doc)
    bad["jobs"][job]["steps"][0] = {"uses": "actions/checkout@v4", "run": "echo both"}  # uses and run
    slips.append(bad)
    for bad in slips:
        assert _errors(bad), bad
    # and YAML 1.1's reading of `on:` (PyYAML's default) is what GitHub would not accept
    plain = yaml.safe_load((ROOT / "docs" / "github-actions-example.yml").read_text())
    assert True in plain and _errors(plain)
