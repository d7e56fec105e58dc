"""pytest plugin (entry point ``pytest11``): gate a model or adapter from your own test suite.

Two ways in:

- the ``harness_run`` fixture runs an eval in-process and returns a :class:`HarnessResult`
  (``.passed``, ``.failed_gates``, ``.metric(suite, model, name)``, ``.results``)::

      def test_release(harness_run):
          run = harness_run("suites/sql.yaml", "models/base", adapters={"v2": "adapters/v2"})
          assert run.passed, run.failed_gates
          assert run.metric("sql", "v2", "sql_execution") >= 0.4

- ``pytest --harness-suites suites/ --harness-model models/base --harness-adapter v2=adapters/v2``
  runs the eval before collection and makes one test item per gate, so ``-k``, ``-x``,
  ``--lf``, ``--junitxml`` and node ids (``suites/sql.yaml::sql/v2/sql_execution/min``, what
  an IDE passes to rerun one test) work on gates; a failed gate fails with its reason.

Without ``--harness-out`` (or ``out=``) a run's report goes to a temporary folder that is
removed when the session ends, unless the session or the run failed: then it is kept (a
scorecard is what one debugs a failed gate with) and the terminal summary prints its path.

Nothing heavy is imported until an eval runs, so installing the package costs other
test suites nothing.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import pytest

__all__ = ["HarnessResult", "HarnessBaselineWarning", "run_harness_eval"]


class HarnessResult:
    """One eval's outcome: the parsed ``results.json`` and ways into it."""

    def __init__(self, results: dict, out: Path, exit_code: int, baseline_warnings: list[str] | None = None):
        self.results = results
        self.out = Path(out)
        self.exit_code = exit_code
        # what the baseline could not gate (a renamed adapter, a new suite): `harness eval` prints these
        self.baseline_warnings = list(baseline_warnings or [])

    @property
    def gates(self) -> list[dict]:
        return [g for s in self.results["suites"] for g in s.get("gates") or []]

    @property
    def failed_gates(self) -> list[dict]:
        return [g for g in self.gates if not g.get("passed")]

    @property
    def passed(self) -> bool:
        return self.results.get("verdict") == "pass" and not self.failed_gates

    def metric(self, suite: str, model: str, name: str) -> float:
        """The value of metric ``name`` of ``model`` on ``suite``; KeyError names what exists."""
        by_name = {s["name"]: s for s in self.results["suites"]}
        if suite not in by_name:
            raise KeyError(f"no suite {suite!r} in this run (suites: {', '.join(sorted(by_name))})")
        models = by_name[suite].get("models") or {}
        if model not in models:
            raise KeyError(f"no model {model!r} on suite {suite!r} (models: {', '.join(models)})")
        metrics = models[model].get("metrics") or {}
        if name not in metrics:
            raise KeyError(f"no metric {name!r} for {suite}/{model} (metrics: {', '.join(sorted(metrics))})")
        value = metrics[name].get("value")
        return float("nan") if value is None else float(value)

    def __repr__(self) -> str:
        return (f"HarnessResult(verdict={self.results.get('verdict')!r}, gates={len(self.gates)}, "
                f"failed={len(self.failed_gates)}, out={str(self.out)!r})")


def _adapter_specs(adapters: Mapping[str, Any] | Iterable[str] | None):
    from .runner import parse_adapter_args

    if adapters is None:
        return []
    if isinstance(adapters, (str, Path)):  # one NAME=PATH, not a sequence of characters
        adapters = [adapters]
    if isinstance(adapters, Mapping):
        values = [f"{name}={path}" for name, path in adapters.items()]
    else:
        values = [str(a) for a in adapters]
    return parse_adapter_args(values)


