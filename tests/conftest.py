"""Shared fixtures: the project's fixture model, the third-party stories260K model, and a
way to run the real `harness` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_MODEL = ROOT / "fixtures" / "model"
STORIES_MODEL = ROOT.parent / "shared" / "models" / "stories260K"


@pytest.fixture(scope="session")
def fixture_base():
    from harness.models import load_base

    return load_base(str(FIXTURE_MODEL))


@pytest.fixture(scope="session")
def stories_base():
    from harness.models import load_base

    assert STORIES_MODEL.is_dir(), f"third-party test model missing: {STORIES_MODEL} (../shared/models)"
    return load_base(str(STORIES_MODEL))


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


def run_harness(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: int = 600
                ) -> subprocess.CompletedProcess:
    """Run `python -m harness.cli ARGS` as a user would, capturing its output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
