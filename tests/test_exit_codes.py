"""The exit-code contract end to end, through the real `harness` process: 1 when a run
fails its own check (a diverging training run, like a failed gate), 2 for bad input, 3
only for a bug in the harness, each with one line on stderr and no traceback unless
--debug."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import run_harness

ROOT = Path(__file__).resolve().parents[1]


def _sql_rows(folder: Path, n: int = 16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid"):
        lines = (ROOT / "fixtures" / "data" / "wikisql" / f"{split}.jsonl").read_text().splitlines()[:n]
        rows = []
        for line in lines:
            prompt, answer = json.loads(line)["text"].split("\nA: ", 1)
            rows.append(json.dumps({"prompt": prompt + "\nA: ", "completion": answer}))
        (folder / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def test_diverging_training_exits_1_in_one_line(tmp_path):
    cfg = {"model": str(ROOT / "fixtures" / "model"), "data": str(_sql_rows(tmp_path / "data")),
           "adapter_path": str(tmp_path / "adapter"), "num_layers": -1, "batch_size": 4, "steps": 8,
           "learning_rate": 1e30, "report_every": 1, "eval_every": 100, "save_every": 100, "val_rows": 4}
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(cfg))
    done = run_harness("train", str(config), "--allow-lint-errors")
    assert done.returncode == 1, done.stderr[-2000:]
    lines = [x for x in done.stderr.splitlines() if x.startswith("harness:")]
    assert len(lines) == 1 and lines[0].startswith("harness: failed:"), done.stderr[-2000:]
    assert "became" in lines[0] and "lower learning_rate" in lines[0]
    assert "Traceback" not in done.stderr


def _crash(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """`harness score` with the scoring step broken the way a bug breaks it (a RuntimeError
    from deep inside), through the real CLI entry point in a fresh process."""
    suite = ROOT / "suites" / "smoke.yaml"
    cases = yaml.safe_load(suite.read_text())["cases"]
    completions = tmp_path / "outputs.jsonl"
    completions.write_text("".join(json.dumps({"id": c["id"], "output": c["answer"]}) + "\n"
                                   for c in cases))
    code = ("import sys, harness.runner as r\n"
            "def boom(*a, **k):\n    raise RuntimeError('deliberate bug for the exit-code test')\n"
            "r.score_model = boom\n"
            "from harness.cli import main\n"
            f"sys.exit(main({['score', str(suite), '--completions', str(completions), '--out', str(tmp_path / 'out'), *extra]!r}))\n")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "HARNESS_BLAS": "reference"})


def test_a_bug_exits_3_in_one_line_and_writes_nothing(tmp_path):
    done = _crash(tmp_path)
    assert done.returncode == 3, done.stderr[-2000:]
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert lines == ["harness: internal error: RuntimeError: deliberate bug for the exit-code test "
                     "(rerun with --debug for the traceback)"], done.stderr
    assert not (tmp_path / "out").exists()


def test_a_bug_shows_its_traceback_with_debug(tmp_path):
    done = _crash(tmp_path, "--debug")
    assert done.returncode == 3
    assert "Traceback (most recent call last)" in done.stderr and "deliberate bug" in done.stderr
