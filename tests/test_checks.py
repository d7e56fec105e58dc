"""Checks beyond metric gates: an adapter with no effect, a prompt format other than the
adapter's training one, teacher-forced accuracy far above generation."""

from __future__ import annotations

import json

import mlx.core as mx
import yaml
from conftest import FIXTURE_MODEL, ROOT, make_random_adapter, run_harness

from harness.checks import adapter_prompt_format, token_accuracy_gaps
from harness.prompts import (first_line_layout, format_differences, prompt_format, prompt_formats, prompt_wrapper,
                             rendered_format)
from timing import within


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


def _mixed_rows(tok):
    """Raw task rows beside chat replay written out by hand, as fixtures/data/adapters/sql mixes them."""
    chat, json_chat = rendered_format(tok, "chat", None), rendered_format(tok, "chat", "Reply in JSON.")
    table = [f"table: t{i}\ncolumns: a, b\nQ: how many {i}?\nA: " for i in range(12)]
    plain = [chat.replace("{prompt}", q) for q in ("Tell a story.", "Explain a hash map.", "Why is the sky blue?",
                                                    "Name a river.", "Describe a cat.")]
    critique = [json_chat.replace("{prompt}", f"Critique this photo: a dog, shot {i}.") for i in range(3)]
    return table + plain + critique


def test_mixed_training_data_records_each_format(fixture_base):
    tok = fixture_base.tokenizer
    prompts = _mixed_rows(tok)
    formats = prompt_formats(tok, "raw", [(None, p) for p in prompts])
    assert [(f["template"], f["system"], f["prefix"], f["suffix"], f["rows"]) for f in formats] == [
        ("raw", None, "table: ", "\nA: ", 12), ("chat", None, "", "", 5),
        ("chat", "Reply in JSON.", "Critique this photo: ", "", 3)]
    assert [f["share"] for f in formats] == [0.6, 0.25, 0.15]
    # computed across all rows, the one format had no wrapper: every suite was "different"
    trained = dict(prompt_format(tok, "raw", None, prompts), formats=formats)
    assert (trained["prefix"], trained["suffix"]) == ("", "")
    table = [f"table: u{i}\ncolumns: c\nQ: which {i}?\nA: " for i in range(4)]
    questions = ["What is a queue?", "Explain DNS."]
    photos = [f"Critique this photo: a cat, shot {i}." for i in range(3)]
    for suite in (prompt_format(tok, "raw", None, table), prompt_format(tok, "chat", None, questions),
                  prompt_format(tok, "chat", "Reply in JSON.", photos)):
        assert format_differences(trained, suite) == [], suite  # each matches one trained format
    # real mismatches still differ: chat vs raw, a changed system message, another raw wrapper
    chat = format_differences(trained, prompt_format(tok, "chat", None, table))
    assert chat == ["trained with the 'raw' prompt format, evaluated with 'chat'",
                    "that is the closest of the 3 prompt formats it was trained with (60% of its rows)"]
    system = format_differences(trained, prompt_format(tok, "chat", "Reply in YAML.", photos))
    assert system[0] == "system message 'Reply in JSON.' at training, 'Reply in YAML.' here"
    wrapper = format_differences(trained, prompt_format(tok, "raw", None, [p.replace("\nA: ", "\nAnswer: ") for p in table]))
    assert wrapper[0] == "prompt suffix '\\nA: ' at training, '\\nAnswer: ' here"
    # a format seen on under 5% of the rows does not make a suite match
    few = prompt_formats(tok, "raw", [(None, p) for p in prompts[:12] * 4 + prompts[12:13]])
    assert [(f["template"], f["rows"]) for f in few] == [("raw", 48), ("chat", 1)]
    assert format_differences(dict(trained, formats=few), prompt_format(tok, "chat", None, questions))


def test_old_prompt_format_record_still_loads(tmp_path, fixture_base):
    """An adapter trained before `formats` was recorded: its one format is compared, and its
    formats are read from its training data when that is here unchanged (hash recorded)."""
    from harness.files import file_digest

    tok = fixture_base.tokenizer
    data = tmp_path / "data"
    data.mkdir()
    rows = _mixed_rows(tok)
    (data / "train.jsonl").write_text("".join(json.dumps({"prompt": p, "completion": "x"}) + "\n" for p in rows))
    old = {"template": "raw", "system": None, "rendered": "{prompt}", "prefix": "", "suffix": ""}
    config = {"prompt_format": old, "data_format": "completions", "train_config": {"data": str(data), "system": None},
              "data_hashes": {"train": "sha256:" + file_digest(data / "train.jsonl")}}
    sql_suite = prompt_format(tok, "raw", None, [f"table: u{i}\nQ: which {i}?\nA: " for i in range(3)])
    found = adapter_prompt_format(config, tok)
    assert [f["rows"] for f in found["formats"]] == [12, 5, 3] and "hash matches" in found["source"]
    assert format_differences(found, sql_suite) == []
    (data / "train.jsonl").write_text((data / "train.jsonl").read_text() + json.dumps({"prompt": "q", "completion": "x"}) + "\n")
    for cfg in (config, {"prompt_format": old}):  # data changed since, or not here: the one old format
        found = adapter_prompt_format(cfg, tok)
        assert "formats" not in found and found["source"] == "recorded"
        assert format_differences(found, sql_suite) == ["prompt prefix '' at training, 'table: ' here",
                                                        "prompt suffix '' at training, '\\nA: ' here"]


