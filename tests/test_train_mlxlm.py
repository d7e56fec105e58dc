"""Adapters move both ways between `harness train` and mlx-lm; a wrong base is refused;
`harness fuse` gives the logits of base + adapter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import pytest
import yaml
from conftest import run_harness

from harness.blas import preload_env
from harness.errors import HarnessError
from harness.models import adapter_applied
from harness.prompts import encode_prompt
from harness.train import config_from_dict, train
from harness.train.fuse import fuse

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "fixtures" / "model"
WIKISQL = ROOT / "fixtures" / "data" / "wikisql"


def small_text_data(folder: Path, rows: int = 24) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", rows), ("valid", 8)):
        lines = (WIKISQL / f"{split}.jsonl").read_text().splitlines()[:n]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ours")
    cfg = config_from_dict(dict(model=str(MODEL), data=str(small_text_data(tmp / "data")),
                                adapter_path=str(tmp / "adapter"), num_layers=-1, batch_size=4, steps=8,
                                learning_rate=5e-3, eval_every=8, save_every=8, report_every=4,
                                lora_parameters={"rank": 4, "scale": 10.0, "dropout": 0.0,
                                                 "keys": ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"]}))
    return train(cfg, quiet=True)


def tokens(base) -> mx.array:
    return mx.array([encode_prompt(base.tokenizer, "table: 1-10015132-11\ncolumns: Player, No.\nQ: Who?\nA: ",
                                   "chat")])


def test_harness_adapter_loads_in_mlx_lm_with_same_logits(ours, fixture_base):
    from mlx_lm import load

    x = tokens(fixture_base)
    trained = ours.base.model(x)
    with adapter_applied(fixture_base, "ours", ours.adapter_path):
        harness_logits = fixture_base.model(x)
    model, _ = load(str(MODEL), adapter_path=str(ours.adapter_path))
    mlx_logits = model(x)
    assert mx.abs(harness_logits - fixture_base.model(x)).max().item() > 1e-3  # the adapter does something
    assert mx.allclose(mlx_logits, harness_logits, atol=1e-5).item()
    assert mx.allclose(trained, harness_logits, atol=1e-5).item()


def test_mlx_lm_lora_adapter_loads_in_harness(tmp_path, fixture_base):
    from mlx_lm import load

    cfg = {"model": str(MODEL), "train": True, "data": str(small_text_data(tmp_path / "data", rows=8)),
           "adapter_path": str(tmp_path / "mlx_adapter"), "num_layers": 1, "batch_size": 2, "iters": 3,
           "val_batches": 1, "steps_per_eval": 100, "steps_per_report": 3, "learning_rate": 1e-2,
           "lora_parameters": {"rank": 4, "scale": 10.0, "dropout": 0.0}}
    (tmp_path / "lora.yaml").write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, "-m", "mlx_lm", "lora", "-c", str(tmp_path / "lora.yaml")],
                          capture_output=True, text=True, env=preload_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    written = json.loads((tmp_path / "mlx_adapter" / "adapter_config.json").read_text())
    assert "base_fingerprint" not in written  # mlx-lm's own format, no harness fields
    x = tokens(fixture_base)
    with adapter_applied(fixture_base, "mlx", tmp_path / "mlx_adapter") as fingerprint:
        harness_logits = fixture_base.model(x)
    assert fingerprint.startswith("sha256:")
    model, _ = load(str(MODEL), adapter_path=str(tmp_path / "mlx_adapter"))
    assert mx.allclose(model(x), harness_logits, atol=1e-5).item()
    assert mx.abs(harness_logits - fixture_base.model(x)).max().item() > 1e-4


def test_wrong_base_refused_with_one_line(ours, stories_base):
    with pytest.raises(HarnessError) as exc:
        with adapter_applied(stories_base, "ours", ours.adapter_path):
            pass
    line = exc.value.one_line()
    assert "\n" not in line
    assert str(MODEL) in line and str(stories_base.path) in line  # names both bases
    # Overriding the fingerprint check still cannot load mismatched shapes: one line too.
    with pytest.raises(HarnessError) as exc:
        with adapter_applied(stories_base, "ours", ours.adapter_path, allow_base_mismatch=True):
            pass
    assert "\n" not in exc.value.one_line() and "does not fit" in exc.value.one_line()


def test_fuse_matches_unfused_logits(ours, fixture_base, tmp_path):
    from mlx_lm import load

    out = fuse(str(MODEL), ours.adapter_path, tmp_path / "fused")
    fused, _ = load(str(out))
    x = tokens(fixture_base)
    with adapter_applied(fixture_base, "ours", ours.adapter_path):
        expected = fixture_base.model(x)
    assert mx.allclose(fused(x), expected, atol=1e-4).item()
    assert json.loads((out / "config.json").read_text())["fused_adapter"]["path"] == str(ours.adapter_path)


def test_fuse_cli_refuses_wrong_base(ours, tmp_path):
    from conftest import STORIES_MODEL

    done = run_harness("fuse", "--model", str(STORIES_MODEL), "--adapter", str(ours.adapter_path),
                       "--out", str(tmp_path / "f"), env=preload_env())
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "trained on" in lines[0] and str(MODEL) in lines[0]
    assert not (tmp_path / "f").exists()


def test_interrupted_fuse_leaves_no_half_written_folder(ours, tmp_path, monkeypatch):
    """mlx-lm's save writes the folder file by file: a Ctrl-C halfway left a folder with
    weights and no config.json (which no loader reads), and the rerun refused it as not
    empty. The fused folder now appears whole or not at all."""
    import mlx_lm.utils

    real_save = mlx_lm.utils.save

    def save_then_interrupt(dst, *args, **kwargs):
        real_save(dst, *args, **kwargs)
        raise KeyboardInterrupt  # after every file was written, before fuse returns

    monkeypatch.setattr(mlx_lm.utils, "save", save_then_interrupt)
    out = tmp_path / "fused"
    with pytest.raises(KeyboardInterrupt):
        fuse(str(MODEL), ours.adapter_path, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no temporary left either
    monkeypatch.setattr(mlx_lm.utils, "save", real_save)
    assert (fuse(str(MODEL), ours.adapter_path, out) / "config.json").is_file()


def test_trained_model_returned_is_the_adapter_mlx_lm_loads(tmp_path):
    """TrainResult.base (the Python API's trained model) was left in training mode: with
    LoRA dropout its outputs were random and differed from the saved adapter's in mlx-lm."""
    from mlx_lm import load

    cfg = config_from_dict(dict(model=str(MODEL), data=str(small_text_data(tmp_path / "data", rows=8)),
                                adapter_path=str(tmp_path / "adapter"), batch_size=4, steps=2, eval_every=2,
                                save_every=2, learning_rate=1e-2,
                                lora_parameters={"rank": 4, "scale": 20.0, "dropout": 0.5}))
    result = train(cfg, quiet=True)
    x = tokens(result.base)
    mlx_lm_model, _ = load(str(MODEL), adapter_path=str(result.adapter_path))
    assert mx.allclose(result.base.model(x), mlx_lm_model(x), atol=1e-5).item()


def test_fuse_says_when_the_base_could_not_be_checked(tmp_path, capsys):
    """An mlx-lm adapter that names no base here was fused without a word; `harness eval`
    records the same warning in results.json."""
    from conftest import make_random_adapter

    adapter = make_random_adapter(MODEL, tmp_path / "mlx")
    capsys.readouterr()
    fuse(str(MODEL), adapter, tmp_path / "fused")
    assert "only its tensor shapes were checked" in capsys.readouterr().err
