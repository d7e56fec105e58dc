"""The pytest plugin: the `harness_run` fixture and gates collected as pytest items,
exercised in a user's scratch folder with pytester."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conftest import FIXTURE_MODEL, ROOT

pytest_plugins = ("pytester",)

# pytester's in-process runs drop the modules they imported afterwards; numpy and mlx cannot be
# imported twice in one process, so everything an eval touches is imported here first.
import harness.baseline, harness.gates, harness.pytest_plugin, harness.reports.html, harness.runner  # noqa: E401,E402,F401
import mlx.core, mlx_lm  # noqa: E401,E402,F401

SMOKE = ROOT / "suites" / "smoke.yaml"
SQL_ADAPTER = ROOT / "fixtures" / "adapters" / "sql"
PLUGIN = ("-p", "harness.pytest_plugin")


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """The temporary directory the plugin's run folders go to, private to the test.
    ``tempfile.tempdir`` too: the process computed it from TMPDIR long before."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def scratch(pytester, tmp_path, monkeypatch, temp_dir):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    return pytester


def _failing_suite(folder, name="smoke"):
    """smoke with a gate no adapter on the fixture reaches (exact_match is 0 there) and one it does
    (a drop margin of 1.0: three items cannot show a tighter one)."""
    import yaml

    doc = yaml.safe_load(SMOKE.read_text())
    doc["name"] = name
    doc["gates"] = {"exact_match": {"min": 0.9, "max_drop_vs_base": 1.0}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_fixture_in_a_user_test_file(scratch):
    gated = _failing_suite(scratch.path)
    scratch.makepyfile(test_release=f"""
        import math

        def test_adapter_passes(harness_run):
            run = harness_run({str(SMOKE)!r}, {str(FIXTURE_MODEL)!r}, adapters={{"sql": {str(SQL_ADAPTER)!r}}})
            assert run.passed and run.failed_gates == []
            assert run.results["suites"][0]["name"] == "smoke"
            assert set(run.results["suites"][0]["models"]) == {{"base", "sql"}}
            assert 0.0 <= run.metric("smoke", "sql", "exact_match") <= 1.0
            assert (run.out / "index.html").is_file()

        def test_a_failed_gate_shows(harness_run):
            run = harness_run([{str(gated)!r}], {str(FIXTURE_MODEL)!r}, limit=3)
            assert not run.passed
            assert [g["metric"] for g in run.failed_gates] == ["exact_match"]
            assert "0.9" in run.failed_gates[0]["reason"]
            try:
                run.metric("smoke", "nobody", "exact_match")
            except KeyError as exc:
                assert "base" in str(exc)
            else:
                raise AssertionError("unknown model should raise KeyError")
    """)
    result = scratch.runpytest(*PLUGIN)
    result.assert_outcomes(passed=2)


def test_gates_are_collected_items(scratch):
    args = (*PLUGIN, "--harness-suites", str(SMOKE), "--harness-model", str(FIXTURE_MODEL),
            "--harness-adapter", f"sql={SQL_ADAPTER}", "--harness-out", str(scratch.path / "report"))
    collected = scratch.runpytest(*args, "--collect-only", "-q")
    gates = json.loads((scratch.path / "report" / "results.json").read_text())["suites"][0]["gates"]
    assert gates  # whatever smoke.yaml gates, each gate is one item named suite/model/metric/kind
    lines = [ln for ln in collected.stdout.lines if "smoke.yaml::" in ln]
    assert sorted(lines) == sorted(f"suites/smoke.yaml::smoke/{g['model']}/{g['metric']}/{g['kind']}" for g in gates)
    result = scratch.runpytest(*args, "-v")
    result.assert_outcomes(passed=sum(g["passed"] for g in gates), failed=sum(not g["passed"] for g in gates))
    # smoke's drop gate on the sql adapter cannot fail (the base scores 0): a passed item, and the
    # summary says so, as `harness eval` does ('0 of 1 gates passed; 1 passed but could not have failed')
    result.stdout.fnmatch_lines(["harness: 0 of 1 gates passed; 1 passed but could not have failed, see summary.md;"
                                 " report in *"])


def test_failed_gate_is_a_failure_with_its_reason_and_junit_k_x_apply(scratch):
    gated, other = _failing_suite(scratch.path), _failing_suite(scratch.path, "smoke2")
    junit = scratch.path / "junit.xml"
    args = (*PLUGIN, "--harness-suites", str(gated), str(other), "--harness-model", str(FIXTURE_MODEL),
            "--harness-adapter", f"sql={SQL_ADAPTER}", "--harness-limit", "3")
    result = scratch.runpytest(*args, f"--junitxml={junit}")
    result.assert_outcomes(failed=2, passed=2)  # per suite: sql's min fails, its drop vs base passes
    result.stdout.fnmatch_lines(["*collected 4 items*",
                                 "*smoke / sql / exact_match (min): exact_match = 0.000*below the floor 0.900*"])
    failures = {c.get("name"): c.find("failure") for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(failures) == {f"{s}/sql/exact_match/{k}" for s in ("smoke", "smoke2")
                             for k in ("min", "max_drop_vs_base")}
    failed = failures["smoke/sql/exact_match/min"]
    assert failed is not None and "below the floor 0.900" in failed.get("message")
    assert failures["smoke/sql/exact_match/max_drop_vs_base"] is None

    only = scratch.runpytest(*args, "-k", "smoke2 and min")
    only.assert_outcomes(failed=1, deselected=3)
    first = scratch.runpytest(*args, "-x")
    assert first.parseoutcomes()["failed"] == 1  # stopped at the first failed gate of two


def test_bad_suite_is_a_usage_error(scratch):
    result = scratch.runpytest(*PLUGIN, "--harness-suites", str(scratch.path / "nope.yaml"),
                               "--harness-model", str(FIXTURE_MODEL))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*harness:*nope.yaml*"])


def test_entry_point_loads_the_plugin_when_installed(tmp_path):
    """pip-install the project (no deps, offline) and run plain `pytest --harness-*` in a scratch folder:
    the pytest11 entry point, not -p, brings the plugin in."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(ROOT)], check=True, capture_output=True,
                   timeout=300)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target), HARNESS_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
                           "--harness-suites", str(SMOKE), "--harness-model", str(FIXTURE_MODEL),
                           "--harness-adapter", f"sql={SQL_ADAPTER}"], cwd=scratch, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "smoke.yaml::smoke/sql/exact_match/" in proc.stdout


def test_fixture_reports_bad_input_once_and_takes_one_adapter_as_a_string(scratch):
    """`adapters="sql=PATH"` was split into characters ("--adapter 's' must be NAME=PATH"), and each bad
    input printed the harness error twice, joined by "During handling of the above exception"."""
    scratch.makepyfile(test_bad=f"""
        def test_adapter_as_one_string(harness_run):
            harness_run({str(SMOKE)!r}, {str(FIXTURE_MODEL)!r}, adapters="sql=/no/such/adapter", limit=1)

        def test_missing_suite(harness_run):
            harness_run("nope.yaml", {str(FIXTURE_MODEL)!r})
    """)
    result = scratch.runpytest(*PLUGIN)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=2)
    # Count in the failure reports only: the short summary repeats the message when the terminal is
    # wide enough (CI's is), which is pytest's doing, not a second print.
    out = result.stdout.str().split("short test summary info")[0]
    assert out.count("harness: /no/such/adapter [--adapter sql]: adapter folder not found") == 1
    assert out.count("harness: nope.yaml: suite file or folder not found") == 1
    assert "During handling" not in out and "must be NAME=PATH" not in out


def test_a_run_with_no_gates_is_not_a_pass(scratch):
    """A suite whose gates are off gives no items: pytest exits 5 (no tests collected), never 0."""
    import yaml

    doc = yaml.safe_load(SMOKE.read_text())
    doc["gates"] = False
    (scratch.path / "ungated.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = scratch.runpytest(*PLUGIN, "--harness-suites", str(scratch.path / "ungated.yaml"),
                               "--harness-model", str(FIXTURE_MODEL), "--harness-adapter", f"sql={SQL_ADAPTER}",
                               "--harness-limit", "2")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["*harness: no gate applied*measured, not gated*"])


def test_a_gates_node_id_reruns_that_gate_alone(scratch):
    """What an IDE passes to rerun one test: the suite file and the gate's name. Suites under
    the rootdir are collected as files; one outside it is still gated (added after collection)."""
    gated = _failing_suite(scratch.path, "gated")
    args = (*PLUGIN, "--harness-suites", str(gated), str(SMOKE), "--harness-model", str(FIXTURE_MODEL),
            "--harness-adapter", f"sql={SQL_ADAPTER}", "--harness-limit", "3")
    listed = scratch.runpytest(*args, "--collect-only", "-q")
    ids = [ln for ln in listed.stdout.lines if ".yaml::" in ln]
    assert "gated.yaml::gated/sql/exact_match/min" in ids, ids  # collected from the scratch folder
    assert "suites/smoke.yaml::smoke/sql/exact_match/max_drop_vs_base" in ids, ids  # outside the rootdir
    one = scratch.runpytest(*args, "gated.yaml::gated/sql/exact_match/min")
    one.assert_outcomes(failed=1)
    one.stdout.fnmatch_lines(["*below the floor 0.900*"])
    other = scratch.runpytest(*args, "gated.yaml::gated/sql/exact_match/max_drop_vs_base")
    other.assert_outcomes(passed=1)


def test_a_renamed_adapter_is_not_gated_against_the_baseline_silently(scratch):
    """`harness eval` warns when the baseline has no model of a candidate's name (a renamed
    adapter is not gated against it); the plugin dropped that warning: a regressed adapter
    passed as '2 passed' under a new name with nothing said. Now the terminal summary and the
    fixture's warnings name it, and --harness-strict-baseline fails it as a gate."""
    from harness.baseline import approve
    from harness.pytest_plugin import run_harness_eval

    first = run_harness_eval(str(SMOKE), str(FIXTURE_MODEL), {"sql": str(SQL_ADAPTER)},
                             out=scratch.path / "v1")
    baseline = approve(first.out, scratch.path / "baseline.json")
    args = (*PLUGIN, "--harness-suites", str(SMOKE), "--harness-model", str(FIXTURE_MODEL),
            "--harness-adapter", f"renamed={SQL_ADAPTER}", "--harness-baseline", str(baseline))
    result = scratch.runpytest(*args)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*harness: WARNING baseline*has no model 'renamed'*--harness-strict-baseline*"])
    strict = scratch.runpytest(*args, "--harness-strict-baseline", "-rf")
    strict.assert_outcomes(failed=1, passed=1)
    strict.stdout.fnmatch_lines(["FAILED *smoke/renamed/baseline/baseline_missing*"])
    scratch.makepyfile(test_release=f"""
        def test_release(harness_run):
            run = harness_run({str(SMOKE)!r}, {str(FIXTURE_MODEL)!r}, adapters={{"renamed": {str(SQL_ADAPTER)!r}}},
                              baseline={str(baseline)!r})
            assert run.passed and run.baseline_warnings
    """)
    fixture = scratch.runpytest(*PLUGIN, "test_release.py")
    # only the baseline warning is counted: an installed copy (nox's venv) adds pytest's own
    # PytestAssertRewriteWarning for the already-imported plugin, three of them in CI's runs
    fixture.assert_outcomes(passed=1)
    assert fixture.stdout.str().count("HarnessBaselineWarning: baseline") == 1
    fixture.stdout.fnmatch_lines(["*HarnessBaselineWarning: baseline*has no model 'renamed'*"])
    # strict with nothing to be strict against is a mistake, as in `harness eval`
    alone = scratch.runpytest(*PLUGIN, "--harness-suites", str(SMOKE), "--harness-model", str(FIXTURE_MODEL),
                              "--harness-strict-baseline")
    assert alone.ret == pytest.ExitCode.USAGE_ERROR
    alone.stderr.fnmatch_lines(["*--harness-strict-baseline needs --harness-baseline*"])


def test_strict_baseline_without_a_baseline_fails_the_fixture_too(scratch):
    """With --harness-strict-baseline and only the fixture (no --harness-suites), a
    harness_run call without a baseline ran ungated against any baseline and passed: the
    strict flag did nothing, where `harness eval --strict-baseline` without --baseline is a
    usage error."""
    scratch.makepyfile(test_release=f"""
        def test_release(harness_run):
            harness_run({str(SMOKE)!r}, {str(FIXTURE_MODEL)!r})
    """)
    result = scratch.runpytest(*PLUGIN, "test_release.py", "--harness-strict-baseline")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*harness: *--harness-strict-baseline*needs a baseline*baseline=PATH*"])


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_a_limit_below_one_is_a_usage_error(scratch, limit):
    """`--harness-limit -3` sliced the cases to all but the last 3 and gated those; `0` ran no
    case and failed every gate as 'the run produced no value'. `harness eval --limit` refuses both."""
    result = scratch.runpytest(*PLUGIN, "--harness-suites", str(SMOKE), "--harness-model", str(FIXTURE_MODEL),
                               "--harness-adapter", f"sql={SQL_ADAPTER}", "--harness-limit", limit)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*harness: [[]--harness-limit[]]: limit must be a whole number of at least 1, not {limit}*"])


def test_the_gate_run_reads_harness_device_as_harness_eval_does(scratch, monkeypatch):
    """The docs' macOS CI step sets HARNESS_DEVICE=cpu (hosted runners have no usable Metal);
    `harness eval` applies it, the plugin's in-process eval ignored it (HARNESS_DEVICE=tpu ran
    as if unset), so a pytest gate on such a runner went to the GPU."""
    monkeypatch.setenv("HARNESS_DEVICE", "tpu")
    result = scratch.runpytest(*PLUGIN, "--harness-suites", str(SMOKE), "--harness-model", str(FIXTURE_MODEL),
                               "--harness-limit", "1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*harness: [[]HARNESS_DEVICE[]]: HARNESS_DEVICE='tpu' is not a device*"])



