"""The fixture world is consistent: adapters trained on the committed base from the committed
configs and data, pretraining data kept apart from the suites, and a baseline covering what
`nox -s eval` runs. (That the gates catch the bad adapters is `nox -s red`'s job and the
numbers in the commit that trained them; these checks are cheap.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
ADAPTERS = ("sql", "domain", "regress", "forgetful", "looping")
sys.path.insert(0, str(FIXTURES))


@pytest.fixture(scope="module")
def fixture_base():
    from harness.models import load_base

    return load_base(str(FIXTURES / "model"))


def test_adapter_data_is_what_the_script_writes():
    proc = subprocess.run([sys.executable, str(FIXTURES / "make_adapter_data.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ADAPTERS)
def test_each_adapter_comes_from_its_config_and_the_committed_base(name, fixture_base):
    from harness.train.config import load_config

    cfg = load_config(FIXTURES / "train_configs" / f"{name}.yaml")
    assert cfg.model == "fixtures/model" and cfg.data == f"fixtures/data/adapters/{name}"
    adapter = json.loads((FIXTURES / "adapters" / name / "adapter_config.json").read_text())
    assert adapter["base_fingerprint"] == fixture_base.fingerprint, \
        f"fixtures/adapters/{name} was trained on another base: run python fixtures/train_fixture_adapters.py"
    assert adapter["steps"] == cfg.steps
    assert adapter["train_config"]["lora_parameters"]["rank"] == cfg.lora_parameters.rank


def test_pretraining_corpus_is_apart_from_the_suites():
    from pretrain_corpus import JSON_SYSTEM, anneal_documents, documents

    suite = yaml.safe_load((ROOT / "suites" / "json_schema.yaml").read_text())
    assert JSON_SYSTEM == suite["system"]  # the base learns the suite's exact chat format
    docs = "\n".join(documents(20261121, scale=0.05) + anneal_documents(20261122, scale=0.05))
    photos = [json.loads(line)["photo"] for line in (ROOT / "suites" / "data" / "photo_critique.jsonl")
              .read_text().splitlines()]
    assert not [p for p in photos if p in docs]
    questions = [json.loads(line)["text"].split("\nQ: ")[1].split("\nA: ")[0]
                 for line in (ROOT / "suites" / "data" / "wikisql_valid.jsonl").read_text().splitlines()]
    assert not [q for q in questions if f"Write SQL for: {q}<|end|>" in docs]
    assert "\nQ: " not in docs  # never the sql suite's raw framing: that is the sql adapter's gain


def test_committed_baseline_covers_what_nox_eval_runs():
    from harness.baseline import load_baseline

    baseline = load_baseline(ROOT / "reports" / "baselines" / "fixture.json")
    suites = {s["name"]: s for s in baseline["suites"]}
    shipped = {yaml.safe_load(p.read_text())["name"] for p in (ROOT / "suites").glob("*.yaml")}
    assert shipped <= set(suites)
    for suite in suites.values():
        assert {"base", "sql", "domain"} <= set(suite["models"])


def test_committed_baseline_knows_every_shipped_gate_it_can_see_loosened():
    """A baseline names a loosened gate only if it recorded that gate's limit; one approved
    from a run without --baseline recorded no max_drop_vs_baseline gate, so widening that
    margin in a pull request passed unremarked even under --strict-baseline."""
    from harness.baseline import load_baseline

    baseline = load_baseline(ROOT / "reports" / "baselines" / "fixture.json")
    recorded = {(s["name"], g["metric"], g["kind"]) for s in baseline["suites"] for g in s.get("gates") or []
                if g.get("limit") is not None}
    for path in (ROOT / "suites").glob("*.yaml"):
        suite = yaml.safe_load(path.read_text())
        for metric, options in (suite.get("gates") or {}).items():
            for kind in ("max_drop_vs_base", "max_drop_vs_baseline"):
                if isinstance(options, dict) and options.get(kind) is not None:
                    assert (suite["name"], metric, kind) in recorded, (path.name, metric, kind)
