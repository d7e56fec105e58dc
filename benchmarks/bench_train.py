"""LoRA training speed and memory of `harness train` against `mlx_lm.lora`, side by side.

Same base (the fixture model), data (the WikiSQL sample, `text` rows: every token is a
target in both trainers), LoRA settings (rank 8, scale 20, every linear of every block),
optimizer (Adam, constant LR), batch size and steps (one epoch, so both train on exactly
the same rows and the same real tokens). Each trainer runs in its own process, so each
peak memory is its own. Prints:

- trained tokens/s: real target tokens per second of training (each trainer's own timer,
  validation excluded). mlx-lm's count includes one padding target per row, which is
  subtracted here; the two real-token totals must agree, and the script checks they do;
- peak memory (``mx.get_peak_memory``) of each process;
- final validation loss: each trainer's own number, and both adapters scored by the same
  evaluator (all of valid.jsonl, exact mask), which is the comparable one.

Targets (issue 3): tokens/s ratio >= 1.2x, peak-memory ratio <= 1.0x, validation losses
within 2%. Absolute numbers on shared machines are noise; read the ratios.

Usage: python benchmarks/bench_train.py [--batch-size 8] [--steps 125] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = ROOT / "fixtures" / "model"
DATA = ROOT / "fixtures" / "data" / "wikisql"

# mlx_lm.lora's own training path (lora.train_model), with a callback to read its reports.
MLX_LM_CHILD = r"""
import json, sys, types
import numpy as np
from mlx_lm.lora import CONFIG_DEFAULTS, train_model
from mlx_lm.tuner.callbacks import TrainingCallback
from mlx_lm.tuner.datasets import load_dataset
from mlx_lm.utils import load

args = dict(CONFIG_DEFAULTS)
args.update(json.loads(sys.argv[1]))
args = types.SimpleNamespace(**args)
reports, vals = [], []

class Record(TrainingCallback):
    def on_train_loss_report(self, info):
        reports.append(info)
    def on_val_loss_report(self, info):
        vals.append(info["val_loss"])

