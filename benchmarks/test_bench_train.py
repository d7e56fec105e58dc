"""LoRA training: `harness train` against `mlx_lm.lora` on the same data and settings
(pytest-benchmark; the workloads are bench_train.py's, each trainer in its own process).

Targets (read, not asserted): tokens/s ratio >= 1.2x, peak-memory ratio <= 1.0x.
"""

from __future__ import annotations

import itertools
import os

from bench_train import run_harness, run_mlx_lm

SETTINGS = {"batch_size": 8, "steps": 125, "lr": 1e-3, "report": 25}  # one epoch of the 1000 rows


def test_harness_train_vs_mlx_lm_lora(benchmark, race, tmp_path):
    from harness.blas import preload_env

    benchmark.group = "train"
    env = preload_env()
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    counter = itertools.count()

    def fresh():
        work = tmp_path / f"round-{next(counter)}"
        work.mkdir()
        return (work,)

    r = race(lambda work: run_harness(work, SETTINGS, dict(env)), lambda work: run_mlx_lm(work, SETTINGS, dict(env)),
             rounds=int(os.environ.get("BENCH_TRAIN_ROUNDS", "2")), args=fresh)
    h, m = r["harness_result"], r["peer_result"]
    tps_h, tps_m = h["tokens"] / h["seconds"], m["tokens"] / m["seconds"]
    race.record(peer="mlx_lm.lora", harness_tok_s=tps_h, peer_tok_s=tps_m, ratio=tps_h / tps_m,
                peak_memory_ratio=h["peak_gb"] / m["peak_gb"], harness_val_loss=h["val_loss"],
                peer_val_loss=m["val_loss"], harness_tokens=h["tokens"], peer_tokens=m["tokens"],
                target="tokens/s >= 1.2, peak memory <= 1.0",
                meets_target=tps_h / tps_m >= 1.2 and h["peak_gb"] <= m["peak_gb"])
