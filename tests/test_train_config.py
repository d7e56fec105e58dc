"""Training config: YAML + `--key value` overrides, every bad field named with its line."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.train.config import config_from_dict, load_config, parse_overrides


def write(tmp_path, text: str):
    path = tmp_path / "train.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_merge(tmp_path):
    path = write(tmp_path, "model: m\ndata: d\nlearning_rate: 1e-3\nlora_parameters:\n  rank: 16\n  scale: 10.0\n")
    cfg = load_config(path, parse_overrides(["--batch-size", "8", "--lora_parameters.rank", "4",
                                             "--system", "Be brief."]))
    assert cfg.learning_rate == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as a string
    assert cfg.batch_size == 8
    assert cfg.lora_parameters.rank == 4
    assert cfg.lora_parameters.scale == 10.0  # the rest of the nested mapping is kept
    assert cfg.system == "Be brief."


def test_unknown_key_names_line_and_suggests(tmp_path):
    path = write(tmp_path, "model: m\ndata: d\nbatch_sise: 4\n")
    with pytest.raises(HarnessError) as exc:
        load_config(path)
    assert exc.value.line == 3
    assert "batch_size" in exc.value.one_line()


def test_mlx_lm_name_gets_the_harness_name(tmp_path):
    path = write(tmp_path, "model: m\ndata: d\niters: 100\n")
    with pytest.raises(HarnessError, match="use steps"):
        load_config(path)


@pytest.mark.parametrize("text, field", [
    ("model: m\ndata: d\nbatch_size: four\n", "batch_size"),
    ("model: m\ndata: d\nlora_parameters: {rank: 0}\n", "lora_parameters.rank"),
    ("model: m\ndata: d\ntemplate: fancy\n", "template"),
    ("model: m\ndata: d\nlr_schedule: {name: nope, arguments: [1]}\n", "lr_schedule.name"),
    ("data: d\n", "model"),
    ("model: m\ndata: d\nseed: -1\n", "seed"),  # an internal error from mx.random.seed before
    ("model: m\ndata: d\nseed: 18446744073709551616\n", "seed"),
    ("model: m\ndata: d\npad_multiple: 0\n", "pad_multiple"),
    ("model: m\ndata: d\npad_multiple: -8\n", "pad_multiple"),
    # padded every batch to 100000 tokens a row: a memory blow-up, not an error
    ("model: m\ndata: d\npad_multiple: 100000\n", "pad_multiple"),
    ("model: m\ndata: d\nmax_seq_length: 512\npad_multiple: 1024\n", "pad_multiple"),
])
def test_bad_values_name_their_field(tmp_path, text, field):
    with pytest.raises(HarnessError) as exc:
        load_config(write(tmp_path, text))
    assert exc.value.field == field
    assert str(tmp_path / "train.yaml") in exc.value.one_line()


def test_bad_override_is_reported_as_command_line():
    with pytest.raises(HarnessError) as exc:
        load_config(None, parse_overrides(["--model", "m", "--data", "d", "--steps", "many"]))
    assert exc.value.path == "command line" and exc.value.field == "steps"
    with pytest.raises(HarnessError, match="no value"):
        parse_overrides(["--steps"])


def test_identity_ignores_run_length_only():
    a = config_from_dict({"model": "m", "data": "d", "steps": 10})
    assert a.identity_hash() == config_from_dict({"model": "m", "data": "d", "steps": 99}).identity_hash()
    assert a.identity_hash() != config_from_dict({"model": "m", "data": "d", "seed": 1}).identity_hash()


def test_shipped_example_config_loads():
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[1] / "fixtures" / "train_configs" / "wikisql.yaml")
    assert cfg.steps == 250 and cfg.lr_schedule["name"] == "cosine_decay"


def test_schema_and_dataclass_agree():
    """The schema is the one validation system; the dataclass must not drift from it."""
    import dataclasses

    from harness.train.config import LoraParameters, TrainConfig, train_schema

    schema = train_schema()
    for cls, props in ((TrainConfig, schema["properties"]),
                       (LoraParameters, schema["properties"]["lora_parameters"]["properties"])):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        assert set(fields) == set(props), cls
        for name, f in fields.items():
            if name == "lora_parameters":
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if name in ("model", "data"):
                continue  # required: no default in the schema
            assert props[name].get("default") == default, name
            assert props[name].get("description"), f"{name} needs a description (train --help shows it)"


def test_type_error_names_the_yaml_line(tmp_path):
    path = write(tmp_path, "model: m\ndata: d\nlora_parameters:\n  rank: many\n")
    with pytest.raises(HarnessError) as exc:
        load_config(path)
    text = exc.value.one_line()
    assert f"{path}:4" in text and "lora_parameters.rank" in text and "integer" in text


def test_enum_and_bounds_come_from_the_schema(tmp_path):
    with pytest.raises(HarnessError, match="optimizer"):
        load_config(write(tmp_path, "model: m\ndata: d\noptimizer: lion\n"))
    with pytest.raises(HarnessError, match="lora_parameters.dropout"):
        config_from_dict({"model": "m", "data": "d", "lora_parameters": {"dropout": 1.0}})


def test_mlx_lm_schedule_arguments_are_numbers(tmp_path):
    """mlx-lm's example config writes `arguments: [1e-5, 1000, 1e-7]`, which YAML 1.1 reads
    as strings; the run died after loading the model, blamed on optimizer_config."""
    path = write(tmp_path, "model: m\ndata: d\nlr_schedule:\n  name: cosine_decay\n  warmup: 100\n"
                           "  warmup_init: 1e-7\n  arguments: [1e-5, 1000, 1e-7]\n")
    cfg = load_config(path)
    assert cfg.lr_schedule["arguments"] == [pytest.approx(1e-5), 1000, pytest.approx(1e-7)]
    assert all(not isinstance(a, str) for a in cfg.lr_schedule["arguments"])


@pytest.mark.parametrize("schedule, words", [
    ("{name: cosine_decay, arguments: [1.0e-3, 10, 0.0, 5, 6]}", "takes from 2 to 3"),
    ("{name: cosine_decay, arguments: [1.0e-3]}", "decay_steps"),
    ("{name: step_decay, arguments: [1.0e-3, 0.5, 0]}", "step_size"),
    ("{name: linear_schedule, arguments: [1.0e-3, 0.0, -5]}", "steps"),
    ("{name: cosine_decay, arguments: [fast, 10]}", "number"),
    ("{name: join_schedules, arguments: [1, 2]}", "join_schedules"),
])
def test_schedule_that_cannot_be_built_names_its_line(tmp_path, schedule, words):
    """These were internal errors (exit 3) after the model and data had loaded."""
    path = write(tmp_path, f"model: m\ndata: d\nlr_schedule: {schedule}\n")
    with pytest.raises(HarnessError) as exc:
        load_config(path)
    assert exc.value.line == 3 and exc.value.field.startswith("lr_schedule")
    assert words in exc.value.one_line()


@pytest.mark.parametrize("options, words", [
    ("{weight_decay: x}", "weight_decay"),
    ("{betas: [0.9]}", "betas"),
    ("{eps: -1}", "epsilon"),
    ("{momentum: 0.9}", "momentum"),
    ("{adamw: {weight_decay: 0.01}}", "mlx-lm"),
])
def test_optimizer_options_that_cannot_be_used_name_their_line(tmp_path, options, words):
    path = write(tmp_path, f"model: m\ndata: d\noptimizer_config: {options}\n")
    with pytest.raises(HarnessError) as exc:
        load_config(path)
    assert exc.value.line == 3 and exc.value.field == "optimizer_config"
    assert words in exc.value.one_line()


def test_bad_override_checked_after_merge_names_the_command_line(tmp_path):
    """`--optimizer_config {betas: [0.9]}` was reported at the YAML file's line 1."""
    path = write(tmp_path, "model: m\ndata: d\n")
    with pytest.raises(HarnessError) as exc:
        load_config(path, parse_overrides(["--optimizer_config", "{betas: [0.9]}"]))
    assert exc.value.path == "command line" and exc.value.line is None
    assert exc.value.field == "optimizer_config"


