"""`harness eval` and `harness score` end to end through the real command line."""

from __future__ import annotations

import json

import jsonschema

from harness.suite import load_schema
from conftest import FIXTURE_MODEL, ROOT, make_random_adapter, run_harness, score_stored

OUTPUTS = ("results.json", "index.html", "junit.xml", "summary.md")


def test_eval_writes_every_output_and_exits_0(tmp_path):
    adapter = make_random_adapter(FIXTURE_MODEL, tmp_path / "adapter", scale=0.01)
    out = tmp_path / "out"
    proc = run_harness("eval", "suites/smoke.yaml", "--model", str(FIXTURE_MODEL),
                       "--adapter", f"tiny={adapter}", "--out", str(out),
                       env={"HARNESS_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    jsonschema.Draft202012Validator(load_schema("results.schema.json")).validate(results)
    suite = results["suites"][0]
    assert results["verdict"] == "pass" and suite["name"] == "smoke"
    assert set(suite["models"]) == {"base", "tiny"}
    base = suite["models"]["base"]
    assert len(base["items"]) == 6 and base["integrity"]["passed"]
    assert {"value", "ci_low", "ci_high", "n"} <= set(base["metrics"]["exact_match"])
    assert base["items"][0]["scores"]["exact_match"]["passed"] in (True, False)
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files


def test_failed_gate_exits_1(tmp_path):
    import yaml

    suite = yaml.safe_load((ROOT / "suites" / "smoke.yaml").read_text())
    suite["gates"] = {"exact_match": {"min": 0.9}}  # the fixture model cannot reach it
    path = tmp_path / "gated.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = tmp_path / "out"
    proc = run_harness("eval", str(path), "--model", str(FIXTURE_MODEL), "--out", str(out), "--no-cache")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["verdict"] == "fail"
    failed = [g for g in results["suites"][0]["gates"] if not g["passed"]]
    assert failed and failed[0]["metric"] == "exact_match"
    assert "exact_match" in (out / "junit.xml").read_text()


def test_score_stored_completions_without_a_model(tmp_path):
    rows = [{"id": "add-1", "output": "4"}, {"id": "add-2", "output": "15"}, {"id": "mul-1", "output": "13"},
            {"id": "cap-1", "output": "paris"}, {"id": "col-1", "output": "Blue"},
            {"id": "day-1", "output": "seven", "finish_reason": "length"}]
    proc, results = score_stored(tmp_path, "suites/smoke.yaml", rows)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    items = {i["id"]: i for i in results["suites"][0]["models"]["base"]["items"]}
    assert [items[k]["scores"]["exact_match"]["passed"] for k in ("add-1", "mul-1", "cap-1", "day-1")] == \
        [True, False, True, False]
    assert items["day-1"]["finish_reason"] == "length"
    assert results["suites"][0]["models"]["base"]["metrics"]["exact_match"]["value"] == 4 / 6


def test_score_rejects_unknown_id_with_line(tmp_path):
    completions = tmp_path / "c.jsonl"
    completions.write_text('{"id": "add-1", "output": "4"}\n{"id": "nope", "output": "x"}\n')
    proc = run_harness("score", "suites/smoke.yaml", "--completions", str(completions), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert f"{completions}:2" in proc.stderr and "nope" in proc.stderr


def test_wrong_shape_adapter_refused_in_one_line(tmp_path):
    stories = ROOT / "fixtures" / "stories260K"
    adapter = make_random_adapter(stories, tmp_path / "stories-adapter")
    proc = run_harness("eval", "suites/smoke.yaml", "--model", str(FIXTURE_MODEL), "--adapter", f"x={adapter}",
                       "--out", str(tmp_path / "out"), "--no-cache")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness: error")]
    assert len(errors) == 1 and "does not fit base" in errors[0] and str(adapter) in errors[0]
    assert "Traceback" not in proc.stderr


def test_eval_on_third_party_raw_model(tmp_path):
    suite = tmp_path / "stories.yaml"
    suite.write_text(
        "name: stories\nprompt: '{{ start }}'\ntarget: '{{ end }}'\ntemplate: raw\n"
        "generation: {max_tokens: 12, stop: ['.']}\nscorers:\n  - exact_match: {}\n"
        "cases:\n  - {start: 'Once upon a time', end: ', there was a little girl named Lily'}\n"
        "  - {start: 'Tom had a red ball', end: 'x'}\n")
    out = tmp_path / "out"
    proc = run_harness("eval", str(suite), "--model", str(ROOT / "fixtures" / "stories260K"),
                       "--out", str(out), "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    items = json.loads((out / "results.json").read_text())["suites"][0]["models"]["base"]["items"]
    assert items[0]["scores"]["exact_match"]["passed"] is True
    assert items[0]["finish_reason"] == "stop"


def test_chat_suite_on_a_model_without_chat_template_names_the_suite_line(tmp_path):
    """stories260K has no chat template: `harness eval suites/` said only "[template]: the model's
    tokenizer has no chat template", with five suites to guess from. Now one line names the first
    suite's `template:` line and lists the others, before anything generates or is written."""
    out = tmp_path / "out"
    proc = run_harness("eval", "suites/", "--model", str(ROOT / "fixtures" / "stories260K"), "--limit", "1",
                       "--out", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1, proc.stderr
    assert "suites/domain_qa.yaml:17 [template]" in errors[0]
    for other in ("json_schema.yaml", "latency.yaml", "repetition.yaml", "smoke.yaml"):
        assert other in errors[0]
    assert "sql.yaml" not in errors[0] and "template: raw" in errors[0]
    assert not out.exists()


def test_named_chat_templates_without_a_default_are_no_chat_template(tmp_path):
    """tokenizer_config's list form of chat templates ([{"name": ..., "template": ...}]): with
    one named "default" a chat suite runs; with none (only "tool_use"), transformers raised
    ValueError on the first prompt, an internal error (exit 3) after the model loaded. It is
    the chat-template preflight's bad input now, and `harness init` writes a raw starter."""
    template = (ROOT / "fixtures" / "model" / "chat_template.jinja").read_text()
    for name in ("default", "tool_use"):
        model = tmp_path / name
        model.mkdir()
        for f in ("config.json", "model.safetensors", "tokenizer.json"):
            (model / f).symlink_to(ROOT / "fixtures" / "model" / f)
        config = json.loads((ROOT / "fixtures" / "model" / "tokenizer_config.json").read_text())
        config["chat_template"] = [{"name": name, "template": template}]
        (model / "tokenizer_config.json").write_text(json.dumps(config))
        proc = run_harness("eval", "suites/smoke.yaml", "--model", str(model), "--limit", "1", "--no-cache",
                           "--out", str(tmp_path / f"out-{name}"))
        if name == "default":
            assert proc.returncode == 0, proc.stderr
        else:
            assert proc.returncode == 2, proc.stderr
            assert "suites/smoke.yaml" in proc.stderr and "none named 'default' (only 'tool_use')" in proc.stderr
        proc = run_harness("init", str(tmp_path / f"proj-{name}"), "--model", str(model))
        assert proc.returncode == 0, proc.stderr
        starter = (tmp_path / f"proj-{name}" / "suites" / "starter.yaml").read_text()
        assert ("template: chat" if name == "default" else "template: raw") in starter


def test_score_prints_why_a_gate_failed(tmp_path):
    """harness score said 'FAIL ... (0 of 1 gates passed, 1 failed)' and no more; eval prints
    each failed gate's reason (the drop, the interval, the flipped items)."""
    answers = {"add-1": "4", "add-2": "15", "mul-1": "12", "cap-1": "paris", "col-1": "blue", "day-1": "7"}
    completions = tmp_path / "c.jsonl"
    completions.write_text("".join(
        json.dumps({"id": i, "output": out if model == "base" else "no idea", "model": model}) + "\n"
        for model in ("base", "ft") for i, out in answers.items()))
    proc = run_harness("score", "suites/smoke.yaml", "--completions", str(completions), "--out", str(tmp_path / "o"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("  FAILED ")]
    assert failed == [ln for ln in failed if "smoke / ft / exact_match: exact_match: ft - base = -1.000" in ln]
    assert len(failed) == 1 and "6 flipped pass→fail" in failed[0]


def test_stored_completions_are_read_once_and_fingerprinted_as_read(tmp_path, monkeypatch):
    """`harness score` parsed the completions file, then read it again to hash it: the
    fingerprint (which keys the score cache) could be of another version of the file."""
    import hashlib

    from hostile_util import opens_of

    from harness.runner import run_score

    completions = tmp_path / "c.jsonl"
    completions.write_text("".join(json.dumps({"id": i, "output": "4"}) + "\n"
                                   for i in ("add-1", "add-2", "mul-1", "cap-1", "col-1", "day-1")))
    opened = opens_of(monkeypatch, "c.jsonl")
    results, _ = run_score(ROOT / "suites" / "smoke.yaml", completions)
    assert opened == ["c.jsonl"]
    digest = hashlib.sha256(completions.read_bytes()).hexdigest()
    assert results["models"]["base"]["fingerprint"] == f"stored:{digest[:16]}:base"