def run_harness_eval(suites: str | Path | Iterable[str | Path], model: str | Path, adapters=None,
                     baseline: str | Path | None = None, out: str | Path | None = None,
                     limit: int | None = None, *, use_cache: bool = True,
                     strict_baseline: bool = False) -> HarnessResult:
    """What ``harness eval`` does, in-process: returns the result instead of an exit code.
    ``strict_baseline``: a candidate or suite the baseline lacks, and a gate the baseline was
    approved under that the suite drops or loosens, is a failed gate, as with ``harness eval
    --strict-baseline``; otherwise it is in ``baseline_warnings``."""
    import json
    import tempfile

    from .cli import apply_device_env
    from .errors import HarnessError

    apply_device_env()  # HARNESS_DEVICE, as `harness eval` reads it (hosted macOS runners: cpu)
    from .runner import finish, load_suites, run_eval
    from .suite import find_suites

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        # a slice would take it: 0 ran nothing ("no value for this gated metric"), -3 all but 3 cases
        raise HarnessError(f"limit must be a whole number of at least 1, not {limit!r}", field="--harness-limit",
                           hint="--harness-limit N or harness_run(..., limit=N): the first N cases of each suite")
    if strict_baseline and baseline is None:  # nothing to be strict against: as `harness eval --strict-baseline`
        raise HarnessError("strict baseline checking needs a baseline", field="--harness-strict-baseline",
                           hint="pass baseline=PATH to harness_run, or --harness-baseline PATH")
    if isinstance(suites, (str, Path)):
        suites = [suites]
    paths = find_suites([str(s) for s in suites])
    specs = _adapter_specs(adapters)
    base_doc = None
    if baseline is not None:
        from .baseline import load_baseline

        base_doc = load_baseline(Path(baseline))
    out_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="harness-run-"))
    from .run_marker import start

    command = ["pytest", "harness_run", *map(str, paths), "--model", str(model)]
    mark = start(out_dir, command)  # a reused out folder: see harness.run_marker
    suites = load_suites(paths, limit)  # loaded once: what is evaluated is what is gated
    results = run_eval(suites, str(model), specs, limit=limit, use_cache=use_cache, baseline=base_doc,
                       command=command)
    flag = "--harness-baseline FILE (or harness_run(..., baseline=FILE))"
    code = finish(results, suites, out_dir, base_doc, strict_baseline=strict_baseline, mark=mark, baseline_flag=flag)
    from .baseline import gating_notes

    uncovered = gating_notes(base_doc, results, suites, strict=strict_baseline,
                             strict_flag="--harness-strict-baseline", baseline_flag=flag)
    return HarnessResult(json.loads((out_dir / "results.json").read_text(encoding="utf-8")), out_dir, code,
                         uncovered)


# --- options ---------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlx-harness", "mlx-harness: evaluation gates as tests")
    group.addoption("--harness-suites", nargs="+", metavar="PATH", default=None,
                    help="suite YAML files or folders: run them and collect one test per gate")
    group.addoption("--harness-model", metavar="PATH", default=None, help="base model folder (or hub id)")
    group.addoption("--harness-adapter", action="append", default=[], metavar="NAME=PATH",
                    help="an adapter to evaluate beside the base (repeatable)")
    group.addoption("--harness-baseline", metavar="PATH", default=None, help="approved baseline to gate against")
    group.addoption("--harness-strict-baseline", action="store_true", default=False,
                    help="a model or suite the baseline lacks (a renamed adapter), or a gate the baseline was "
                         "approved under and the suite now drops or loosens, is a failed gate, not a warning")
    group.addoption("--harness-out", metavar="DIR", default=None,
                    help="report folder of the gate run (default: a temporary folder, removed at the "
                         "session's end unless the session or the run failed)")
    group.addoption("--harness-limit", type=int, default=None, metavar="N", help="only the first N cases per suite")


# --- the fixture -----------------------------------------------------------------------

@pytest.fixture(scope="session")
def harness_run(pytestconfig: pytest.Config):
    """``harness_run(suites, model, adapters=None, baseline=None, out=None, limit=None)`` ->
    :class:`HarnessResult`. Omitted ``suites``/``model``/``adapters``/``baseline`` come from
    ``--harness-*`` options. Identical calls in one session run once."""
    from .errors import HarnessError

    memo: dict[tuple, HarnessResult] = {}

    def run(suites=None, model=None, adapters=None, baseline=None, out=None, limit=None) -> HarnessResult:
        suites = suites if suites is not None else pytestconfig.getoption("harness_suites")
        model = model if model is not None else pytestconfig.getoption("harness_model")
        if adapters is None and pytestconfig.getoption("harness_adapter"):
            adapters = pytestconfig.getoption("harness_adapter")
        baseline = baseline if baseline is not None else pytestconfig.getoption("harness_baseline")
        if not suites or not model:
            pytest.fail("harness_run needs suites and a model (arguments, or --harness-suites and "
                        "--harness-model)", pytrace=False)
        key = (repr(suites), str(model), repr(adapters), str(baseline), str(out), limit)
        if key not in memo:
            folder = out if out is not None else _temporary_run_folder(pytestconfig)
            try:
                memo[key] = run_harness_eval(suites, model, adapters, baseline, folder, limit,
                                             strict_baseline=pytestconfig.getoption("harness_strict_baseline"))
            except HarnessError as exc:
                failure = f"harness: {exc.one_line()}"
            else:
                failure = None
            if failure:  # failed outside the except: otherwise pytest prints the error twice, chained
                pytest.fail(failure, pytrace=False)
            _record_run(pytestconfig, memo[key])
            for text in memo[key].baseline_warnings:  # in pytest's warnings summary, beside the test
                warnings.warn(HarnessBaselineWarning(text), stacklevel=2)
        return memo[key]

    return run


