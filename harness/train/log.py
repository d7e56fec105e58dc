"""``train_log.jsonl`` in the adapter folder, and the progress lines on stderr.

One JSON object per line, read by the reports for loss curves. Every record has ``step``
(optimizer updates done) and some of:

- ``train_loss`` (token-weighted mean over the steps since the last report), ``lr``,
  ``tokens_per_s`` (trained target tokens per second of training, all ranks),
  ``trained_tokens`` (cumulative), ``peak_memory_gb``;
- ``val_loss`` (token-weighted mean over the fixed validation rows; step 0 is the base),
  with ``eos_top1`` and ``eos_prob``: the share of validation answers whose final EOS
  target is the model's top choice, and its mean probability (``stopping.py``);
- ``test_loss`` (once, after the last step, when the data has ``test.jsonl``);
- ``warnings``: signs that the run did not train as meant (a validation loss that never
  moved, warmup longer than the run, many passes over few rows, rows longer than the
  model's positions, an adapter that does not predict EOS where answers end, and the
  problems ``harness lint-data`` finds in the data, one line per kind with its count);
  ``harness eval`` shows them beside the adapter's scores.

The file is rewritten atomically at every report, so a killed run leaves a whole file,
and ``--resume`` keeps the records up to its checkpoint's step.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from ..atomic import write_text
from ..errors import HarnessError

LOG_NAME = "train_log.jsonl"


class TrainLog:
    def __init__(self, folder: Path, enabled: bool = True):
        self.path = folder / LOG_NAME
        self.records: list[dict] = []
        self.enabled = enabled  # rank 0 writes; other ranks only keep records

    def load_until(self, step: int) -> None:
        """Keep the records of an earlier run up to ``step`` (resume)."""
        self.records = []
        if self.path.is_file():
            for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    rec = None
                if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
                    raise HarnessError("not a training log record (cut off or edited?)", path=self.path,
                                       line=number, hint="delete that line (the checkpoint is intact), "
                                                         "or restart training without --resume")
                if rec["step"] <= step:
                    self.records.append(rec)

    def add(self, step: int, **values: float) -> None:
        clean = {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
                 for k, v in values.items()}
        if self.records and self.records[-1]["step"] == step:
            self.records[-1].update(clean)
        else:
            self.records.append({"step": step, **clean})

    def warn(self, step: int, text: str, echo: bool = True) -> None:
        """Record a warning at ``step`` (kept in the log) and print it (unless ``echo`` is
        False: the caller printed it in a longer form, as the lint problems are)."""
        if self.records and self.records[-1]["step"] == step:
            rec = self.records[-1]
        else:
            rec = {"step": step}
            self.records.append(rec)
        rec.setdefault("warnings", []).append(text)
        if self.enabled and echo:
            print(f"harness train: warning: {text}", file=sys.stderr, flush=True)

    def flush(self) -> None:
        if self.enabled:
            text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in self.records)
            write_text(self.path, text)


def read_warnings(path: Path) -> list[str]:
    """The warnings a training log records (empty when it has none or cannot be read)."""
    out: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("warnings"), list):
            out.extend(str(w) for w in rec["warnings"])
    return out


def progress_line(total: int, rec: dict) -> str:
    parts = [f"step {rec['step']:>{len(str(total))}}/{total}"]
    if "train_loss" in rec:
        parts.append(f"loss {rec['train_loss']:.4f}")
    if "val_loss" in rec:
        parts.append(f"val {rec['val_loss']:.4f}")
    if "lr" in rec:
        parts.append(f"lr {rec['lr']:.2e}")
    if "tokens_per_s" in rec:
        parts.append(f"{rec['tokens_per_s']:,.0f} tok/s")
    if "peak_memory_gb" in rec:
        parts.append(f"peak {rec['peak_memory_gb']:.3f} GB")
    return "  ".join(parts)


class Progress:
    """A bar redrawn in place on a terminal (steps, tokens/s, ETA); when stderr is not a
    terminal, one line per report plus a plain progress line every few seconds
    (``harness.progress``)."""

    def __init__(self, total: int, enabled: bool, initial: int = 0):
        from ..progress import Progress as LiveProgress

        self.total = total
        self.enabled = enabled
        self.live = LiveProgress(total, "train", "steps", enabled=enabled, initial=initial)
        self.tty = self.live.tty
        self.last = ""
        self.tokens = 0

    def tick(self, step: int, tokens: int = 0) -> None:
        self.tokens += tokens
        if self.tty:
            self.live.done, self.live.tokens = step, self.tokens
            filled = int(30 * step / self.total)
            bar = "#" * filled + "-" * (30 - filled)
            sys.stderr.write(f"\r[{bar}] {self.live.line()}  {self.last}\x1b[K")
            sys.stderr.flush()
        else:
            self.live.update(step, self.tokens)

    def report(self, rec: dict) -> None:
        if not self.enabled:
            return
        self.last = progress_line(self.total, rec)
        if self.tty:
            sys.stderr.write("\r\x1b[K")
        print(self.last, file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        if self.enabled:
            if self.tty:
                sys.stderr.write("\r\x1b[K")
            print(text, file=sys.stderr, flush=True)