@pytest.mark.parametrize("line, words", [
    ("fine_tune_type: lora", "trains LoRA"),
    ("test: true", "test.jsonl"),
    ("report_to: wandb", "train_log.jsonl"),
])
def test_mlx_lm_only_keys_say_what_to_do(tmp_path, line, words):
    """mlx-lm's own config keys (its example YAML has fine_tune_type and test) were answered
    with the list of every allowed key."""
    with pytest.raises(HarnessError) as exc:
        load_config(write(tmp_path, f"model: m\ndata: d\n{line}\n"))
    assert exc.value.line == 3 and words in exc.value.one_line()


def test_pad_multiple_above_max_seq_length_is_one_line_exit_2_naming_its_line(tmp_path, capsys):
    from harness import cli

    path = write(tmp_path, "model: m\ndata: d\nmax_seq_length: 512\npad_multiple: 4096\n")
    code = cli.main(["train", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"{path}:4" in err and "pad_multiple" in err and "max_seq_length=512" in err
    assert load_config(write(tmp_path, "model: m\ndata: d\nmax_seq_length: 512\npad_multiple: 512\n")
                       ).pad_multiple == 512  # one width for every batch is a fair choice
    plain = tmp_path / "plain.yaml"
    plain.write_text("model: m\ndata: d\n")
    with pytest.raises(HarnessError) as exc:  # an override is the command line's
        load_config(plain, parse_overrides(["--pad_multiple", "100000"]))
    assert exc.value.path == "command line" and exc.value.field == "pad_multiple"
