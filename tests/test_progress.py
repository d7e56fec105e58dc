"""Live progress: redrawn on a terminal, periodic plain lines in logs, silent with --quiet."""

from __future__ import annotations

import io

from harness.progress import Progress
from conftest import FIXTURE_MODEL, ROOT, run_harness


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_log_gets_periodic_plain_lines_with_rate_and_eta():
    clock, out = FakeClock(), io.StringIO()
    bar = Progress(10, "  sql", stream=out, interval=5, clock=clock)
    clock.t += 1
    bar.update(1, 40)  # within the interval: nothing yet
    assert out.getvalue() == ""
    clock.t += 4
    bar.update(5, 200)  # 5 s in, half done, 40 tok/s
    assert out.getvalue() == "  sql  5/10 items  40 tok/s  ETA 0:05\n"
    clock.t += 5
    bar.update(10, 400)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 2
    assert lines[-1] == "  sql  10/10 items  40 tok/s  done in 0:10"


def test_eta_moves_on_tokens_while_a_batch_decodes_together():
    clock = FakeClock()
    bar = Progress(4, stream=io.StringIO(), max_tokens=100, clock=clock)
    clock.t += 10
    bar.update(0, 100)  # no item finished, a quarter of the tokens decoded
    assert bar.fraction() == 0.25 and "ETA 0:30" in bar.line()


def test_resumed_work_counts_only_this_runs_steps_for_eta():
    clock = FakeClock()
    bar = Progress(200, "train", "steps", stream=io.StringIO(), initial=100, clock=clock)
    clock.t += 10
    bar.update(150)
    assert "150/200 steps" in bar.line() and "ETA 0:10" in bar.line()


def test_terminal_redraws_one_line_and_clears_it():
    clock, out = FakeClock(), Terminal()
    bar = Progress(3, "x", stream=out, clock=clock)
    bar.update(1, 5)
    clock.t += 0.01
    bar.update(2, 10)  # too soon to redraw
    clock.t += 1
    bar.update(3, 15)  # the last one always draws
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 3 and "\n" not in text  # two draws and the final clear
    assert "x  3/3 items" in text and text.endswith("\r\x1b[K")


def test_disabled_prints_nothing():
    out = Terminal()
    bar = Progress(3, stream=out, enabled=False)
    bar.update(3, 10)
    bar.close()
    assert out.getvalue() == ""


def test_eval_prints_progress_in_logs_and_quiet_silences_it(tmp_path):
    args = ["eval", str(ROOT / "suites" / "smoke.yaml"), "--model", str(FIXTURE_MODEL), "--no-cache"]
    env = {"HARNESS_PROGRESS_SECONDS": "0"}  # every update is due: a plain line each
    loud = run_harness(*args, "--out", str(tmp_path / "a"), env=env)
    quiet = run_harness(*args, "--out", str(tmp_path / "b"), "--quiet", env=env)
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    progress = [line for line in loud.stderr.splitlines() if line.startswith("  smoke  ")]
    assert progress and "items" in progress[-1] and "tok/s" in progress[-1], loud.stderr
    assert "\r" not in loud.stderr  # stderr is a pipe here, not a terminal
    assert not [line for line in quiet.stderr.splitlines() if line.startswith("  smoke  ")]
    assert "smoke: " in quiet.stderr  # the summary line stays


def test_training_progress_lines_and_quiet(monkeypatch, capsys):
    from harness.train.log import Progress as TrainProgress

    monkeypatch.setenv("HARNESS_PROGRESS_SECONDS", "0")
    bar = TrainProgress(10, enabled=True)
    bar.tick(5, tokens=300)
    line = capsys.readouterr().err.strip()
    assert line.startswith("train  5/10 steps") and "tok/s" in line and "ETA" in line
    TrainProgress(10, enabled=False).tick(5, tokens=300)  # --quiet
    assert capsys.readouterr().err == ""
