"""Fingerprint recipes: a baseline approved by an older harness is checked under the recipe
that made its hashes, so an unchanged suite still gates and an edited one is still refused
as 'differs'; the recipes' outputs are pinned so that the next change must bump them.

tests/data/cd660bb/ holds a real old baseline: ``harness eval tests/data/cd660bb/smoke.yaml
--model fixtures/model --adapter domain=fixtures/adapters/domain`` and ``harness baseline
approve`` run by commit cd660bb (mlx-harness 0.1.0, which hashed the suite file's bytes and
recorded no recipe), on smoke.yaml beside it (a byte copy of suites/smoke.yaml).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.baseline import approve, check_baseline, fingerprint_differences, load_baseline
from harness.errors import HarnessError
from harness.models import (MODEL_FINGERPRINT_RECIPE, adapter_fingerprint, base_fingerprint,
                            base_fingerprint_recipe_1, weights_fingerprint)
from harness.results import new_results, suite_entry
from harness.scorers import make_scorer
from harness.suite import FINGERPRINT_RECIPE, load_suite

ROOT = Path(__file__).resolve().parents[1]
OLD = ROOT / "tests" / "data" / "cd660bb"


def _header(suite_path: Path, baseline: dict) -> dict:
    """What the runner knows before generating, for this suite file and the models the old
    baseline was approved from (fixtures/model and its domain adapter)."""
    suite = load_suite(suite_path)
    models = copy.deepcopy(json.loads((OLD / "baseline.json").read_text(encoding="utf-8"))["models"])
    models["base"]["fingerprint_recipe"] = MODEL_FINGERPRINT_RECIPE
    return new_results([suite_entry(suite, [make_scorer(s, suite.dir) for s in suite.scorers])], models,
                       {"mlx": baseline["environment"].get("mlx"),
                        "mlx-lm": baseline["environment"].get("mlx-lm")}, ["harness", "eval"])


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    text = (OLD / "smoke.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "smoke.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_the_old_baseline_is_a_real_pre_recipe_file():
    data = json.loads((OLD / "baseline.json").read_text(encoding="utf-8"))
    assert "fingerprint_recipe" not in data["suites"][0] and "fingerprint_recipe" not in data["models"]["base"]
    assert data["harness_version"] == "0.1.0"


def test_baseline_of_an_older_harness_gates_the_identical_suite():
    baseline = load_baseline(OLD / "baseline.json")
    now = _header(OLD / "smoke.yaml", baseline)
    assert now["suites"][0]["fingerprint"] != baseline["suites"][0]["fingerprint"]  # hashed differently
    warnings = check_baseline(baseline, now, allow_mismatch=False)
    assert not any("suite" in w for w in warnings), warnings
    # and the other way round (harness compare OLD_RUN NEW_RUN has the new run as A, too)
    assert [d for d in fingerprint_differences(now, baseline) if d["severity"] == "refuse"] == []


@pytest.mark.parametrize("old, new", [
    ("system: Answer with the answer only.", "system: Answer briefly."),  # content
    ("# The smallest suite", "# The tiniest suite"),  # only a comment: recipe 1 cannot tell
])
def test_baseline_of_an_older_harness_still_refuses_an_edited_suite(tmp_path, old, new):
    baseline = load_baseline(OLD / "baseline.json")
    now = _header(_edited(tmp_path, old, new), baseline)
    with pytest.raises(HarnessError) as err:
        check_baseline(baseline, now, allow_mismatch=False)
    text = str(err.value)
    assert text.startswith(f"{OLD / 'baseline.json'}: ")
    assert "suite smoke: suite content hash" in text and "differs" in text
    assert "no recipe recorded: an older mlx-harness" in text
    assert (f"harness eval {tmp_path / 'smoke.yaml'} --model fixtures/model --adapter domain=fixtures/adapters/domain "
            f"--out reports/rebaseline && harness baseline approve reports/rebaseline --to {OLD / 'baseline.json'}"
            in text)


def test_baseline_of_an_older_harness_refuses_changed_data_as_data(tmp_path):
    baseline = load_baseline(OLD / "baseline.json")
    now = _header(_edited(tmp_path, 'answer: "Paris"', 'answer: "paris"'), baseline)
    with pytest.raises(HarnessError, match="suite smoke: data hash differs"):
        check_baseline(baseline, now, allow_mismatch=False)


def _current_baseline(tmp_path: Path) -> dict:
    """A baseline approved by this harness from a passing run of the old suite file."""
    old = load_baseline(OLD / "baseline.json")
    run = _header(OLD / "smoke.yaml", old)
    for s, ref in zip(run["suites"], old["suites"]):
        s["models"] = {n: {"fingerprint": m["fingerprint"], "metrics": m["metrics"], "items": []}
                       for n, m in ref["models"].items()}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(run), encoding="utf-8")
    return load_baseline(approve(tmp_path / "run", tmp_path / "b.json"))


def test_a_new_baseline_records_the_recipes_and_an_edited_suite_differs(tmp_path):
    baseline = _current_baseline(tmp_path)
    assert baseline["suites"][0]["fingerprint_recipe"] == FINGERPRINT_RECIPE
    assert baseline["models"]["base"]["fingerprint_recipe"] == MODEL_FINGERPRINT_RECIPE
    check_baseline(baseline, _header(OLD / "smoke.yaml", baseline), allow_mismatch=False)
    now = _header(_edited(tmp_path, "system: Answer with the answer only.", "system: Answer briefly."), baseline)
    with pytest.raises(HarnessError) as err:
        check_baseline(baseline, now, allow_mismatch=False)
    assert "suite smoke: suite content hash" in str(err.value) and "differs" in str(err.value)
    assert "older mlx-harness" not in str(err.value) and "--allow-fingerprint-mismatch" in str(err.value)
    # a comment or a gate is policy under this recipe: not a difference
    check_baseline(baseline, _header(_edited(tmp_path, "# The smallest suite", "# The tiniest suite"), baseline),
                   allow_mismatch=False)


def test_a_recipe_this_harness_cannot_recompute_is_refused_as_such(tmp_path):
    baseline = _current_baseline(tmp_path)
    baseline["suites"][0].update(fingerprint_recipe=FINGERPRINT_RECIPE + 1, fingerprint="sha256:future")
    now = _header(OLD / "smoke.yaml", baseline)
    with pytest.raises(HarnessError) as err:
        check_baseline(baseline, now, allow_mismatch=False)
    text = str(err.value)
    assert "computes suite fingerprints differently" in text and f"recipe {FINGERPRINT_RECIPE + 1}" in text
    assert "content hash" not in text and "harness baseline approve reports/rebaseline" in text
    warnings = check_baseline(baseline, now, allow_mismatch=True)
    assert any("computes suite fingerprints differently" in w for w in warnings)


def test_a_model_fingerprint_of_another_recipe_is_not_called_another_model(tmp_path):
    baseline = _current_baseline(tmp_path)
    baseline["models"]["base"].update(fingerprint_recipe=MODEL_FINGERPRINT_RECIPE + 1, fingerprint="sha256:future")
    with pytest.raises(HarnessError) as err:
        check_baseline(baseline, _header(OLD / "smoke.yaml", baseline), allow_mismatch=False)
    assert "computes model fingerprints differently" in str(err.value)
    assert "base model fingerprint (weights" not in str(err.value)


def test_an_endpoint_identity_is_not_a_file_hash_of_another_recipe(tmp_path):
    """An endpoint run recorded no recipe, so a baseline approved from one read as recipe 1:
    against a local run it said 'approved by an mlx-harness that computes model fingerprints
    differently (recipe 1; this one computes recipe 2)'. Its recipe is now text that no file
    hash recipe can equal, and the refusal says the two fingerprints are of different kinds."""
    from harness.backends.openai import ENDPOINT_IDENTITY_RECIPE, endpoint_fingerprint_recipe
    from harness.models import recorded_fingerprint_recipe

    assert endpoint_fingerprint_recipe({"local_fingerprint": None}) == f"endpoint-{ENDPOINT_IDENTITY_RECIPE}"
    assert (endpoint_fingerprint_recipe({"local_fingerprint": "sha256:x"})
            == f"endpoint-{ENDPOINT_IDENTITY_RECIPE}+files-{MODEL_FINGERPRINT_RECIPE}")
    assert recorded_fingerprint_recipe({"fingerprint": "endpoint:abc"}) is None  # unrecorded: unknown
    assert recorded_fingerprint_recipe({"fingerprint": "sha256:abc"}) == 1
    baseline = _current_baseline(tmp_path)
    served = copy.deepcopy(baseline)
    served["models"]["base"].update(fingerprint="endpoint:abc", fingerprint_recipe="endpoint-1+files-2")
    local = _header(OLD / "smoke.yaml", baseline)
    for ref, run in ((served, local), (local, served)):
        (diff,) = [d for d in fingerprint_differences(ref, run) if d["severity"] == "refuse"]
        assert diff["part"] == "base model fingerprint recipe"
        assert "a served model's identity (--endpoint)" in diff["message"]
        assert "a hash of a model folder's files" in diff["message"]
    with pytest.raises(HarnessError) as err:
        check_baseline(served, local, allow_mismatch=False)
    assert "a served model's identity" in str(err.value) and "base model fingerprint (weights" not in str(err.value)
    # two endpoint identities of one recipe that differ: another model; an unrecorded one: unknown recipe
    other = copy.deepcopy(served)
    other["models"]["base"]["fingerprint"] = "endpoint:def"
    (diff,) = [d for d in fingerprint_differences(served, other) if d["severity"] == "refuse"]
    assert diff["part"] == "base model fingerprint (weights, tokenizer, chat template)"
    del other["models"]["base"]["fingerprint_recipe"]
    (diff,) = [d for d in fingerprint_differences(other, served) if d["severity"] == "refuse"]
    assert diff["part"] == "base model fingerprint recipe" and "recipe unrecorded" in diff["message"]


def test_suite_fingerprint_recipe_is_pinned(tmp_path):
    """Fails when an unchanged suite hashes differently: raise FINGERPRINT_RECIPE, keep the
    recipe it replaces in harness.suite.earlier_fingerprints, and update these pins."""
    suite = load_suite(OLD / "smoke.yaml")
    old = json.loads((OLD / "baseline.json").read_text(encoding="utf-8"))["suites"][0]
    assert suite.earlier_fingerprints["1"] == {"fingerprint": old["fingerprint"],
                                              "data_fingerprint": old["data_fingerprint"]}  # what cd660bb computed
    assert (FINGERPRINT_RECIPE, suite.fingerprint, suite.data_fingerprint, suite.earlier_fingerprints["2"]) == (
        3, "sha256:f2a6ffb04e3c5873dcd2881c99af46dc", "sha256:4b667fe9387d31155d05764328bb5711",
        {"fingerprint": "sha256:f2a6ffb04e3c5873dcd2881c99af46dc",  # 2 and 3 differ only on `cluster:`
         "data_fingerprint": "sha256:4b667fe9387d31155d05764328bb5711"})
    clustered = tmp_path / "clustered.yaml"
    clustered.write_bytes(b"name: c\nprompt: '{{ q }}'\ntarget: '{{ a }}'\ncluster: g\nscorers:\n  - exact_match: {}\n"
                          b"cases:\n  - {id: x, g: one, q: '1+1?', a: '2'}\n  - {id: y, g: two, q: '2+2?', a: '4'}\n")
    suite = load_suite(clustered)
    data = "sha256:d5ad77ab457ad745311286a6850f4f1c"
    assert (suite.fingerprint, suite.data_fingerprint, suite.earlier_fingerprints) == (
        "sha256:2e14f861c450b355cde355801b332a9f", data,
        {"1": {"fingerprint": "sha256:c01b8edf602b855e6bf57c0d3c032af1", "data_fingerprint": data},
         "2": {"fingerprint": "sha256:6da03089fe5bb43b23cf3792dcbcaad7", "data_fingerprint": data}})


def test_model_fingerprint_recipe_is_pinned(tmp_path):
    """Fails when unchanged model files hash differently: raise MODEL_FINGERPRINT_RECIPE
    (and say in harness.baseline how a baseline of the old recipe is checked), then update.
    Recipe 1's hash stays computable: adapters trained by an older harness record it."""
    (tmp_path / "config.json").write_bytes(b'{"model_type": "llama"}')
    (tmp_path / "tokenizer.json").write_bytes(b'{"version": "1.0"}')
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 16)
    (tmp_path / "adapters.safetensors").write_bytes(b"\1" * 16)
    (tmp_path / "adapter_config.json").write_bytes(b'{"rank": 8}')
    (tmp_path / "vocab.json").write_bytes(b'{"a": 0}')  # recipe 2 hashes it, recipe 1 did not
    (tmp_path / "README.md").write_bytes(b"# a model")  # neither does
    (tmp_path / "additional_chat_templates").mkdir()
    (tmp_path / "additional_chat_templates" / "tool_use.jinja").write_bytes(b"{{ tools }}")
    got = (MODEL_FINGERPRINT_RECIPE, base_fingerprint(tmp_path, "{{ messages }}"), weights_fingerprint(tmp_path),
           adapter_fingerprint(tmp_path), base_fingerprint_recipe_1(tmp_path, "{{ messages }}"))
    assert got == (2, "sha256:37ff172b2d4470c7868c6cf2bd04e9f8", "sha256:874d4de1e9cc4cf086f2fd26105c73f9",
                   "sha256:a2dfc04de70cb8c428051a7874b0c915",
                   "sha256:fabc94d46f80213a25968fb548b5a406")  # what recipe 1 computed for this folder


