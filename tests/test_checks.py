"""Checks beyond metric gates: an adapter with no effect, a prompt format other than the
adapter's training one, teacher-forced accuracy far above generation."""

from __future__ import annotations

import json

import mlx.core as mx
import yaml
from conftest import FIXTURE_MODEL, ROOT, make_random_adapter, run_harness

from harness.checks import adapter_prompt_format, token_accuracy_gaps
from harness.prompts import format_differences, prompt_format


def smoke_with_checks(tmp_path, **checks):
    suite = yaml.safe_load((ROOT / "suites" / "smoke.yaml").read_text())
    suite["checks"] = checks
    path = tmp_path / "smoke_checked.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def zeroed(tmp_path, how, name=None):
    path = make_random_adapter(FIXTURE_MODEL, tmp_path / (name or how))
    cfg = json.loads((path / "adapter_config.json").read_text())
    weights = mx.load(str(path / "adapters.safetensors"))
    if how == "zero_b":
        weights = {k: (mx.zeros_like(v) if k.endswith("lora_b") else v) for k, v in weights.items()}
    elif how == "scale0":
        cfg["lora_parameters"]["scale"] = 0.0
    mx.save_safetensors(str(path / "adapters.safetensors"), weights)
    (path / "adapter_config.json").write_text(json.dumps(cfg))
    return path


def test_adapter_without_effect_warns_and_can_fail(tmp_path):
    live = make_random_adapter(FIXTURE_MODEL, tmp_path / "live")
    suite = smoke_with_checks(tmp_path, adapter_effect=True)
    for how in ("zero_b", "scale0"):
        out = tmp_path / f"out-{how}"
        done = run_harness("eval", str(ROOT / "suites" / "smoke.yaml"), "--model", str(FIXTURE_MODEL),
                           "--adapter", f"dead={zeroed(tmp_path, how)}", "--adapter", f"live={live}",
                           "--out", str(out), "--no-cache")
        assert done.returncode == 0, done.stderr  # a warning by default
        results = json.loads((out / "results.json").read_text())
        warned = [w for w in results["warnings"] if "has no effect" in w]
        assert len(warned) == 1 and warned[0].startswith("adapter dead") and "6 of 6 outputs" in warned[0]
        assert results["models"]["dead"]["logit_effect"] == 0.0
        assert results["models"]["live"]["logit_effect"] > 1e-3
    out = tmp_path / "out-gate"
    done = run_harness("eval", str(suite), "--model", str(FIXTURE_MODEL), "--adapter", f"dead={zeroed(tmp_path, 'zero_b', 'again')}",
                       "--adapter", f"live={live}", "--out", str(out), "--no-cache")
    assert done.returncode == 1, done.stderr
    gates = {(g["model"], g["metric"]): g for g in json.loads((out / "results.json").read_text())["suites"][0]["gates"]}
    assert not gates[("dead", "adapter_effect")]["passed"] and gates[("live", "adapter_effect")]["passed"]
    assert "adapter_effect" in (out / "junit.xml").read_text()


def test_prompt_format_differences(fixture_base):
    tok = fixture_base.tokenizer
    wikisql = [f"table: t{i}\nQ: how many {i}?\nA: " for i in range(4)]
    trained = prompt_format(tok, "raw", None, wikisql)
    assert (trained["prefix"], trained["suffix"]) == ("table: ", "\nA: ")
    assert format_differences(trained, prompt_format(tok, "raw", None, wikisql[:2])) == []
    other_wrapper = format_differences(trained, prompt_format(tok, "raw", None, [p.replace("\nA: ", "\nAnswer: ") for p in wikisql]))
    assert other_wrapper == ["prompt suffix '\\nA: ' at training, '\\nAnswer: ' here"]
    chat = format_differences(trained, prompt_format(tok, "chat", None, wikisql))
    assert chat and chat[0] == "trained with the 'raw' prompt format, evaluated with 'chat'"
    system = format_differences(prompt_format(tok, "chat", "Be brief.", wikisql), prompt_format(tok, "chat", "Be terse.", wikisql))
    assert len(system) == 1 and "system message 'Be brief.' at training, 'Be terse.' here" == system[0]


def test_mlx_lm_format_inferred_or_unknown(tmp_path, fixture_base):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps({"prompt": f"Q: q{i}?\nA: ", "completion": "x"}) + "\n"
                                              for i in range(3)))
    found = adapter_prompt_format({"model": "m", "data": str(data)}, fixture_base.tokenizer)
    assert found["template"] == "chat" and found["suffix"] == "\nA: " and "inferred" in found["source"]
    assert adapter_prompt_format({"model": "m", "data": str(tmp_path / "gone")}, fixture_base.tokenizer) is None


def test_prompt_format_gate(tmp_path):
    suite = yaml.safe_load((ROOT / "suites" / "smoke.yaml").read_text())
    suite["checks"] = {"prompt_format": True}
    suite["template"] = "raw"
    path = tmp_path / "smoke_raw.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = tmp_path / "out"
    done = run_harness("eval", str(path), "--model", str(FIXTURE_MODEL), "--adapter",
                       f"domain={ROOT / 'fixtures' / 'adapters' / 'domain'}", "--out", str(out), "--no-cache")
    assert done.returncode == 1, done.stderr
    gate = [g for g in json.loads((out / "results.json").read_text())["suites"][0]["gates"]
            if g["metric"] == "prompt_format"][0]
    assert not gate["passed"] and "trained with the 'chat' prompt format, evaluated with 'raw'" in gate["reason"]


def test_token_accuracy_gap_is_warned():
    def model(tacc, kw):
        return {"metrics": {"token_accuracy": {"value": tacc, "kind": "proportion"},
                            "keywords": {"value": kw, "kind": "proportion"},
                            "keywords.fraction": {"value": 0.9, "kind": "mean"}}}
    header = {"models": {"base": model(0.5, 0.4), "domain": model(0.945, 0.344)}}
    warned = token_accuracy_gaps(header)
    assert len(warned) == 1
    assert warned[0].startswith("domain: teacher-forced token_accuracy 0.945 but generated keywords 0.344 (gap 0.601)")
