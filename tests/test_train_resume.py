"""Kill-and-resume: a run SIGKILLed mid-training and resumed ends with the same adapter and
the same log as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import pytest
import yaml

from harness.blas import preload_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
WIKISQL = ROOT / "fixtures" / "data" / "wikisql"
COMPARED = ("step", "train_loss", "val_loss", "lr", "trained_tokens")


def write_config(tmp: Path, adapter: str) -> Path:
    data = tmp / "data"
    if not data.exists():
        data.mkdir()
        for split, n in (("train", 96), ("valid", 16)):
            rows = []
            for line in (WIKISQL / f"{split}.jsonl").read_text().splitlines()[:n]:
                prompt, answer = json.loads(line)["text"].split("\nA: ", 1)
                rows.append(json.dumps({"prompt": prompt + "\nA: ", "completion": answer}))
            (data / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    cfg = {"model": str(ROOT / "fixtures" / "model"), "data": str(data), "adapter_path": str(tmp / adapter),
           "num_layers": -1, "batch_size": 4, "grad_accumulation_steps": 2, "steps": 100000,
           "learning_rate": 2e-3, "report_every": 2, "eval_every": 4, "save_every": 4,
           "lora_parameters": {"rank": 4, "scale": 20.0, "dropout": 0.1},  # dropout: the RNG matters
           "lr_schedule": {"name": "cosine_decay", "arguments": [2e-3, 200], "warmup": 5}}
    path = tmp / f"{adapter}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def harness(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], env=preload_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def checkpoint_step(adapter: Path) -> int:
    try:
        return json.loads((adapter / "checkpoints" / "latest.json").read_text())["step"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def compared(log: Path) -> list[dict]:
    return [{k: r[k] for k in COMPARED if k in r} for r in map(json.loads, log.read_text().splitlines())]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    killed_cfg = write_config(tmp_path, "killed")
    killed = tmp_path / "killed"
    proc = harness("train", str(killed_cfg))
    deadline = time.monotonic() + 120
    while checkpoint_step(killed) < 8:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    k = checkpoint_step(killed)
    steps = k + 6  # a few steps past the checkpoint, ending off the save interval

    resumed = harness("train", str(killed_cfg), "--resume", "--steps", str(steps))
    reference_cfg = write_config(tmp_path, "reference")
    reference = harness("train", str(reference_cfg), "--steps", str(steps))
    for p in (resumed, reference):
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]

    a = mx.load(str(killed / "adapters.safetensors"))
    b = mx.load(str(tmp_path / "reference" / "adapters.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert mx.allclose(a[key], b[key], rtol=1e-5, atol=1e-6).item(), key
    log_a, log_b = compared(killed / "train_log.jsonl"), compared(tmp_path / "reference" / "train_log.jsonl")
    assert [r["step"] for r in log_a] == [r["step"] for r in log_b]
    assert log_a[-1]["step"] == steps
    for ra, rb in zip(log_a, log_b):
        assert ra.keys() == rb.keys()
        for key in ra:
            assert abs(ra[key] - rb[key]) <= 1e-5 * max(1.0, abs(rb[key])), (ra, rb)
    cfg_a = json.loads((killed / "adapter_config.json").read_text())
    assert cfg_a["steps"] == steps


def test_resume_without_checkpoint_is_one_clear_line(tmp_path):
    cfg = write_config(tmp_path, "fresh")
    proc = harness("train", str(cfg), "--resume")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.strip().splitlines() == [err.strip()] and "no checkpoint to resume from" in err


@pytest.mark.parametrize("bad", ['{"step": 41, "train_lo', "[1, 2]", '{"loss": 1.0}'])
def test_damaged_log_on_resume_is_one_clear_error(tmp_path, bad):
    """A train_log.jsonl with a cut-off or foreign line (a full disk, a hand edit) made
    --resume end in an internal error (JSONDecodeError, TypeError, KeyError: 'step')."""
    from harness.errors import HarnessError
    from harness.train.log import TrainLog

    (tmp_path / "train_log.jsonl").write_text('{"step": 0, "val_loss": 7.0}\n' + bad + "\n")
    with pytest.raises(HarnessError) as exc:
        TrainLog(tmp_path).load_until(5)
    assert exc.value.line == 2 and exc.value.path.endswith("train_log.jsonl")
