"""Run history (`harness.history.load`, `harness history`), per-item export, and trends in the scorecard."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import FIXTURE_MODEL, ROOT, run_harness

ADAPTER = ["--adapter", f"sql={ROOT / 'fixtures' / 'adapters' / 'sql'}"]
from factories import item, model_result, results, suite_result
from harness.errors import HarnessError
from harness.history import items_table, load


def _write_run(folder, created, verdicts_base, verdicts_ft, commit="abc123", gate_passed=True):
    run = results([suite_result({"base": model_result(verdicts_base), "ft": model_result(verdicts_ft)})])
    run["created"] = created
    run["environment"]["git_commit"] = commit
    run["suites"][0]["gates"] = [{"suite": "smoke", "model": "ft", "metric": "exact_match", "kind": "min",
                                  "passed": gate_passed, "reason": "r", "details": {}}]
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(run))
    return folder


def test_load_one_row_per_run_suite_model_metric(tmp_path):
    _write_run(tmp_path / "runs" / "b", "2025-02-01T00:00:00+00:00", {"a": True, "b": False},
               {"a": True, "b": True}, commit="c2", gate_passed=True)
    _write_run(tmp_path / "runs" / "a", "2025-01-01T00:00:00+00:00", {"a": True, "b": False},
               {"a": False, "b": False}, commit="c1", gate_passed=False)
    df = load([tmp_path / "runs"])
    assert len(df) == 4  # 2 runs x 2 models x 1 metric
    assert list(df["commit"]) == ["c1", "c1", "c2", "c2"]  # oldest run first, whatever the folder names
    ft = df[(df.model == "ft") & (df.metric == "exact_match")]
    assert list(ft["value"]) == [0.0, 1.0]
    assert list(ft["gate_passed"]) == [False, True] and ft["gated"].all()
    assert not df[df.model == "base"]["gated"].any()
    assert (df["n"] == 2).all() and (df["ci_low"] <= df["value"]).all() and (df["value"] <= df["ci_high"]).all()
    assert str(df["created"].dtype).startswith("datetime64")


def test_load_rejects_bad_input(tmp_path):
    with pytest.raises(HarnessError, match="no such file"):
        load([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="no results.json"):
        load([tmp_path / "empty"])
    bad = tmp_path / "bad" / "results.json"
    bad.parent.mkdir()
    bad.write_text("{\n  not json")
    with pytest.raises(HarnessError, match="invalid JSON") as err:
        load([bad.parent])
    assert err.value.line == 2
    bad.write_text('{"suites": 3}')
    with pytest.raises(HarnessError, match="not a harness results.json"):
        load([bad])


def test_a_count_beyond_int64_is_shown_as_unknown_not_a_crash(tmp_path):
    """`n: 1e30` fits the schema (an integer >= 0) but not pandas' Int64: it was exit 3."""
    run = _write_run(tmp_path / "r", "2025-01-01T00:00:00+00:00", {"a": True}, {"a": True})
    data = json.loads((run / "results.json").read_text())
    data["suites"][0]["models"]["ft"]["metrics"]["exact_match"]["n"] = 10 ** 30
    (run / "results.json").write_text(json.dumps(data))
    df = load([run])
    assert df[df.model == "ft"]["n"].isna().all() and (df[df.model == "base"]["n"] == 1).all()


def test_items_table_quotes_formulas_and_has_each_scorer(tmp_path):
    run = results([suite_result({"base": model_result({"q1": True, "q2": False}, output="=HYPERLINK(1)")})])
    df = items_table(run)
    assert list(df.columns) == ["suite", "id", "model", "category", "output", "finish_reason", "target", "error",
                                "exact_match.value", "exact_match.passed"]
    assert list(df["output"]) == ["'=HYPERLINK(1)", "'=HYPERLINK(1)"]
    assert list(df["exact_match.passed"]) == [True, False]
    assert items_table(run, spreadsheet_safe=False)["output"][0] == "=HYPERLINK(1)"


def _cli(*args: str) -> tuple[int, str]:
    """`harness history` / `harness export` in-process (they need no model): (exit code, stderr line)."""
    from harness.cli import build_parser

    try:
        parsed = build_parser().parse_args(list(args))
        return parsed.func(parsed), ""
    except HarnessError as exc:
        return 2, exc.one_line()