np.random.seed(args.seed)  # as mlx_lm.lora.run does: its batch order uses numpy's global RNG
model, tokenizer = load(args.model)
train_set, valid_set, _ = load_dataset(args, tokenizer)
train_model(args, model, train_set, valid_set, Record())
json.dump({"reports": reports, "vals": vals}, open(sys.argv[2], "w"))
"""


def run_mlx_lm(work: Path, settings: dict, env: dict) -> dict:
    out = work / "mlx_lm.json"
    args = {"model": str(MODEL), "data": str(DATA), "train": True, "adapter_path": str(work / "mlx_lm_adapter"),
            "fine_tune_type": "lora", "optimizer": "adam", "num_layers": -1,
            "batch_size": settings["batch_size"], "iters": settings["steps"], "val_batches": -1,
            "learning_rate": settings["lr"], "steps_per_report": settings["report"],
            "steps_per_eval": settings["steps"], "save_every": settings["steps"], "seed": 0,
            "max_seq_length": 2048, "lora_parameters": {"rank": 8, "scale": 20.0, "dropout": 0.0}}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", MLX_LM_CHILD, json.dumps(args), str(out)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    data = json.loads(out.read_text())
    reports = data["reports"]
    seconds = sum((r["trained_tokens"] - p) / r["tokens_per_second"]
                  for r, p in zip(reports, [0] + [r["trained_tokens"] for r in reports[:-1]]))
    counted = reports[-1]["trained_tokens"]
    real = counted - settings["batch_size"] * settings["steps"]  # one padding target per row
    return {"tokens": real, "seconds": seconds, "peak_gb": max(r["peak_memory"] for r in reports),
            "val_loss": data["vals"][-1], "wall": wall, "adapter": work / "mlx_lm_adapter"}


def run_harness(work: Path, settings: dict, env: dict, **extra) -> dict:
    import yaml

    cfg = extra | {"model": str(MODEL), "data": str(DATA), "adapter_path": str(work / "harness_adapter"),
           "format": "text", "optimizer": "adam", "num_layers": -1, "batch_size": settings["batch_size"],
           "steps": settings["steps"], "learning_rate": settings["lr"], "report_every": settings["report"],
           "eval_every": settings["steps"], "save_every": settings["steps"], "seed": 0, "max_seq_length": 2048,
           "lora_parameters": {"rank": 8, "scale": 20.0, "dropout": 0.0}}
    (work / "harness.yaml").write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.cli", "train", str(work / "harness.yaml")], env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    log = [json.loads(x) for x in (work / "harness_adapter" / "train_log.jsonl").read_text().splitlines()]
    reports = [r for r in log if "train_loss" in r]
    seconds = sum((r["trained_tokens"] - p) / r["tokens_per_s"]
                  for r, p in zip(reports, [0] + [r["trained_tokens"] for r in reports[:-1]]))
    return {"tokens": reports[-1]["trained_tokens"], "seconds": seconds,
            "peak_gb": max(r["peak_memory_gb"] for r in reports),
            "val_loss": [r["val_loss"] for r in log if "val_loss" in r][-1], "wall": wall,
            "adapter": work / "harness_adapter"}


def padded_tokens(batch_size: int) -> tuple[int, int, int]:
    """(real, mlx-lm padded, harness padded) input tokens of one epoch, from the row lengths.

    mlx-lm: batches of consecutive rows (its length sort keys on the raw record, a no-op),
    each padded to a multiple of 32 (inputs of 1 + 32k minus the shifted last token);
    harness: its own epoch order, padded to a multiple of 8.
    """
    import numpy as np
    from mlx_lm.utils import load_tokenizer

    from harness.train.batching import epoch_order

    tok = load_tokenizer(MODEL)
    lengths = []
    for line in (DATA / "train.jsonl").read_text().splitlines():
        ids = tok.encode(json.loads(line)["text"])
        lengths.append(len(ids) + (ids[-1] != tok.eos_token_id))
    lengths = np.array(lengths)
    mlx = sum(batch_size * 32 * ((lengths[i:i + batch_size].max() + 31) // 32)
              for i in range(0, len(lengths) - batch_size + 1, batch_size))
    ours = sum(batch_size * 8 * -(-(lengths[b].max() - 1) // 8) for b in epoch_order(lengths, batch_size, 0, 0))
    return int((lengths - 1).sum()), int(mlx), int(ours)


def same_evaluator(adapters: list[Path]) -> list[float]:
    """Token-weighted loss over every row of valid.jsonl, exact mask, for each adapter."""
    import mlx.core as mx

    from harness.models import adapter_applied, load_base
    from harness.train.batching import eval_batches
    from harness.train.data import load_splits
    from harness.train.loop import evaluate

    base = load_base(str(MODEL))
    splits, *_ = load_splits(DATA, "text", "auto", base.tokenizer, None, None, 2048)
    batches = eval_batches(splits["valid"].examples, 8, 8)
    losses = []
    for path in adapters:
        with adapter_applied(base, path.name, path):
            losses.append(evaluate(base.model, batches, mx.distributed.init()))
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=125, help="default: one epoch of the 1000 rows at batch 8")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the two trainers this many times; "
                                                              "keep each one's best")
    parser.add_argument("--max-batch-tokens", type=int, default=2048,
                        help="also run harness train with this max_batch_tokens (0: skip)")
    args, unknown = parser.parse_known_args()
    if unknown:
        print(f"bench_train: ignoring arguments for other benchmarks: {' '.join(unknown)}")
    from harness.blas import preload_env

    env = preload_env()
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    settings = {"batch_size": args.batch_size, "steps": args.steps, "lr": args.lr,
                "report": max(1, args.steps // 5)}
    runs: dict[str, list[dict]] = {"mlx_lm": [], "harness": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            order = (("mlx_lm", run_mlx_lm), ("harness", run_harness))
            for name, fn in order if i % 2 == 0 else order[::-1]:
                work = Path(tmp) / f"{name}-{i}"
                work.mkdir()
                runs[name].append(fn(work, settings, env))
            if name == "harness" and args.max_batch_tokens:
                work = Path(tmp) / f"sliced-{i}"
                work.mkdir()
                runs.setdefault("sliced", []).append(
                    run_harness(work, settings, env, max_batch_tokens=args.max_batch_tokens))
        best = {name: max(rs, key=lambda r: r["tokens"] / r["seconds"]) for name, rs in runs.items()}
        common = same_evaluator([best["mlx_lm"]["adapter"], best["harness"]["adapter"]])
        sliced = best.get("sliced")

    m, h = best["mlx_lm"], best["harness"]
    tps_m, tps_h = m["tokens"] / m["seconds"], h["tokens"] / h["seconds"]
    print(f"train bench: fixture model, WikiSQL sample, batch {args.batch_size}, {args.steps} steps, "
          f"LoRA r8 on every linear of every block, Adam lr {args.lr}, best of {args.rounds} round(s)")
    print(f"  {'':34}{'mlx_lm.lora':>14}{'harness train':>16}")
    print(f"  {'real target tokens trained':34}{m['tokens']:>14,}{h['tokens']:>16,}"
          + ("" if m["tokens"] == h["tokens"] else "   (differ: not the same rows!)"))
    if args.steps * args.batch_size == 1000:  # exactly one epoch: the padding is known
        real, pad_m, pad_h = padded_tokens(args.batch_size)
        print(f"  {'input tokens computed, with padding':34}{pad_m:>14,}{pad_h:>16,}"
              f"   ({pad_m / real:.2f}x and {pad_h / real:.2f}x the real tokens)")
    print(f"  {'training seconds (own timer)':34}{m['seconds']:>14.2f}{h['seconds']:>16.2f}")
    print(f"  {'process wall seconds':34}{m['wall']:>14.2f}{h['wall']:>16.2f}")
    print(f"  {'trained tokens/s':34}{tps_m:>14,.0f}{tps_h:>16,.0f}")
    print(f"  {'peak memory (GB)':34}{m['peak_gb']:>14.4f}{h['peak_gb']:>16.4f}")
    print(f"  {'final val loss (own evaluator)':34}{m['val_loss']:>14.4f}{h['val_loss']:>16.4f}")
    print(f"  {'final val loss (same evaluator)':34}{common[0]:>14.4f}{common[1]:>16.4f}")
    ratio, mem, diff = tps_h / tps_m, h["peak_gb"] / m["peak_gb"], (common[1] - common[0]) / common[0]

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"tokens/s ratio harness/mlx_lm: {ratio:.2f}x (target >= 1.2x: {verdict(ratio >= 1.2)})")
    print(f"peak-memory ratio harness/mlx_lm: {mem:.2f}x (target <= 1.0x: {verdict(mem <= 1.0)})")
    print(f"val loss harness vs mlx_lm (same evaluator): {diff:+.1%} (target within 2% or better: "
          f"{verdict(diff <= 0.02)})")
    if sliced:
        print(f"with max_batch_tokens={args.max_batch_tokens} (long-tail batches run as row slices, same "
              f"update): {sliced['tokens'] / sliced['seconds'] / tps_m:.2f}x tokens/s, "
              f"{sliced['peak_gb'] / m['peak_gb']:.2f}x peak memory, final val loss {sliced['val_loss']:.4f}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
