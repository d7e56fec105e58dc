"""Quantized bases (QLoRA, the 4-bit mlx-community models most users fine-tune): training,
fusing and the checks on a 4-bit copy of the fixture model made here (hidden size 96, so
group size 32)."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import pytest
from conftest import run_harness

from harness.errors import HarnessError
from harness.train import config_from_dict, train
from harness.train.fuse import fuse

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "fixtures" / "model"
SQL_DATA = ROOT / "fixtures" / "data" / "adapters" / "sql"


def quantized_copy(out: Path, dtype: str | None = None) -> Path:
    from mlx_lm.convert import convert

    convert(str(MODEL), mlx_path=str(out), quantize=True, q_group_size=32, q_bits=4, dtype=dtype)
    return out


@pytest.fixture(scope="module")
def q4(tmp_path_factory) -> Path:
    return quantized_copy(tmp_path_factory.mktemp("q4") / "model")


@pytest.fixture(scope="module")
def q4_adapter(q4, tmp_path_factory) -> Path:
    """A harness adapter trained on the 4-bit base (QLoRA), on the sql fixture adapter's data."""
    tmp = tmp_path_factory.mktemp("q4adapter")
    cfg = config_from_dict(dict(model=str(q4), data=str(SQL_DATA), adapter_path=str(tmp / "adapter"),
                                template="raw", num_layers=-1, batch_size=4, steps=8, learning_rate=5e-3,
                                eval_every=8, save_every=8, report_every=4, val_rows=8,
                                lora_parameters={"rank": 8, "scale": 20.0, "dropout": 0.0}))
    return train(cfg, quiet=True).adapter_path


def sql_tokens(tokenizer) -> mx.array:
    return mx.array([tokenizer.encode("table: 1-10015132-11\ncolumns: Player, No., Nationality\n"
                                      "Q: What is the nationality of the player with No. 3?\nA: SELECT")])