def test_two_real_runs_give_history_csv_export_and_trend(tmp_path):
    env = {"HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    runs = tmp_path / "runs"
    for name in ("r1", "r2"):
        proc = run_harness("eval", "suites/smoke.yaml", "--model", str(FIXTURE_MODEL), "--out", str(runs / name),
                           *ADAPTER, env=env)
        assert proc.returncode == 0, proc.stderr
    recorded = json.loads((runs / "r1" / "results.json").read_text())["environment"]
    assert "git_commit" in recorded  # None outside a git checkout, the commit inside one

    csv = tmp_path / "history.csv"
    code, err = _cli("history", str(runs), "--csv", str(csv))
    assert code == 0, err
    df = pd.read_csv(csv)
    assert {"suite", "model", "metric", "value", "ci_low", "ci_high", "n", "created", "commit"} <= set(df.columns)
    assert set(df["run"].map(lambda p: p.split("/")[-2])) == {"r1", "r2"}
    assert set(df["suite"]) == {"smoke"} and "exact_match" in set(df["metric"])

    code, err = _cli("history", str(runs), "--parquet", str(tmp_path / "h.parquet"))
    try:
        import pyarrow  # noqa: F401  (in the test extra: CI takes this branch)
    except ImportError:
        assert code == 2 and "pip install pyarrow" in err
        assert not (tmp_path / "h.parquet").exists()
    else:
        assert code == 0, err
        table = pd.read_parquet(tmp_path / "h.parquet")
        assert list(table.columns) == list(df.columns) and len(table) == len(df)
        for column in ("run", "suite", "model", "metric"):
            assert table[column].tolist() == df[column].tolist()
        assert table["value"].tolist() == pytest.approx(df["value"].tolist())
        assert table["value"].dtype.kind == "f" and table["n"].dtype.kind in "iu"  # typed, unlike CSV

    export = tmp_path / "items.csv"
    code, err = _cli("export", str(runs / "r2"), "--csv", str(export))
    assert code == 0, err
    items = pd.read_csv(export, keep_default_na=False)
    assert len(items) == 12 and set(items["id"]) == {"add-1", "add-2", "mul-1", "cap-1", "col-1", "day-1"}
    assert {"output", "exact_match.value", "exact_match.passed"} <= set(items.columns)

    out = tmp_path / "r3"
    proc = run_harness("eval", "suites/smoke.yaml", "--model", str(FIXTURE_MODEL), "--out", str(out),
                       "--history", str(runs), *ADAPTER, env=env)
    assert proc.returncode == 0, proc.stderr
    page = (out / "index.html").read_text()
    res = json.loads((out / "results.json").read_text())
    gated = {(g["model"], g["metric"]) for g in res["suites"][0]["gates"]}
    assert gated and '<section id="trends">' in page and page.count('class="trend"') == len(gated)  # one per gated metric
    assert "3</td>" in page  # two earlier runs + this one
    assert res["history"]["runs"] == 2 and len(res["history"]["series"][0]["points"]) == 2


def test_parquet_without_an_engine_is_one_clear_error_and_no_file(tmp_path, monkeypatch):
    """Without pyarrow (or fastparquet) `--parquet` refuses before reading anything."""
    import harness.history

    monkeypatch.setattr(harness.history, "parquet_available", lambda: False)
    code, err = _cli("history", str(tmp_path / "no-runs-here"), "--parquet", str(tmp_path / "h.parquet"))
    assert code == 2 and "--parquet" in err and "pip install pyarrow" in err
    assert not (tmp_path / "h.parquet").exists()


def test_csv_read_back_keeps_ids_and_names_as_text(tmp_path):
    """Plain pd.read_csv guesses types: ids 007/010 came back as 7 and 10, a suite named 007 as 7 and a
    category NA as NaN. harness.history.read_csv (what the README tells users to call) reads them as written."""
    from harness.history import read_csv

    base = model_result([item("007", True, category="NA"), item("010", False, category="NA"),
                         item("1e5", None, category="x")])
    run = results([suite_result({"base": base, "2024": base}, name="007")])
    run["suites"][0]["gates"] = [{"suite": "007", "model": "2024", "metric": "exact_match", "kind": "min",
                                  "passed": False, "reason": "r", "details": {}}]
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "results.json").write_text(json.dumps(run))

    assert _cli("export", str(tmp_path / "r1"), "--csv", str(tmp_path / "items.csv"))[0] == 0
    items = read_csv(tmp_path / "items.csv")
    assert items["id"].tolist() == ["007", "010", "1e5"] * 2 and set(items["suite"]) == {"007"}
    assert items["category"].tolist()[:2] == ["NA", "NA"] and set(items["model"]) == {"base", "2024"}
    assert items["target"].tolist()[0] == "4"  # text, like in results.json
    assert str(items["exact_match.passed"].dtype) == "boolean"
    assert items["exact_match.passed"].tolist()[:2] == [True, False] and pd.isna(items["exact_match.passed"][2])
    assert items["exact_match.value"].dtype.kind == "f"

    assert _cli("history", str(tmp_path), "--csv", str(tmp_path / "h.csv"))[0] == 0
    table, loaded = read_csv(tmp_path / "h.csv"), load([tmp_path])
    assert table["suite"].tolist() == ["007", "007"] and table["model"].tolist() == loaded["model"].tolist()
    assert str(table["created"].dtype) == str(loaded["created"].dtype) and table["created"].tolist() == loaded["created"].tolist()
    assert table["n"].dtype == loaded["n"].dtype == "Int64" and table["value"].dtype.kind == "f"
    assert str(table["gate_passed"].dtype) == str(loaded["gate_passed"].dtype) == "boolean"
    flags = dict(zip(table["model"], table["gate_passed"]))
    assert flags["2024"] == False  # a nullable boolean's False
    assert pd.isna(flags["base"])  # no gate looked at base: missing, not False
    assert table["gated"].dtype == bool and table["higher_is_better"].dtype == bool