def test_prompt_wrapper_is_layout_not_content():
    assert prompt_wrapper(["[09:14] relay up", "[11:02] relay down"]) == ("", "")
    assert prompt_wrapper(["[INST] a [/INST]", "[INST] b [/INST]"]) == ("[INST] ", "[/INST]")
    assert prompt_wrapper(["x = {1}", "y = {2}"]) == ("", "")


def test_prompt_wrapper_is_linear_in_the_spaces_after_a_mark():
    """The spaces kept after a mark ("Q: ") were added one character at a time: 4 prompts of
    "Q:" + 250k / 500k / 1M spaces took lint-data 1.5 / 4.1 / 14 s."""

    spaces = " " * 1_000_000
    rows = [f"Q:{spaces}x{i}" for i in range(4)]
    assert within(1.0, lambda: prompt_wrapper(rows)) == (f"Q:{spaces}", "")
    # each row's own first line, as lint-data groups mixed layouts
    assert within(1.0, lambda: first_line_layout(f"a:{spaces}b")) == f"a:{spaces}"  # was 13.7 s


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


def test_token_accuracy_gap_is_one_warning_per_model_naming_each_metric():
    header = {"models": {"sql": {"metrics": {
        "token_accuracy": {"value": 0.444, "kind": "pooled"},
        "sql_exact": {"value": 0.0, "kind": "proportion"},
        "sql_execution": {"value": 0.1, "kind": "proportion"},
        "sql_logical_form": {"value": 0.4, "kind": "proportion"}}}}}
    warned = token_accuracy_gaps(header)
    assert len(warned) == 1
    assert "generated sql_exact 0.000 (gap 0.444), sql_execution 0.100 (gap 0.344):" in warned[0]
    assert "sql_logical_form" not in warned[0]


def _dora_adapter(model_path, out, update):
    """A DoRA adapter on ``model_path`` as mlx-lm makes it before training (``lora_b`` zero,
    the magnitude ``m`` the weight's own norm), its weights passed through ``update``."""
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load

    model, _ = load(str(model_path))
    model.freeze()
    params = {"rank": 8, "scale": 20.0, "dropout": 0.0, "keys": ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"]}
    linear_to_lora_layers(model, 4, params, use_dora=True)
    mx.random.seed(0)
    weights = {k: update(k, v) for k, v in tree_flatten(model.trainable_parameters())}
    out.mkdir(parents=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    (out / "adapter_config.json").write_text(json.dumps({"fine_tune_type": "dora", "num_layers": 4,
                                                         "lora_parameters": params}))
    return out


def test_untrained_dora_on_a_4bit_bf16_base_has_no_effect(tmp_path):
    """A DoRA layer multiplies the dequantized weight (the base uses the quantized kernel) and
    rescales by m / norm: on 4-bit weights with bfloat16 scales (what mlx-community ships) an
    untrained DoRA adapter moved the logits by 0.47 through rounding alone and was reported as
    changing them. Its effect is measured against the same layers with a zero update."""
    from mlx_lm import convert

    from harness.checks import NO_EFFECT_TOLERANCE, logit_effect, probe_logits
    from harness.models import adapter_applied, load_base
    from harness.prompts import encode_prompt

    q4 = tmp_path / "q4bf"
    convert(str(FIXTURE_MODEL), str(q4), quantize=True, q_group_size=32, q_bits=4, dtype="bfloat16")
    untrained = _dora_adapter(q4, tmp_path / "untrained", lambda k, v: v)
    small = _dora_adapter(q4, tmp_path / "small", lambda k, v: mx.random.normal(v.shape) * 1e-2 if k.endswith("lora_b") else v)
    magnitude = _dora_adapter(q4, tmp_path / "magnitude", lambda k, v: v * 1.05 if k.endswith(".m") else v)
    base = load_base(str(q4))
    probe = encode_prompt(base.tokenizer, "What is the capital of France?", "chat", None)
    base_logits = probe_logits(base, probe)
    effects = {}
    for name, path in (("untrained", untrained), ("small", small), ("magnitude", magnitude)):
        with adapter_applied(base, name, path, True):
            raw = float(mx.abs(probe_logits(base, probe) - base_logits).max().item())
            effects[name] = logit_effect(base, probe, base_logits)
        if name == "untrained":
            assert raw > NO_EFFECT_TOLERANCE  # what the check read before: rounding, not the adapter
    assert effects["untrained"] <= NO_EFFECT_TOLERANCE, effects
    assert effects["small"] > 1e-2 and effects["magnitude"] > 1e-2, effects
    # the adapter's own weights were put back: the same adapter again gives the same logits
    with adapter_applied(base, "small", small, True):
        assert logit_effect(base, probe, base_logits) == effects["small"]
