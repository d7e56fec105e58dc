"""What a `harness` start costs: the work a run need not do is not done."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_parser_does_not_import_the_training_loop():
    # `harness train --help` lists the config keys, read from harness.train.config; building
    # the parser (every command, eval included) must not pull in the loop, optimizers or numpy.
    loaded = _modules_after("from harness.cli import build_parser; build_parser()")
    assert "harness.train.config" in loaded
    assert "harness.train.loop" not in loaded and "mlx.optimizers" not in loaded


def test_train_names_still_resolve():
    import harness.train as train

    assert train.TrainConfig.__name__ == "TrainConfig" and callable(train.train)
    try:
        train.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("unknown names must raise AttributeError")