def test_the_printed_table_shows_every_run_even_at_one_time_or_none(tmp_path, capsys):
    """The table `harness history DIR` prints had one column per `created` second: two runs of
    one second (a CI matrix, parallel runs) showed one run's values ('44 rows from 2 run(s)',
    one column, the other run's 0.0 hidden), and a run whose `created` is no date was left out."""
    same = "2025-01-01T00:00:00+00:00"
    _write_run(tmp_path / "runs" / "linux", same, {"a": True}, {"a": True})
    _write_run(tmp_path / "runs" / "macos", same, {"a": True}, {"a": False})
    undated = _write_run(tmp_path / "runs" / "undated", same, {"a": True}, {"a": True})
    data = json.loads((undated / "results.json").read_text())
    data["created"] = "unknown"  # the schema asks for a string; an edited or foreign one is no date
    (undated / "results.json").write_text(json.dumps(data))
    capsys.readouterr()
    assert _cli("history", str(tmp_path / "runs"))[0] == 0
    out = capsys.readouterr().out
    assert "6 rows from 3 run(s)" in out
    header = next(line for line in out.splitlines() if "linux" in line)
    assert "macos" in header and "undated" in header
    ft = next(line for line in out.splitlines() if line.split()[:1] == ["ft"] or " ft " in line)
    assert ft.split()[-3:] == ["1.0", "1.0", "0.0"], out  # undated first, then by folder


def test_a_killed_writers_temporary_folder_is_not_a_run(tmp_path):
    """An eval killed while it swapped its --out folder in (a CI job cancelled) leaves
    `.v2.<pid>.<random>.tmp/results.json` (the new set, or the old one being deleted) beside
    the runs until the next write there; `harness history reports/` counted it as another run
    (the same results twice, or a replaced run back in the trend)."""
    _write_run(tmp_path / "runs" / "v2", "2025-02-01T00:00:00+00:00", {"a": True}, {"a": True})
    _write_run(tmp_path / "runs" / ".v2.4242.k3j2_x.tmp", "2025-01-01T00:00:00+00:00", {"a": True}, {"a": False})
    _write_run(tmp_path / "runs" / ".v2.4242.k3j2_x.old", "2025-01-01T00:00:00+00:00", {"a": True}, {"a": False})
    df = load([tmp_path / "runs"])
    assert df["run"].nunique() == 1 and (df["value"] == 1.0).all()
    # named on its own, a folder is read whatever its name
    assert load([tmp_path / "runs" / ".v2.4242.k3j2_x.tmp"])["run"].nunique() == 1


def test_a_failed_category_gate_shows_on_its_metric(tmp_path):
    """A run that failed only `keywords[architecture]` (a category gate) had every row of the
    history table at gate_passed True or NA: `df[df.gated & ~df.gate_passed]` found nothing in
    a failed run. The category's gates count for their metric."""
    run = _write_run(tmp_path / "r", "2025-01-01T00:00:00+00:00", {"a": True}, {"a": True})
    data = json.loads((run / "results.json").read_text())
    data["verdict"] = "fail"
    data["suites"][0]["gates"].append({"suite": "smoke", "model": "ft", "metric": "exact_match[architecture]",
                                       "kind": "max_drop_vs_base", "passed": False, "reason": "r",
                                       "details": {"category": "architecture"}})
    (run / "results.json").write_text(json.dumps(data))
    df = load([run])
    failed = df[df["gated"] & ~df["gate_passed"].fillna(True)]
    assert list(zip(failed["model"], failed["metric"])) == [("ft", "exact_match")]


