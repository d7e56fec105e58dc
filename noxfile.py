"""Sessions: eval (the main job, offline, on the fixture model), tests, calibration, bench, fixtures.

Each session builds its own virtualenv, so a new machine needs only `pip install nox`.
On Debian/Ubuntu as root, the sessions that need them install the system packages
too: OpenBLAS (MLX's CPU wheel links the slow reference BLAS; see harness/blas.py)
and Chromium (the scorecard is checked in a real browser).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT))
from harness.blas import find_openblas, preload_env  # noqa: E402  (stdlib-only module)

nox.options.sessions = ["eval"]
nox.options.reuse_existing_virtualenvs = True

FIXTURE_MODEL = "fixtures/model"
FIXTURE_ADAPTERS = ROOT / "fixtures" / "adapters"


WHY = {"libopenblas0-pthread": "OpenBLAS: MLX's CPU wheel links the slow reference BLAS",
       "chromium": "Chromium: the scorecard's browser test drives it (headless)"}


def _apt_install(session: nox.Session, packages: dict[str, bool]) -> None:
    """Install the missing Debian packages when we can (root, apt-get), saying which and why
    first and keeping apt's own output for a failure; else say what is missing."""
    missing = [pkg for pkg, present in packages.items() if not present]
    if not missing or not sys.platform.startswith("linux"):
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        session.log("installing system packages with apt-get: " + "; ".join(
            f"{pkg} ({WHY.get(pkg, 'needed')})" for pkg in missing))
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, silent=True, env=env)
        session.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing,
                    external=True, silent=True, env=env)  # output shown only if it fails
        session.log(f"installed {' '.join(missing)}")
    else:
        session.warn(f"not installed: {' '.join(missing)} (apt-get install them for speed/browser tests)")


def _env(cache: str | None = None) -> dict[str, str]:
    """The harness's environment: OpenBLAS preloaded. The completion cache is the CLI's own
    default (platformdirs' user cache folder, or $HARNESS_CACHE_DIR), so `nox -s eval` and a
    manual `harness eval` share it; only the tests pass their own (``cache``)."""
    env = preload_env({})
    if cache:
        env["HARNESS_CACHE_DIR"] = cache
    return env


FIXTURE_BASELINE = "reports/baselines/fixture.json"


def _adapter_args(names: tuple[str, ...] = ("sql", "domain")) -> list[str]:
    args = []
    for name in names:
        if (FIXTURE_ADAPTERS / name / "adapters.safetensors").is_file():
            args += ["--adapter", f"{name}=fixtures/adapters/{name}"]
    return args


@nox.session
def eval(session: nox.Session) -> None:
    """The main job: every shipped suite on the fixture base model and its adapters, gated
    against the base and the committed approved baseline (reports/baselines/fixture.json)."""
    _apt_install(session, {"libopenblas0-pthread": find_openblas() is not None})
    session.install("-e", ".")
    out = session.posargs[0] if session.posargs else "reports/latest"
    baseline = ["--baseline", FIXTURE_BASELINE] if (ROOT / FIXTURE_BASELINE).is_file() else []
    session.run("harness", "eval", "suites", "--model", FIXTURE_MODEL, *_adapter_args(), *baseline,
                "--out", out, env=_env())


