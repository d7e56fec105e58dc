"""Adapters that do not fit the base, and output folders that cannot be written, are
refused with exit 2 and one line before any model generates (issue 8 item 4f, issue 10)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from hostile_util import FIXTURE_MODEL, ROOT, assert_bad_input, cli, lora_adapter

SMOKE = str(ROOT / "suites" / "smoke.yaml")


@pytest.fixture(autouse=True)
def _no_generation(monkeypatch):
    """Any generation in these tests is a failure: every refusal comes first."""
    import harness.runner

    def boom(*a, **k):
        raise AssertionError("generated before refusing the input")

    monkeypatch.setattr(harness.runner, "generate", boom)


def eval_args(tmp_path, *adapters: str) -> list[str]:
    args = ["eval", SMOKE, "--model", str(FIXTURE_MODEL), "--out", str(tmp_path / "out"), "--no-cache"]
    for a in adapters:
        args += ["--adapter", a]
    return args


@pytest.mark.parametrize("size, needle", [
    ({"hidden": 32, "heads": 2, "head_dim": 16, "kv_heads": 1}, "does not fit base"),  # another width
    ({"layers": 5, "num_layers": 5}, "block 4"),                                         # another depth
    ({"layers": 5, "num_layers": 2}, "block 4"),                     # the last blocks of a deeper base
    ({"layers": 1, "num_layers": 1, "hidden": 64}, "does not fit base"),  # block 0 of a 1-block base
    ({"rank": 4, "intermediate": 1000, "keys": ("mlp.up_proj",)}, "does not fit base"),
])
def test_adapter_of_another_base_size_is_refused_before_generation(tmp_path, capsys, size, needle):
    adapter = lora_adapter(tmp_path / "adapter", **size)
    code, out, err = cli(capsys, *eval_args(tmp_path, f"other={adapter}"))
    assert_bad_input(code, err, needle, str(adapter))
    assert not (tmp_path / "out").exists()


def test_mlx_lm_adapter_written_by_mlx_lm_is_checked_the_same(tmp_path, capsys):
    """An adapter in mlx-lm's exact layout (no harness fields) of another width."""
    adapter = lora_adapter(tmp_path / "a", hidden=128, heads=8, head_dim=16, kv_heads=2, intermediate=128)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["lora_parameters"].pop("keys")  # mlx_lm.lora's default: every linear layer
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    code, _, err = cli(capsys, *eval_args(tmp_path, f"wide={adapter}"))
    assert_bad_input(code, err, "does not fit base")


def test_nan_adapter_weights_are_refused(tmp_path, capsys):
    adapter = lora_adapter(tmp_path / "nan", fill=float("nan"))
    code, _, err = cli(capsys, *eval_args(tmp_path, f"nan={adapter}"))
    assert_bad_input(code, err, "NaN", "adapters.safetensors")


def test_fuse_refuses_a_nan_adapter_and_writes_nothing(tmp_path, capsys):
    adapter = lora_adapter(tmp_path / "inf", fill=float("inf"))
    code, _, err = cli(capsys, "fuse", "--model", str(FIXTURE_MODEL), "--adapter", str(adapter),
                       "--out", str(tmp_path / "fused"))
    assert_bad_input(code, err, "NaN or infinite")
    assert not (tmp_path / "fused").exists()


def test_rank_in_config_must_match_the_weights(tmp_path, capsys):
    adapter = lora_adapter(tmp_path / "r", rank=4)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["lora_parameters"]["rank"] = 8
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    code, _, err = cli(capsys, *eval_args(tmp_path, f"r={adapter}"))
    assert_bad_input(code, err, "rank 8")