def test_a_baseline_file_is_named_as_such(tmp_path):
    """`harness history reports/baselines/baseline.json` (or export, --only-failing) said 'not a
    valid results file: at suites/0/gates/1: 'suite' is a required property (+3 more)'."""
    from harness.baseline import approve

    run = _write_run(tmp_path / "r", "2025-01-01T00:00:00+00:00", {"a": True}, {"a": True})
    data = json.loads((run / "results.json").read_text())
    data["suites"][0]["gates"] = []
    (run / "results.json").write_text(json.dumps(data))
    baseline = approve(run, tmp_path / "baseline.json")
    for args in (("history", str(baseline)), ("export", str(baseline), "--csv", str(tmp_path / "x.csv"))):
        code, err = _cli(*args)
        assert code == 2 and "this is a baseline file, not a run's results.json" in err, err
        assert "required property" not in err


def _measured_run(folder, created, base_fp="sha256:base", suite_fp="sha256:suite", ids=("a", "b", "c")):
    run = results([suite_result({"base": model_result({i: True for i in ids})}, fingerprint=suite_fp)],
                  base_fp=base_fp)
    run["created"] = created
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(run))
    return run


def _trend_row(now: dict, history: dict) -> dict:
    """The scorecard's one trend row of ``now`` (its base gated on exact_match) over ``history``."""
    from harness.reports.trends import trend_view

    now["history"] = history
    now["suites"][0]["gates"] = [{"suite": "smoke", "model": "base", "metric": "exact_match", "kind": "min",
                                  "passed": True, "reason": "r", "details": {}}]
    (row,) = trend_view(now)["rows"]
    return row


def test_a_trend_draws_only_past_runs_measured_on_what_this_run_was(tmp_path):
    """A series keyed by suite, model and metric alone drew another base model folder under the
    name "base", an edited suite and a two-item --ids run as one line. Each point now carries
    what it was measured on; the others are left off the line and counted, by why, beside it."""
    from harness.history import past_series

    runs = tmp_path / "runs"
    _measured_run(runs / "other-base", "2025-01-01T00:00:00+00:00", base_fp="sha256:another-folder")
    _measured_run(runs / "edited", "2025-01-02T00:00:00+00:00", suite_fp="sha256:edited")
    _measured_run(runs / "ids", "2025-01-03T00:00:00+00:00", ids=("a", "b"))
    _measured_run(runs / "same", "2025-01-04T00:00:00+00:00")
    now = _measured_run(tmp_path / "now", "2025-01-05T00:00:00+00:00")
    df = load([runs])
    assert set(df["base_fingerprint"]) == {"sha256:base", "sha256:another-folder"}
    assert sorted(df["items"]) == [2, 3, 3, 3] and set(df["suite_fingerprint"]) == {"sha256:suite", "sha256:edited"}

    history = past_series(df, now)
    (series,) = [s for s in history["series"] if s["metric"] == "exact_match"]
    assert [p["created"][:10] for p in series["points"]] == ["2025-01-04"]
    assert series["points"][0]["measured_on"] == {"base_fingerprint": "sha256:base", "base_fingerprint_recipe": "1",
                                                  "suite_fingerprint": "sha256:suite", "items": 3}
    assert series["left_out"] == {"runs": 3, "why": {"another base model": 1, "another suite version": 1,
                                                     "another item count (2, this run 3)": 1}}
    row = _trend_row(now, history)
    assert row["runs"] == 2  # the comparable past run and this one
    assert row["left_out"] == ("3 earlier run(s) not drawn: another base model (1), another suite "
                               "version (1), another item count (2, this run 3) (1)")


def test_an_unknown_item_count_is_not_recorded_not_this_run_none(tmp_path):
    """A run whose item count is unknown (its model entries carry no item list) read "another
    item count (3, this run None)" beside its trend; a past run without a count read "(unknown,
    this run 3)". Either side missing is what the base model and suite version say then."""
    from harness.history import past_series

    runs = tmp_path / "runs"
    _measured_run(runs / "same", "2025-01-04T00:00:00+00:00")
    now = _measured_run(tmp_path / "now", "2025-01-05T00:00:00+00:00")
    del now["suites"][0]["models"]["base"]["items"]
    history = past_series(load([runs]), now)
    (series,) = [s for s in history["series"] if s["metric"] == "exact_match"]
    assert series["points"] == [] and series["left_out"] == {"runs": 1, "why": {"item count not recorded": 1}}
    row = _trend_row(now, history)
    assert row["left_out"] == "1 earlier run(s) not drawn: item count not recorded (1)"

    df = load([runs])
    df["items"] = None  # a past run that recorded no count
    known = _measured_run(tmp_path / "known", "2025-01-06T00:00:00+00:00")
    (series,) = [s for s in past_series(df, known)["series"] if s["metric"] == "exact_match"]
    assert series["left_out"]["why"] == {"item count not recorded": 1}