def test_a_passing_session_leaves_no_temporary_run_folder(scratch, temp_dir):
    """Every session without --harness-out left a /tmp/harness-run-* folder (~0.6 MB) behind,
    one more per harness_run call."""
    scratch.makepyfile(test_release=f"""
        def test_release(harness_run):
            run = harness_run({str(SMOKE)!r}, {str(FIXTURE_MODEL)!r})
            assert run.passed and (run.out / "index.html").is_file()  # there while the session runs
    """)
    result = scratch.runpytest(*PLUGIN, "--harness-suites", str(SMOKE), "--harness-model", str(FIXTURE_MODEL),
                               "--harness-adapter", f"sql={SQL_ADAPTER}")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert list(temp_dir.glob("harness-run-*")) == []
    result.stdout.fnmatch_lines(["harness: *; report removed at the end (all passed; --harness-out DIR keeps it)"])
    bad = scratch.runpytest(*PLUGIN, "--harness-suites", "nope.yaml", "--harness-model", str(FIXTURE_MODEL))
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert list(temp_dir.glob("harness-run-*")) == []  # made before the input was read, removed after


def test_a_failed_session_keeps_its_reports_and_says_where(scratch, temp_dir):
    """One debugs a failed gate, or a failed assertion on a run whose gates passed, with the
    scorecard: both kept, and the terminal summary names each folder."""
    gated = _failing_suite(scratch.path, "gated")
    scratch.makepyfile(test_release=f"""
        def test_release(harness_run):
            run = harness_run({str(SMOKE)!r}, {str(FIXTURE_MODEL)!r})
            assert run.passed
            assert run.metric("smoke", "sql", "exact_match") > 2, "the user's own bar"
    """)
    result = scratch.runpytest(*PLUGIN, "--harness-suites", str(gated), "--harness-model", str(FIXTURE_MODEL),
                               "--harness-adapter", f"sql={SQL_ADAPTER}", "--harness-limit", "3")
    result.assert_outcomes(failed=2, passed=1)  # the min gate, the user's bar; the drop gate passes
    kept = {json.loads((k / "results.json").read_text())["suites"][0]["name"]: k
            for k in temp_dir.glob("harness-run-*")}
    assert set(kept) == {"gated", "smoke"} and all((k / "index.html").is_file() for k in kept.values())
    text = result.stdout.str()
    assert f"report in {kept['gated'] / 'index.html'} (kept: a gate or a test failed" in text
    assert f"harness: report of a harness_run kept in {kept['smoke'] / 'index.html'}" in text