def test_fuse_on_a_quantized_base_says_it_is_not_the_evaluated_model(q4, q4_adapter, tmp_path):
    """mlx-lm's fuse quantizes each adapted layer again: the fused folder is another model
    than the base + adapter that was evaluated, and `harness fuse` wrote it without a word.
    It now warns with the measured agreement and records it in config.json."""
    from mlx_lm import load

    out = tmp_path / "fused"
    done = run_harness("fuse", "--model", str(q4), "--adapter", str(q4_adapter), "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [ln for ln in done.stderr.splitlines() if "quantized again" in ln]
    assert len(warnings) == 1, done.stderr
    assert f"--model {out}" in warnings[0] and "--dequantize" in warnings[0]
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"]["bits"] == 4  # still a 4-bit model, as mlx_lm.fuse writes by default
    record = config["fused_adapter"]
    assert record["requantized"] is True and record["dequantized"] is False
    agreement = record["agreement"]
    assert str(SQL_DATA / "valid.jsonl") in agreement["probe"] and agreement["tokens"] > 100
    assert f"{agreement['same_next_token']} of {agreement['tokens']} positions" in warnings[0]

    # the numbers are the fused model's own: it really differs from base + adapter
    evaluated, tokenizer = load(str(q4), adapter_path=str(q4_adapter))
    fused, _ = load(str(out))
    x = sql_tokens(tokenizer)
    diff = mx.abs(evaluated(x) - fused(x)).max().item()
    assert diff > 1e-2
    assert agreement["max_logit_difference"] >= diff * 0.5  # the probe sees a difference of that size


def test_fuse_dequantize_writes_base_plus_adapter(q4, q4_adapter, tmp_path, capsys):
    """`--dequantize` (as mlx_lm.fuse's): the fused layers unquantized and the quantization
    keys dropped from config.json, so the fused model's logits are base + adapter's."""
    from mlx_lm import load

    out = fuse(str(q4), q4_adapter, tmp_path / "fused", dequantize=True)
    assert "quantized again" not in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert "quantization" not in config and "quantization_config" not in config
    assert config["fused_adapter"]["dequantized"] is True and config["fused_adapter"]["requantized"] is False
    assert config["fused_adapter"]["agreement"]["next_token_agreement"] == 1.0
    weights = mx.load(str(out / "model.safetensors"))
    assert not any(k.endswith(".scales") for k in weights)
    assert all(mx.issubdtype(w.dtype, mx.floating) for w in weights.values())

    evaluated, tokenizer = load(str(q4), adapter_path=str(q4_adapter))
    fused, _ = load(str(out))
    base, _ = load(str(q4))
    x = sql_tokens(tokenizer)
    assert mx.abs(evaluated(x) - base(x)).max().item() > 0.1  # the adapter does something
    assert mx.abs(evaluated(x) - fused(x)).max().item() < 1e-3  # float rounding only


def test_dequantized_bfloat16_fuse_warns_only_beyond_near_ties(tmp_path, capsys):
    """With bfloat16 weights (mlx-community's 4-bit models) even `--dequantize` is base +
    adapter only up to rounding, which moves near-tied next tokens as the eval's own
    rounding does: those are recorded, not warned about (every bfloat16 fuse warned); a
    next token that differs by more than the generation integrity check's near-tie
    allowance is warned about with the numbers. Random adapters on a 4-bit copy with
    bfloat16 scales, on the fixed text: at scale 0.05, 88 of 96 the same, all 8 near-ties;
    at 0.2, 71 of 96 and not all near-ties."""
    from conftest import make_random_adapter

    q4bf = quantized_copy(tmp_path / "q4bf", dtype="bfloat16")
    for scale, warns in ((0.05, False), (0.2, True)):
        adapter = make_random_adapter(q4bf, tmp_path / f"adapter{scale}", scale=scale)
        capsys.readouterr()
        out = fuse(str(q4bf), adapter, tmp_path / f"fused{scale}", dequantize=True)
        err = capsys.readouterr().err
        agreement = json.loads((out / "config.json").read_text())["fused_adapter"]["agreement"]
        assert agreement["probe"].startswith("a fixed text")  # a random adapter records no data
        assert agreement["same_next_token"] < agreement["tokens"], agreement  # rounding moved some
        assert (agreement["differ_beyond_near_ties"] > 0) is warns, agreement
        warned = [ln for ln in err.splitlines() if "bfloat16 rounding" in ln]
        assert len(warned) == int(warns) and "quantized again" not in err, err
        if warns:
            assert f"{agreement['same_next_token']} of {agreement['tokens']} positions" in warned[0]


def test_float_adapter_on_its_quantized_copy_is_refused_saying_so(q4, q4_adapter, monkeypatch):
    """The fixture's float-trained sql adapter on a 4-bit copy of its base (and the 4-bit
    adapter on the float base): same shapes, other weights, exit 2 in one line. The line
    said "other weights, tokenizer or chat template", which sent users to the tokenizer; it
    now says which of the two is quantized."""
    from harness.models import adapter_applied, load_base

    monkeypatch.chdir(ROOT)  # the fixture adapter records its base as fixtures/model
    for model, adapter, says in ((q4, ROOT / "fixtures" / "adapters" / "sql",
                                  f"{q4} is 4-bit quantized, the adapter's base not quantized"),
                                 (MODEL, q4_adapter, f"{MODEL} is not quantized, the adapter's base 4-bit quantized")):
        base = load_base(str(model))
        with pytest.raises(HarnessError) as exc:
            with adapter_applied(base, "x", adapter):
                pass
        line = exc.value.one_line()
        assert "\n" not in line and "same shapes" in line and says in line, line


def test_adapter_of_another_size_on_a_quantized_base_does_not_fit(q4, q4_adapter, tmp_path):
    """Catalog row f with quantized weights (packed uint32, other shapes than the float
    ones): the 4-bit adapter on stories260K and the fixture's adapter on a 4-bit
    stories260K are "does not fit" in one line, exit 2, before anything generates."""
    stories_q4 = tmp_path / "stories_q4"
    from mlx_lm.convert import convert

    convert(str(ROOT / "fixtures" / "stories260K"), mlx_path=str(stories_q4), quantize=True, q_group_size=32, q_bits=4)
    for model, adapter in ((ROOT / "fixtures" / "stories260K", q4_adapter),
                           (stories_q4, ROOT / "fixtures" / "adapters" / "sql")):
        done = run_harness("eval", "suites/smoke.yaml", "--model", str(model), "--adapter", f"x={adapter}",
                           "--out", str(tmp_path / "out"), "--quiet")
        assert done.returncode == 2, done.stderr[-2000:]
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith("harness: error:") and "does not fit" in lines[-1], done.stderr
        assert not (tmp_path / "out").exists()
