"""The training loop on the fixture model and on stories260K: it learns, it touches only
LoRA weights, it stops on NaN keeping the last good checkpoint, it refuses unsafe reuse."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from harness.errors import HarnessError
from harness.train import TrainingDiverged, config_from_dict, train
from harness.train.batching import TrainStream
from harness.train.checkpoint import latest_checkpoint

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "fixtures" / "model"
WIKISQL = ROOT / "fixtures" / "data" / "wikisql"
STORIES = ROOT / "fixtures" / "stories260K"


def sql_data(folder: Path, train_rows: int = 128, valid_rows: int = 32) -> Path:
    """WikiSQL as prompt/completion rows: the prompt up to `A: `, the SQL as the answer."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", train_rows), ("valid", valid_rows)):
        lines = (WIKISQL / f"{split}.jsonl").read_text().splitlines()[:n]
        rows = []
        for line in lines:
            text = json.loads(line)["text"]
            prompt, answer = text.split("\nA: ", 1)
            rows.append(json.dumps({"prompt": prompt + "\nA: ", "completion": answer}))
        (folder / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def config(tmp: Path, **kw):
    return config_from_dict(dict(model=str(MODEL), data=str(sql_data(tmp / "data")), adapter_path=str(tmp / "adapter"),
                                 num_layers=-1, batch_size=8, steps=40, learning_rate=5e-4, report_every=10,
                                 eval_every=20, save_every=20) | kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loop")
    return train(config(tmp), quiet=True)


def test_short_training_lowers_validation_loss(trained):
    assert trained.steps == 40
    log = [json.loads(line) for line in (trained.adapter_path / "train_log.jsonl").read_text().splitlines()]
    print("train loss", [r.get("train_loss") for r in log], "val", trained.first_val_loss, trained.final_val_loss)
    # The pretrained fixture base cannot copy WikiSQL's column names yet, so 40 steps fit the
    # training rows without generalising: measured val 3.52 -> 3.65. What training must do
    # is lower the loss on what it trains on.
    assert log[-1]["train_loss"] < log[1]["train_loss"] - 0.2
    assert log == trained.log
    assert [r["step"] for r in log] == [0, 10, 20, 30, 40]
    assert {"train_loss", "val_loss", "lr", "tokens_per_s", "peak_memory_gb", "trained_tokens"} <= set(log[-1])
    assert all(math.isfinite(r["train_loss"]) and r["tokens_per_s"] > 0 for r in log[1:])


def test_base_weights_bitwise_unchanged_only_lora_trained(trained, fixture_base):
    params = dict(tree_flatten(trained.base.model.parameters()))
    base = dict(tree_flatten(fixture_base.model.parameters()))
    lora = {k: v for k, v in params.items() if k.endswith((".lora_a", ".lora_b"))}
    frozen = {k.replace(".linear.", "."): v for k, v in params.items() if k not in lora}
    assert frozen.keys() == base.keys()
    for name, value in base.items():
        assert mx.array_equal(frozen[name], value).item(), f"{name} changed"
    trainable = dict(tree_flatten(trained.base.model.trainable_parameters()))
    blocks = len(fixture_base.model.layers)
    assert trainable.keys() == lora.keys() and len(lora) == 2 * 7 * blocks  # 7 linears per block, a and b
    assert all(mx.abs(v).max().item() > 0 for k, v in lora.items() if k.endswith("lora_b"))  # b starts at 0
    saved = mx.load(str(trained.adapter_path / "adapters.safetensors"))
    assert saved.keys() == lora.keys()
    assert all(mx.array_equal(saved[k], lora[k]).item() for k in lora)


def test_adapter_config_records_provenance(trained, fixture_base):
    cfg = json.loads((trained.adapter_path / "adapter_config.json").read_text())
    assert cfg["fine_tune_type"] == "lora" and cfg["num_layers"] == len(fixture_base.model.layers)
    assert cfg["lora_parameters"]["keys"] == sorted(cfg["lora_parameters"]["keys"]) and \
        "self_attn.q_proj" in cfg["lora_parameters"]["keys"]
    assert cfg["base_fingerprint"] == fixture_base.fingerprint
    assert cfg["base_model"] == str(MODEL)
    fmt = cfg["prompt_format"]
    assert {k: fmt[k] for k in ("template", "system")} == {"template": "chat", "system": None}
    # the layout around every training prompt, as rendered, and the raw wrapper they share
    assert fmt["rendered"].count("{prompt}") == 1 and (fmt["prefix"], fmt["suffix"]) == ("table: ", "\nA: ")
    # each distinct format of the data with its share (one here), which `harness eval` compares with
    assert [(f["template"], f["prefix"], f["suffix"], f["share"]) for f in fmt["formats"]] == [
        ("chat", "table: ", "\nA: ", 1.0)]
    assert cfg["data_format"] == "completions" and cfg["mask_prompt"] is True
    assert set(cfg["data_hashes"]) == {"train", "valid"}
    assert cfg["harness_version"]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    original = TrainStream.batch

    def poisoned(self, position):
        batch = original(self, position)
        if position == 6:  # step 7
            batch.mask[0, 0] = np.nan
        return batch

    monkeypatch.setattr(TrainStream, "batch", poisoned)
    cfg = config(tmp_path, steps=20, save_every=5, report_every=5, eval_every=100, val_rows=8)
    with pytest.raises(TrainingDiverged) as exc:
        train(cfg, quiet=True)
    text = exc.value.one_line()
    assert "nan at step 7" in text and "step 5" in text and "lower learning_rate" in text
    assert latest_checkpoint(Path(cfg.adapter_path)).name == "step-0000005"
    ckpt = mx.load(str(latest_checkpoint(Path(cfg.adapter_path)) / "adapters.safetensors"))
    top = mx.load(str(Path(cfg.adapter_path) / "adapters.safetensors"))
    assert all(mx.array_equal(ckpt[k], top[k]).item() and not mx.isnan(top[k]).any().item() for k in top)
    assert json.loads((Path(cfg.adapter_path) / "adapter_config.json").read_text())["steps"] == 5
    log = (Path(cfg.adapter_path) / "train_log.jsonl").read_text()
    assert "NaN" not in log and max(json.loads(x)["step"] for x in log.splitlines()) == 5


def test_refuses_to_overwrite_a_run_or_resume_another_config(trained):
    folder = trained.adapter_path
    data = str(folder.parent / "data")
    again = config_from_dict(dict(model=str(MODEL), data=data, adapter_path=str(folder), steps=50))
    with pytest.raises(HarnessError, match="already holds an adapter or a training run"):
        train(again, quiet=True)
    other = config_from_dict(dict(model=str(MODEL), data=data, adapter_path=str(folder), steps=50,
                                  num_layers=-1, batch_size=8, learning_rate=1e-3))
    with pytest.raises(HarnessError, match="another config"):
        train(other, resume=True, quiet=True)


def test_memory_knobs_keep_the_same_training(tmp_path):
    """Gradient checkpointing and row slicing (max_batch_tokens) trade time for memory only."""
    short = dict(steps=4, report_every=1, eval_every=4, val_rows=8)
    plain = train(config(tmp_path / "a", **short), quiet=True)
    layer_call = type(plain.base.model.layers[0]).__call__
    ckpt = train(config(tmp_path / "b", grad_checkpoint=True, **short), quiet=True)
    assert type(ckpt.base.model.layers[0]).__call__ is layer_call  # the class patch is undone
    sliced = train(config(tmp_path / "c", max_batch_tokens=200, **short), quiet=True)
    for other in (ckpt, sliced):
        assert [r["step"] for r in other.log] == [r["step"] for r in plain.log]
        for a, b in zip(plain.log, other.log):
            assert b.get("trained_tokens") == a.get("trained_tokens")
            for key in ("train_loss", "val_loss"):
                if key in a:
                    assert b[key] == pytest.approx(a[key], rel=1e-5)
    a = mx.load(str(tmp_path / "a" / "adapter" / "adapters.safetensors"))
    c = mx.load(str(tmp_path / "c" / "adapter" / "adapters.safetensors"))
    # Adam's normalised step turns float-order noise in near-zero gradients into steps of
    # up to lr (5e-4): measured at most 9.3e-6 after 4 steps; a knob that changed training
    # would move weights by about lr.
    assert all(mx.allclose(a[k], c[k], rtol=1e-4, atol=5e-5).item() for k in a)


STORY_ROWS = [("Once upon a time, there was a little girl named Lily.", " She liked to play in the park."),
              ("Tom had a big red ball.", " He threw it to his dog and the dog ran fast."),
              ("One day, a cat saw a bird.", " The cat wanted to be friends with the bird."),
              ("Sue went to the shop with her mom.", " They bought milk and bread.")]


def stories_data(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for split, reps in (("train", 8), ("valid", 1)):
        (folder / f"{split}.jsonl").write_text("".join(
            json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in STORY_ROWS * reps))
    return folder


def test_stories260k_raw_prompts(tmp_path):
    data = stories_data(tmp_path / "data")
    result = train(config_from_dict(dict(model=str(STORIES), data=str(data), adapter_path=str(tmp_path / "ad"),
                                         steps=16, batch_size=4, learning_rate=1e-4, eval_every=16,
                                         save_every=16, report_every=8)), quiet=True,
                   allow_lint_errors=True)  # repeated rows on purpose: it must memorise them
    cfg = json.loads((tmp_path / "ad" / "adapter_config.json").read_text())
    assert cfg["prompt_format"]["template"] == "raw"  # no chat template: raw prompts, BOS added
    assert result.final_val_loss < result.first_val_loss - 1.0  # measured 2.97 -> 0.45


def test_an_adapter_that_does_not_predict_eos_is_warned(tmp_path, capsys):
    """stories260K never saw its EOS in pretraining (llama2.c separates stories with BOS): a
    LoRA run memorises the answers (val loss 2.97 -> 0.45 in 16 steps) and still puts EOS
    first at no answer's end (measured 0 of 4, mean probability 0.004), so every output at
    eval runs to max_tokens. The run says so at train time, in the log the scorecard reads."""
    from harness.train.log import read_warnings

    data = stories_data(tmp_path / "data")
    result = train(config_from_dict(dict(model=str(STORIES), data=str(data), adapter_path=str(tmp_path / "ad"),
                                         steps=4, batch_size=4, learning_rate=1e-4, eval_every=2,
                                         save_every=4, report_every=4)), allow_lint_errors=True)
    assert "does not predict the end token '</s>'" in capsys.readouterr().err
    log = [json.loads(line) for line in (result.adapter_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "eos_top1" in r] == [0, 2, 4]  # measured at every validation
    assert log[-1]["eos_top1"] == 0.0 and log[-1]["eos_prob"] < 0.05
    warned = read_warnings(result.adapter_path / "train_log.jsonl")
    warned = [w for w in warned if not w.startswith("lint-data: ")]  # the repeated rows it was allowed
    assert len(warned) == 1 and "top choice in 0% of them" in warned[0] and "`stop:` string" in warned[0]


def test_an_adapter_that_learned_to_stop_is_not_warned(trained):
    """The fixture base saw its EOS in pretraining: after 40 steps the adapter puts EOS first
    at the end of nearly every validation answer, and no stopping warning is written."""
    last = trained.log[-1]
    assert last["eos_top1"] >= 0.9 and last["eos_prob"] > 0.5, last
    assert not any("end token" in w for r in trained.log for w in r.get("warnings", []))


def test_training_that_did_not_train_is_warned_logged_and_shown(tmp_path, capsys):
    """lr 1e-12 (val loss never moves), warmup longer than the run, many passes over few rows:
    a warning at train time, a record in train_log.jsonl, a warning in the eval report."""
    from conftest import run_harness

    cfg = config(tmp_path, steps=6, learning_rate=1e-12, eval_every=3, save_every=6, report_every=3,
                 lr_schedule={"name": "cosine_decay", "arguments": [1e-12, 6], "warmup": 10})
    cfg.data = str(sql_data(tmp_path / "few", train_rows=1 * 8, valid_rows=8))
    result = train(cfg)
    err = capsys.readouterr().err
    assert "warmup is 10 steps but the run has 6" in err
    assert "pass over the 8 training rows 6 times" not in err  # 6 passes: not memorising
    assert "validation loss did not move in 6 steps" in err
    log = [json.loads(line) for line in (result.adapter_path / "train_log.jsonl").read_text().splitlines()]
    warned = [w for r in log for w in r.get("warnings", [])]
    assert len(warned) == 2 and "did not train" in warned[-1]
    many = train(config_from_dict(dict(model=str(MODEL), data=cfg.data, adapter_path=str(tmp_path / "many"),
                                       steps=32, batch_size=8, learning_rate=1e-3, eval_every=32,
                                       save_every=32, report_every=32)), quiet=True)
    assert any("pass over the 8 training rows 32 times" in w
               for r in many.log for w in r.get("warnings", []))
    out = tmp_path / "report"
    done = run_harness("eval", str(ROOT / "suites" / "smoke.yaml"), "--model", str(MODEL),
                       "--adapter", f"stalled={result.adapter_path}", "--out", str(out), "--no-cache")
    assert done.returncode in (0, 1), done.stderr
    results = json.loads((out / "results.json").read_text())
    assert any(w.startswith("adapter stalled: its training log warns: validation loss did not move")
               for w in results["warnings"])
    assert "validation loss did not move" in (out / "summary.md").read_text()
    assert "validation loss did not move" in (out / "index.html").read_text()


def test_kill_while_the_adapter_is_written_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    """The adapter's two files change together: a kill while the second was written left
    step 4's weights beside step 2's adapter_config.json (and, at the first save, weights
    with no config, which mlx-lm cannot load)."""
    import harness.atomic
    import harness.train.loop as loop

    real_write, real_fsync = loop.write_adapter, harness.atomic.os.fsync
    synced = []

    def killed_at_step_4(folder, weights, config):
        if config["steps"] != 4:
            return real_write(folder, weights, config)

        def fsync(fd):
            synced.append(fd)
            if len(synced) == 2:  # the second file of the adapter is being written
                raise KeyboardInterrupt
            real_fsync(fd)

        monkeypatch.setattr(harness.atomic.os, "fsync", fsync)
        try:
            return real_write(folder, weights, config)
        finally:
            monkeypatch.setattr(harness.atomic.os, "fsync", real_fsync)

    monkeypatch.setattr(loop, "write_adapter", killed_at_step_4)
    cfg = config(tmp_path, steps=6, save_every=2, report_every=2, eval_every=100, val_rows=8)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, quiet=True)
    folder = Path(cfg.adapter_path)
    assert json.loads((folder / "adapter_config.json").read_text())["steps"] == 2
    # The weights beside it are step 2's too: resuming from the step-4 checkpoint and
    # training on differs from them, the step-2 state does not.
    top = mx.load(str(folder / "adapters.safetensors"))
    step4 = mx.load(str(latest_checkpoint(folder) / "adapters.safetensors"))
    assert latest_checkpoint(folder).name == "step-0000004"
    assert not all(mx.array_equal(top[k], step4[k]).item() for k in top)
    assert not [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporaries


def test_a_run_stopped_before_its_first_save_can_start_over(tmp_path):
    """Ctrl-C before the first checkpoint left train_log.jsonl (step 0) alone: the rerun
    was refused ("already holds ... pass --resume") and --resume was refused ("no
    checkpoint ... run without --resume"), a loop with no way out but deleting by hand.
    Nothing there can be resumed or lost, so the run starts over; a real checkpoint or
    adapter is still protected."""
    cfg = config(tmp_path, steps=2, save_every=2, report_every=1, eval_every=2, val_rows=8)
    folder = Path(cfg.adapter_path)
    folder.mkdir(parents=True)
    (folder / "train_log.jsonl").write_text('{"step": 0, "val_loss": 7.0}\n')
    (folder / "checkpoints" / "step-0000001").mkdir(parents=True)  # killed inside its first save
    result = train(cfg, quiet=True)
    assert result.steps == 2 and (folder / "adapters.safetensors").is_file()
    assert [r["step"] for r in map(json.loads, (folder / "train_log.jsonl").read_text().splitlines())] == [0, 1, 2]
    with pytest.raises(HarnessError, match="already holds an adapter or a training run"):
        train(cfg, quiet=True)


def test_resume_with_no_steps_left_says_so(trained, capsys):
    """`--resume --steps 10` on a run at step 40 trained nothing and printed "adapter written
    ... after 40 steps"; the same with steps equal to the run's did too."""
    from harness.cli import main

    folder = trained.adapter_path
    with pytest.raises(HarnessError) as exc:
        train(config(folder.parent, steps=10), resume=True, quiet=True)
    assert exc.value.field == "steps" and "already at step 40" in exc.value.one_line()
    assert train(config(folder.parent), resume=True, quiet=True).new_steps == 0
    cfg = folder.parent / "again.yaml"
    cfg.write_text(json.dumps({k: v for k, v in config(folder.parent).identity().items()}
                              | {"adapter_path": str(folder), "steps": 40}))
    capsys.readouterr()
    assert main(["train", str(cfg), "--resume", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "nothing to train" in out and "adapter written" not in out


def test_resume_into_an_adapter_without_checkpoint_points_elsewhere(tmp_path):
    """--resume on an mlx_lm.lora adapter folder said "run without --resume", which is then
    refused because the folder holds an adapter: each message sent the user to the other."""
    from conftest import make_random_adapter

    cfg = config(tmp_path, steps=2)
    make_random_adapter(MODEL, Path(cfg.adapter_path))
    with pytest.raises(HarnessError) as exc:
        train(cfg, resume=True, quiet=True)
    assert "without --resume" not in exc.value.one_line() and "another adapter_path" in exc.value.one_line()


def test_a_stopping_measurement_with_no_answer_end_says_it_was_not_made(tmp_path, capsys):
    """max_seq_length 20 cuts every validation answer of the stories rows (27-30 tokens,
    prompts 11-16) before its EOS: the tally finds no answer end, ``eos_top1`` is absent, and
    the run said nothing, which read as "it stops". Now one warning says the measurement
    could not be made and why, in the log the scorecard and eval read."""
    from harness.train.log import read_warnings

    data = stories_data(tmp_path / "data")
    result = train(config_from_dict(dict(model=str(STORIES), data=str(data), adapter_path=str(tmp_path / "ad"),
                                         steps=2, batch_size=4, learning_rate=1e-4, eval_every=2, save_every=2,
                                         report_every=2, max_seq_length=20)), allow_lint_errors=True)
    assert "whether the adapter stops could not be measured" in capsys.readouterr().err
    log = [json.loads(line) for line in (result.adapter_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "val_loss" in r] == [0, 2] and not any("eos_top1" in r for r in log)
    warned = [w for w in read_warnings(result.adapter_path / "train_log.jsonl") if "stops" in w]
    assert warned == ["whether the adapter stops could not be measured: no validation answer keeps its end "
                      "token '</s>' (each is longer than max_seq_length=20 and was cut before it), so none "
                      "shows where an answer ends; raise max_seq_length or shorten the validation rows to "
                      "measure it"], warned