def test_a_folder_of_files_both_recipes_cover_keeps_its_fingerprint():
    """The fixture model (the one reports/baselines/fixture.json and fixtures/adapters/* were
    made on) hashes as under recipe 1: its baseline, caches and adapters stay valid."""
    recorded = json.loads((ROOT / "fixtures" / "adapters" / "sql" / "adapter_config.json").read_text())
    template = (ROOT / "fixtures" / "model" / "chat_template.jinja").read_text(encoding="utf-8")
    assert base_fingerprint(ROOT / "fixtures" / "model", template) == recorded["base_fingerprint"]
    assert weights_fingerprint(ROOT / "fixtures" / "model") == recorded["base_weights_fingerprint"]


def test_the_cli_gates_against_the_old_baseline(tmp_path):
    """The user's case end to end: the upgraded harness, the baseline cd660bb approved, the same suite."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "eval", "tests/data/cd660bb/smoke.yaml", "--model", "fixtures/model",
         "--adapter", "domain=fixtures/adapters/domain", "--baseline", "tests/data/cd660bb/baseline.json",
         "--out", str(tmp_path / "run"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    assert results["baseline"]["path"] == "tests/data/cd660bb/baseline.json"
    assert {g["kind"] for g in results["suites"][0]["gates"]} >= {"max_drop_vs_baseline"}