def test_harness_options_without_suites_or_harness_run_are_a_usage_error(scratch):
    """`pytest --harness-model M --harness-adapter v2=A --harness-baseline B` with --harness-suites
    forgotten evaluated nothing and passed on the user's other tests (exit 0): the adapter was never
    gated. Harness options that gate nothing are a usage error; a selected test that uses
    harness_run (which reads them as defaults) still runs."""
    scratch.makepyfile(test_other="def test_unrelated():\n    assert True\n")
    args = (*PLUGIN, "--harness-model", str(FIXTURE_MODEL), "--harness-adapter", f"sql={SQL_ADAPTER}")
    result = scratch.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--harness-model, --harness-adapter given, but no --harness-suites*"
                                 "nothing would be gated*"])
    scratch.makepyfile(test_release=f"""
        def test_release(harness_run):
            assert harness_run({str(SMOKE)!r}).results["suites"][0]["models"].keys() == {{"base", "sql"}}
    """)
    scratch.runpytest(*args).assert_outcomes(passed=2)
    # the run's own tests deselected: nothing gated again
    assert scratch.runpytest(*args, "-k", "unrelated").ret == pytest.ExitCode.USAGE_ERROR
    scratch.runpytest(*PLUGIN, "test_other.py").assert_outcomes(passed=1)  # no harness option: untouched
    # the same options as a project default (addopts) for its harness_run tests: running only the
    # project's other tests is not refused
    scratch.makeini(f"[pytest]\naddopts = --harness-model {FIXTURE_MODEL} --harness-adapter sql={SQL_ADAPTER}\n")
    scratch.runpytest(*PLUGIN, "test_other.py").assert_outcomes(passed=1)