# --- gates as collected items ------------------------------------------------------------

class HarnessBaselineWarning(UserWarning):
    """A candidate or suite of the run that the baseline has no entry for: not gated against it."""


class GateFailed(Exception):
    """A gate did not pass; the message is the gate's reason."""


class GateItem(pytest.Item):
    def __init__(self, *, gate: dict, suite_path: str | None, **kwargs):
        super().__init__(**kwargs)
        self.gate = gate
        self.suite_path = suite_path
        self.add_marker("harness_gate")

    def runtest(self) -> None:
        if not self.gate.get("passed"):
            g = self.gate
            raise GateFailed(f"{g.get('suite')} / {g.get('model')} / {g.get('metric')} ({g.get('kind')}): "
                             f"{g.get('reason')}")

    def repr_failure(self, excinfo, style=None):  # type: ignore[override]
        if isinstance(excinfo.value, GateFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.suite_path or "harness", None, f"gate {self.name}"


class GateRun(pytest.Collector):
    """The parent node of one suite's gate items, for a suite outside the paths pytest
    collects: node ids still read ``suites/sql.yaml::sql/v2/metric/kind``."""

    def collect(self):  # items are made by pytest_collection_modifyitems
        return []


class SuiteFile(pytest.File):
    """A suite file pytest reached while collecting (a path it walked, or a node id such as
    ``suites/sql.yaml::sql/v2/sql_execution/min`` that an IDE passes to rerun one gate)."""

    def collect(self):
        result = self.config.stash[_RESULT_KEY]
        self.config.stash[_FILES_KEY].add(self.path.resolve())
        for suite in result.results["suites"]:
            if _suite_path(suite) == self.path.resolve():
                yield from _gate_items(self, suite)


def _suite_path(suite: dict) -> Path:
    return Path(suite.get("path") or suite["name"]).resolve()


def _gate_items(parent: pytest.Collector, suite: dict) -> list[GateItem]:
    """One item per gate of ``suite``, named suite/model/metric/kind (``#2`` for a repeat)."""
    seen: dict[str, int] = {}
    made = []
    for gate in suite.get("gates") or []:
        name = f"{gate.get('suite')}/{gate.get('model')}/{gate.get('metric')}/{gate.get('kind')}"
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}#{seen[name]}"
        made.append(GateItem.from_parent(parent, name=name, gate=gate, suite_path=str(_suite_path(suite))))
    return made


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "harness_gate: a gate of an mlx-harness eval (--harness-suites)")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Run the eval once, before collection, so suite files can be collected like test files."""
    config = session.config
    suites = config.getoption("harness_suites")
    if not suites:
        return
    from .errors import HarnessError

    model = config.getoption("harness_model")
    if not model:
        raise pytest.UsageError("--harness-suites needs --harness-model PATH")
    if config.getoption("harness_strict_baseline") and not config.getoption("harness_baseline"):
        raise pytest.UsageError("--harness-strict-baseline needs --harness-baseline PATH")  # as harness eval says
    out = config.getoption("harness_out") or _temporary_run_folder(config)
    try:
        result = run_harness_eval(suites, model, config.getoption("harness_adapter"),
                                  config.getoption("harness_baseline"), out,
                                  config.getoption("harness_limit"),
                                  strict_baseline=config.getoption("harness_strict_baseline"))
    except HarnessError as exc:
        raise pytest.UsageError(f"harness: {exc.one_line()}") from None
    _record_run(config, result)
    config.stash[_RESULT_KEY] = result
    config.stash[_FILES_KEY] = set()
    if not any(s.get("gates") for s in result.results["suites"]):
        print(f"harness: the run had no gates (report in {result.out})", file=sys.stderr)


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    result = parent.config.stash.get(_RESULT_KEY, None)
    if result is None or file_path.suffix not in (".yaml", ".yml"):
        return None
    if any(_suite_path(s) == file_path.resolve() for s in result.results["suites"]):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselection, so they apply to gates too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """Gates of suites pytest did not collect as files (outside the paths it walked) are added
    here, unless the command line named suite files (an IDE rerunning one gate): then those
    files decide what runs."""
    result = config.stash.get(_RESULT_KEY, None)
    if result is None:
        return
    suites = result.results["suites"]
    here = config.invocation_params.dir
    named = {(here / str(arg).split("::", 1)[0]).resolve() for arg in config.args}
    if named & {_suite_path(s) for s in suites}:
        return
    for suite in suites:
        path = _suite_path(suite)
        if path in config.stash[_FILES_KEY]:
            continue  # collected as a file: its items are in already
        try:
            nodeid = path.relative_to(config.rootpath).as_posix()
        except ValueError:
            nodeid = path.as_posix()
        parent = GateRun.from_parent(session, name=path.name, path=path, nodeid=nodeid)
        made = _gate_items(parent, suite)
        # counted in "collected N items" like any collected file
        session.ihook.pytest_collectreport(report=pytest.CollectReport(nodeid, "passed", None, made))
        items.extend(made)


def pytest_collection_finish(session: pytest.Session) -> None:
    """``--harness-model``/``--harness-adapter``/``--harness-baseline`` without
    ``--harness-suites``, and no selected test that uses ``harness_run``: nothing is gated. A CI
    line that forgot ``--harness-suites`` passed with the adapter never evaluated (an adapter
    failing all five of its gates: '1 passed', exit 0); it is a usage error, as a mistake in
    ``harness eval``'s arguments is. Options from ``addopts`` are left alone."""
    config = session.config
    if config.getoption("harness_suites"):
        return
    # only options typed for this invocation: ones from addopts (a project default for its
    # harness_run tests) must not refuse a run of the project's other tests
    typed = [str(a) for a in config.invocation_params.args]
    given = [f"--harness-{name}" for name in ("model", "adapter", "baseline")
             if config.getoption(f"harness_{name}")
             and any(a == f"--harness-{name}" or a.startswith(f"--harness-{name}=") for a in typed)]
    if not given or any("harness_run" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    raise pytest.UsageError(f"harness: {', '.join(given)} given, but no --harness-suites and no selected test "
                            "uses harness_run: nothing would be gated (add --harness-suites suites/)")


_RESULT_KEY = pytest.StashKey[HarnessResult]()
_FILES_KEY = pytest.StashKey[set]()  # suite files pytest collected itself
_TEMPORARY_KEY = pytest.StashKey[dict]()  # run folders made here -> their HarnessResult (None: no run finished)
_KEPT_KEY = pytest.StashKey[list]()  # of those, the ones kept at the session's end


# --- temporary run folders ----------------------------------------------------------------

def _temporary_run_folder(config: pytest.Config) -> Path:
    """A report folder for a run given none; every session used to leave one (~0.6 MB) in
    the temporary directory for good."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="harness-run-"))
    config.stash.setdefault(_TEMPORARY_KEY, {})[path] = None
    return path


def _record_run(config: pytest.Config, result: HarnessResult) -> None:
    folders = config.stash.get(_TEMPORARY_KEY, {})
    if result.out in folders:
        folders[result.out] = result


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Which temporary run folders to keep: a finished run's, when the session failed (a
    failed gate, or the user's own assertion on the run) or the run did (its failed gate
    deselected): one debugs those with the scorecard. The terminal summary, which pytest
    writes after this hook, prints their paths; pytest_unconfigure removes the rest."""
    failed = exitstatus != pytest.ExitCode.OK
    runs = session.config.stash.get(_TEMPORARY_KEY, {})
    session.config.stash[_KEPT_KEY] = [path for path, result in runs.items()
                                       if result is not None and (failed or not result.passed)]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the temporary run folders not kept; one whose run never finished (bad input,
    an interrupt before the session began) holds no report and goes too."""
    kept = set(config.stash.get(_KEPT_KEY, []))
    for path in config.stash.get(_TEMPORARY_KEY, {}):
        if path not in kept:
            shutil.rmtree(path, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    result = config.stash.get(_RESULT_KEY, None)
    temporary = config.stash.get(_TEMPORARY_KEY, {})
    kept = config.stash.get(_KEPT_KEY, [])
    if result is not None:
        from .gates import tally

        # what the run's gates vouch for, as `harness eval` says it: a gate that could not fail
        # (a drop gate on a base already at 0) is a passed test, and would read as a real pass
        if result.out in temporary and result.out not in kept:
            where = "report removed at the end (all passed; --harness-out DIR keeps it)"
        else:
            where = f"report in {result.out / 'index.html'}"
            if result.out in kept:
                where += " (kept: a gate or a test failed; a temporary folder, remove it when done)"
        terminalreporter.write_line(f"harness: {tally(result.results)}; {where}")
        for text in result.baseline_warnings:  # baseline gating never vanishes silently
            terminalreporter.write_line(f"harness: WARNING {text}", yellow=True)
    for path in kept:
        if result is None or path != result.out:
            terminalreporter.write_line(f"harness: report of a harness_run kept in {path / 'index.html'} "
                                        "(a gate or a test failed; a temporary folder, remove it when done)")