def test_an_ids_run_is_not_drawn_on_the_full_runs_line(tmp_path):
    """End to end: a two-item --ids run of smoke sits in the history folder; the scorecard's line
    for the full run (the sql adapter's gated exact_match) leaves it out and says so."""
    env = {"HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    runs = tmp_path / "runs"
    for name, extra in (("few", ["--ids", "add-1,cap-1"]), ("full", [])):
        proc = run_harness("eval", "suites/smoke.yaml", "--model", str(FIXTURE_MODEL), "--out", str(runs / name),
                           "--quiet", *ADAPTER, *extra, env=env)
        assert proc.returncode in (0, 1), proc.stderr  # two items: a gate may fail, the run is still history
    out = tmp_path / "now"
    proc = run_harness("eval", "suites/smoke.yaml", "--model", str(FIXTURE_MODEL), "--out", str(out), "--quiet",
                       "--history", str(runs), *ADAPTER, env=env)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "results.json").read_text())
    (series,) = [s for s in res["history"]["series"] if s["model"] == "sql" and s["metric"] == "exact_match"]
    assert len(series["points"]) == 1 and series["points"][0]["measured_on"]["items"] == 6
    assert series["left_out"] == {"runs": 1, "why": {"another item count (2, this run 6)": 1}}
    assert "1 earlier run(s) not drawn: another item count (2, this run 6) (1)" in (
        out / "index.html").read_text()


def test_a_base_fingerprint_of_another_recipe_is_not_another_base_model(tmp_path):
    """history compared base fingerprints whatever recipe computed them: a past run hashed by
    recipe 1, or an endpoint's identity hash, read "another base model". As a baseline's check
    does, a hash is now compared only with one of the same recipe; an equal hash is the same
    model; the recipe is a column of the table, kept as text through a CSV round trip."""
    from harness.history import past_series, read_csv, write_table

    runs = tmp_path / "runs"
    recipe_1 = _measured_run(runs / "recipe-1", "2025-01-01T00:00:00+00:00", base_fp="sha256:by-recipe-1")
    assert "fingerprint_recipe" not in recipe_1["models"]["base"]  # an older harness: recipe 1
    served = results([suite_result({"base": model_result({i: True for i in "abc"})})], base_fp="endpoint:abc")
    served["models"]["base"]["fingerprint_recipe"] = "endpoint-1+files-2"
    served["created"] = "2025-01-02T00:00:00+00:00"
    (runs / "served").mkdir(parents=True)
    (runs / "served" / "results.json").write_text(json.dumps(served))
    for name, fp, day in (("other", "sha256:another-folder", 3), ("same", "sha256:base", 4),
                          ("same-hash-recipe-1", "sha256:base", 5)):
        run = results([suite_result({"base": model_result({i: True for i in "abc"})})], base_fp=fp)
        if name != "same-hash-recipe-1":
            run["models"]["base"]["fingerprint_recipe"] = 2
        run["created"] = f"2025-01-0{day}T00:00:00+00:00"
        (runs / name).mkdir(parents=True)
        (runs / name / "results.json").write_text(json.dumps(run))
    now = _measured_run(tmp_path / "now", "2025-01-09T00:00:00+00:00")
    now["models"]["base"]["fingerprint_recipe"] = 2
    df = load([runs])
    assert list(df.drop_duplicates("run")["base_fingerprint_recipe"]) == ["1", "endpoint-1+files-2", "2", "2", "1"]
    (series,) = [s for s in past_series(df, now)["series"] if s["metric"] == "exact_match"]
    assert [p["created"][:10] for p in series["points"]] == ["2025-01-04", "2025-01-05"]  # equal hashes
    assert series["points"][0]["measured_on"]["base_fingerprint_recipe"] == "2"
    assert series["left_out"] == {"runs": 3, "why": {"fingerprint recipe differs (1, this run 2)": 1,
                                                     "fingerprint recipe differs (endpoint-1+files-2, this run 2)": 1,
                                                     "another base model": 1}}
    write_table(df, csv=tmp_path / "h.csv")
    assert list(read_csv(tmp_path / "h.csv")["base_fingerprint_recipe"]) == list(df["base_fingerprint_recipe"])