@pytest.mark.parametrize("damage", ["truncate", "empty", "list-config", "no-rank", "nan-scale", "bad-type"])
def test_broken_adapter_files_are_refused(tmp_path, capsys, damage):
    adapter = lora_adapter(tmp_path / "b")
    weights, config = adapter / "adapters.safetensors", adapter / "adapter_config.json"
    cfg = json.loads(config.read_text())
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:300])
    elif damage == "empty":
        weights.write_bytes(b"")
    elif damage == "list-config":
        config.write_text("[1, 2]")
    elif damage == "no-rank":
        del cfg["lora_parameters"]["rank"]
        config.write_text(json.dumps(cfg))
    elif damage == "nan-scale":
        config.write_text(json.dumps(cfg).replace('"scale": 10.0', '"scale": NaN'))
    elif damage == "bad-type":
        cfg["fine_tune_type"] = "qlora++"
        config.write_text(json.dumps(cfg))
    code, _, err = cli(capsys, *eval_args(tmp_path, f"b={adapter}"))
    assert_bad_input(code, err, str(adapter))


def test_a_fitting_adapter_still_loads(tmp_path, capsys, monkeypatch):
    """The refusals above are not refusing everything: a fitting adapter passes the checks."""
    from harness.models import check_adapter_fits, load_base
    from harness.preflight import check_adapter

    adapter = lora_adapter(tmp_path / "ok")
    check_adapter(adapter, json.loads((FIXTURE_MODEL / "config.json").read_text()))
    base = load_base(str(FIXTURE_MODEL))
    check_adapter_fits(base, "ok", adapter)
    assert base.active_adapter is None  # taken off again


@pytest.mark.parametrize("kind", ["file", "under-file", "devnull", "empty", "readonly"])
def test_unwritable_out_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch, kind):
    if os.geteuid() == 0:  # root may write into a mode-555 folder: say what a read-only mount would
        import harness.preflight

        real = os.access
        monkeypatch.setattr(harness.preflight.os, "access",
                            lambda p, mode: False if str(p).startswith(str(tmp_path / "ro")) else real(p, mode))
    target = {"file": tmp_path / "f.txt", "under-file": tmp_path / "f.txt" / "sub",
              "devnull": "/dev/null", "empty": "", "readonly": tmp_path / "ro" / "out"}[kind]
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o555)
    try:
        for command in (["eval", SMOKE, "--model", str(FIXTURE_MODEL)],
                        ["score", SMOKE, "--completions", str(tmp_path / "missing.jsonl")],
                        ["compare", str(tmp_path), str(tmp_path)],
                        ["fuse", "--model", str(FIXTURE_MODEL), "--adapter", str(tmp_path)]):
            code, _, err = cli(capsys, *command, "--out", str(target))
            assert_bad_input(code, err, "--out")
        assert (tmp_path / "f.txt").read_text() == "x"
    finally:
        os.chmod(tmp_path / "ro", 0o755)
    shutil.rmtree(tmp_path / "ro")


def test_train_num_layers_beyond_the_model_is_refused(tmp_path):
    from harness.errors import HarnessError
    from harness.models import load_base
    from harness.train.adapter import apply_lora
    from harness.train.config import config_from_dict

    base = load_base(str(FIXTURE_MODEL))
    cfg = config_from_dict({"model": str(FIXTURE_MODEL), "data": str(tmp_path), "num_layers": 100})
    with pytest.raises(HarnessError, match=f"num_layers is 100 but the model has {len(base.model.layers)} blocks"):
        apply_lora(base.model, cfg)
    default = config_from_dict({"model": str(FIXTURE_MODEL), "data": str(tmp_path)})  # mlx-lm's 16: "up to"
    assert apply_lora(load_base(str(FIXTURE_MODEL)).model, default)["num_layers"] == len(base.model.layers)


def test_train_config_that_is_a_folder_or_binary(tmp_path, capsys):
    code, _, err = cli(capsys, "train", str(tmp_path))
    assert_bad_input(code, err, "is a folder")
    (tmp_path / "c.yaml").write_bytes(b"model: \xff\xfe\n")
    code, _, err = cli(capsys, "train", str(tmp_path / "c.yaml"))
    assert_bad_input(code, err, "UTF-8")