@nox.session
def red(session: nox.Session) -> None:
    """The red path: the shipped suites on three regressed fixture adapters (wrong domain
    answers shipped as the next `domain`, a one-task fine-tune that forgot JSON, a looping
    one). The gates fail and the session exits 1; the scorecard is reports/red/index.html."""
    _apt_install(session, {"libopenblas0-pthread": find_openblas() is not None})
    session.install("-e", ".")
    # regress goes in as the next release of `domain`, as a user would ship it: the base knows
    # little of the platform (keywords 0.14), so what it must not fall below is the approved
    # baseline's `domain` (0.83), not the base.
    session.run("harness", "eval", "suites", "--model", FIXTURE_MODEL,
                "--adapter", "domain=fixtures/adapters/regress", *_adapter_args(("forgetful", "looping")),
                "--baseline", FIXTURE_BASELINE, "--out", "reports/red", env=_env())


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (CI runs exactly this)."""
    _apt_install(session, {"libopenblas0-pthread": find_openblas() is not None,
                           "chromium": shutil.which("chromium") is not None})
    session.install("-e", ".[test]")
    # the tests use a cache of their own (under .nox/tests/tmp), not the user's
    # Not session.create_tmp(): it points TMPDIR into the repository, and the tests' temporary
    # suites must sit outside it (data outside a suite's folder and repository is refused).
    cache = Path(session.virtualenv.location) / "completion-cache"
    session.run("pytest", *session.posargs, env=_env(cache=str(cache)))


@nox.session
def calibration(session: nox.Session) -> None:
    """Seeded simulation through the real gate code: false passes at the margin, A/A, power,
    the latency p95 and latency-mean cases (the tables in docs/ci-gating.md). Exits 1 when a
    target is missed."""
    session.install("-e", ".")
    session.run("python", "-m", "harness.calibration", *session.posargs, env=_env())


@nox.session
def bench(session: nox.Session) -> None:
    """Speed and memory against mlx-lm as pytest-benchmark tests (benchmarks/test_bench_*.py).

    The harness and its mlx-lm peer are measured in the same run, interleaved; ratios are in
    each benchmark's extra_info. Every run is saved under .benchmarks/ (--benchmark-autosave)
    and as reports/bench.json, so `nox -s bench -- --benchmark-compare` shows drift since the
    last saved run (add --benchmark-compare-fail=min:10% to fail on it).
    """
    _apt_install(session, {"libopenblas0-pthread": find_openblas() is not None})
    session.install("-e", ".[test]")
    (ROOT / "reports").mkdir(exist_ok=True)
    session.run("pytest", "benchmarks", "-p", "no:cacheprovider", "--benchmark-enable",
                "--benchmark-autosave", f"--benchmark-storage={ROOT / '.benchmarks'}",
                f"--benchmark-json={ROOT / 'reports' / 'bench.json'}", "--benchmark-columns=min,median,max,rounds",
                *session.posargs, env=_env())


@nox.session
def fixtures(session: nox.Session) -> None:
    """Rebuild the fixture world from its seeds: pretrain the base (fixtures/pretrain.py),
    write the adapters' data, train the five adapters from fixtures/train_configs/, and
    check the result against the committed files."""
    session.install("-e", ".[test]")
    session.run("python", "fixtures/build_fixture_model.py", env=_env())
    session.run("python", "fixtures/make_adapter_data.py", "--check", env=_env())
    session.run("python", "fixtures/train_fixture_adapters.py", env=_env())
    if (ROOT / ".git").exists():
        # Weights and adapter configs must come back bit for bit; train_log.jsonl holds timings.
        session.run("git", "diff", "--stat", "--exit-code", "--", "fixtures/model",
                    "fixtures/adapters/*/adapters.safetensors", "fixtures/adapters/*/adapter_config.json",
                    external=True)


@nox.session
def catalog(session: nox.Session) -> None:
    """The field-failure catalog: each failure reproduced on the fixture world and caught by
    the harness run as a user runs it; one row per failure, exit 1 if any is not caught
    (`nox -s catalog -- --fast` skips the rows that train)."""
    _apt_install(session, {"libopenblas0-pthread": find_openblas() is not None})
    session.install("-e", ".")
    session.run("python", "catalog/run_catalog.py", "--markdown", "reports/catalog.md", *session.posargs,
                env=_env())


@nox.session
def heldout(session: nox.Session) -> None:
    """The sql adapter on WikiSQL questions the project never saw: `nox -s heldout -- FILE.jsonl`
    (rows in the sample's notation, e.g. mlx-examples' lora/data/test.jsonl). Exit 1 when the
    adapter's sql_execution is under 0.20 or its gain over the base is not significant."""
    if not session.posargs:
        session.error("give a JSONL file of WikiSQL rows: nox -s heldout -- FILE.jsonl")
    _apt_install(session, {"libopenblas0-pthread": find_openblas() is not None})
    session.install("-e", ".")
    session.run("python", "fixtures/check_sql_heldout.py", *session.posargs, env=_env())
