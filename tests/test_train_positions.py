"""Training rows longer than the base model's positions (config.json) are warned about and
recorded in train_log.jsonl; a learned position table (GPT-2) refuses them; a model whose
config names no positions trains as before."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import few_positions_llama, run_harness, tiny_gpt2
from harness.errors import HarnessError
from harness.positions import Positions, model_positions, position_warnings, refuse_unreadable_positions
from harness.train import config_from_dict, train
from harness.train.data import Example
from harness.train.log import read_warnings

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "fixtures" / "model"


def split(path: str, lengths: list[int]) -> SimpleNamespace:
    return SimpleNamespace(path=Path(path), examples=[Example(ids=[1] * n, prompt_len=1, line=i + 1)
                                                      for i, n in enumerate(lengths)])


def test_positions_come_from_the_field_mlx_lm_reads():
    assert model_positions({"model_type": "llama", "max_position_embeddings": 1024}) == Positions(
        1024, "config.json's max_position_embeddings (1024)")
    gpt2 = model_positions({"model_type": "gpt2", "n_positions": 64, "n_ctx": 64})
    assert gpt2 == Positions(64, "config.json's n_positions (64)", learned=True)
    assert not model_positions({"model_type": "gptj", "n_positions": 2048}).learned  # rotary
    nested = {"model_type": "gemma3", "text_config": {"max_position_embeddings": 32768}}
    assert model_positions(nested).count == 32768
    for nothing in ({"model_type": "mamba"}, {"max_position_embeddings": None}, {"max_position_embeddings": True}):
        assert model_positions(nothing) is None  # not refused: no check at all


def test_rope_scaling_stretches_the_positions_only_upwards():
    yarn = model_positions({"max_position_embeddings": 32768, "rope_scaling": {
        "type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}})
    assert yarn.count == 131072 and "rope_scaling (yarn, factor 4" in yarn.source
    linear = model_positions({"max_position_embeddings": 4096, "rope_scaling": {"rope_type": "linear", "factor": 2}})
    assert linear.count == 8192 and "max_position_embeddings 4096" in linear.source
    llama3 = model_positions({"max_position_embeddings": 131072, "rope_scaling": {
        "rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192}})
    assert llama3 == Positions(131072, "config.json's max_position_embeddings (131072)")
    longrope = model_positions({"max_position_embeddings": 131072, "rope_scaling": {
        "type": "longrope", "long_factor": [1.0], "original_max_position_embeddings": 4096}})
    assert longrope.count == 131072


def test_rows_past_the_positions_are_counted_by_split():
    positions = Positions(16, "config.json's max_position_embeddings (16)")
    splits = {"train": split("d/train.jsonl", [10, 17, 30, 18]), "valid": split("d/valid.jsonl", [17, 18])}
    train_line, valid_line = position_warnings(positions, 2048, False, splits)
    # a row of n tokens feeds n - 1 positions: 17 tokens fit 16 positions
    assert train_line.startswith("2 of 4 rows of d/train.jsonl (longest 30 tokens, first at line 3) are "
                                 "longer than the model's 16 positions (config.json's max_position_embeddings "
                                 "(16); max_seq_length is 2048): they train positions the model never saw")
    assert "set max_seq_length: 17" in train_line and "\n" not in train_line
    assert valid_line.startswith("1 of 2 rows of d/valid.jsonl (longest 18 tokens, first at line 2)")
    assert "their loss is measured at positions the model never saw" in valid_line


def test_max_seq_length_set_above_the_positions_is_warned_even_when_the_rows_fit():
    positions = Positions(1024, "config.json's max_position_embeddings (1024)")
    fits = {"train": split("t.jsonl", [100])}
    [line] = position_warnings(positions, 4096, True, fits)
    assert line.startswith("max_seq_length is 4096 but the model has 1024 positions (config.json's "
                           "max_position_embeddings (1024))") and "max_seq_length: 1025 or less" in line
    assert position_warnings(positions, 4096, False, fits) == []  # the default 2048 is a cap, not a choice
    assert position_warnings(positions, 1025, True, fits) == []  # 1024 inputs
    assert position_warnings(None, 100000, True, {"train": split("t.jsonl", [5000])}) == []


def test_a_learned_position_table_refuses_rows_past_it():
    positions = model_positions({"model_type": "gpt2", "n_positions": 16})
    refuse_unreadable_positions(positions, {"train": split("t.jsonl", [17, 5])}, "gpt")
    with pytest.raises(HarnessError) as exc:
        refuse_unreadable_positions(positions, {"train": split("t.jsonl", [5, 18, 40])}, "gpt")
    assert exc.value.line == 2 and "2 rows are longer than the model's learned position table" in exc.value.one_line()
    assert "config.json's n_positions (16)" in exc.value.one_line()


def test_training_past_the_positions_is_warned_and_logged(tmp_path, capsys):
    """The fixture model with config.json cut to 24 positions: the SQL rows are longer."""
    model = few_positions_llama(tmp_path / "model", 24)
    data = ROOT / "fixtures" / "data" / "wikisql"
    cfg = config_from_dict(dict(model=str(model), data=str(data), adapter_path=str(tmp_path / "adapter"),
                                batch_size=8, steps=1, val_rows=8, eval_every=1, save_every=1, report_every=1))
    train(cfg, quiet=True, allow_lint_errors=True)
    err = capsys.readouterr().err
    warned = read_warnings(tmp_path / "adapter" / "train_log.jsonl")
    assert len(warned) == 2, warned  # train and valid
    train_rows = len((data / "train.jsonl").read_text().splitlines())
    assert warned[0].startswith(f"{train_rows} of {train_rows} rows of {data / 'train.jsonl'}")
    assert "longer than the model's 24 positions (config.json's max_position_embeddings (24)" in warned[0]
    assert f"harness train: warning: {warned[0]}" in err


def lint(*args: str):
    return run_harness("lint-data", *args, timeout=120)


def test_lint_data_with_a_config_reports_rows_past_the_positions(tmp_path):
    """lint-data already loads the config's tokenizer; the positions come from config.json."""
    data = ROOT / "fixtures" / "data" / "wikisql"
    config = tmp_path / "train.yaml"
    config.write_text(f"model: {few_positions_llama(tmp_path / 'model', 24)}\ndata: {data}\n")
    proc = lint(str(data), "--config", str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    train_rows = len((data / "train.jsonl").read_text().splitlines())
    lines = proc.stdout.splitlines()
    assert (f"{data / 'train.jsonl'}: warning: {train_rows} of {train_rows} rows of {data / 'train.jsonl'} "
            f"(longest ") in proc.stdout
    assert sum("longer than the model's 24 positions (config.json's max_position_embeddings (24)" in x
               for x in lines) == 2  # train and valid, as `harness train` warns
    # the fixture model's 1024 positions hold every row: nothing said
    config.write_text(f"model: {MODEL}\ndata: {data}\n")
    assert "positions" not in lint(str(data), "--config", str(config)).stdout
    # a learned position table: the trainer refuses such rows, so lint calls them errors
    config.write_text(f"model: {tiny_gpt2(tmp_path / 'gpt2', 24)}\ndata: {data}\n")
    proc = lint(str(data), "--config", str(config))
    assert proc.returncode == 1
    assert f"{data / 'valid.jsonl'}: error: " in proc.stdout and "config.json's n_positions (24)" in proc.stdout
