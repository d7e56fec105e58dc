"""`harness history` (many runs' metrics as one table) and `harness export` (one run's items)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("history", help="metrics of many runs as one table (CSV, Parquet)",
                       description="One row per run, suite, model and metric (value, interval, n, the run's "
                                   "time and git commit), from the results.json files under DIR. Read a CSV back "
                                   "with harness.history.read_csv (plain pandas.read_csv turns an id 007 into 7).")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="run folders or folders holding them")
    p.add_argument("--csv", type=Path, metavar="F", help="write the table as CSV")
    p.add_argument("--parquet", type=Path, metavar="F", help="write the table as Parquet (needs pyarrow)")
    p.add_argument("--gated", action="store_true", help="only metrics a gate looked at")
    p.set_defaults(func=run_history)

    e = sub.add_parser("export", help="one run's per-item table (id, model, output, each scorer's value and pass)",
                       description="Per-item table of a run: suite, id, model, category, output, finish reason, "
                                   "target, and <scorer>.value / <scorer>.passed for every scorer. Cells that "
                                   "start with = + - @ get a leading ' so spreadsheets do not run them. Read it back "
                                   "with harness.history.read_csv (plain pandas.read_csv turns an id 007 into 7).")
    e.add_argument("run", type=Path, metavar="RUN", help="a run folder (with results.json) or a results.json")
    e.add_argument("--csv", type=Path, metavar="F", required=True, help="write the table as CSV")
    e.set_defaults(func=run_export)


def run_history(args: argparse.Namespace) -> int:
    from ..history import load, parquet_available, write_table
    from ..errors import HarnessError

    from ..preflight import check_out_file

    for flag, target in (("--csv", args.csv), ("--parquet", args.parquet)):
        if target is not None:
            check_out_file(target, flag)
    if args.parquet is not None and not parquet_available():  # before reading anything
        raise HarnessError("--parquet needs pyarrow, which is not installed", field="--parquet",
                           hint="pip install pyarrow (or write --csv)")
    df = load(args.dirs)
    if args.gated:
        df = df[df["gated"]].reset_index(drop=True)
    write_table(df, csv=args.csv, parquet=args.parquet)
    runs = df["run"].nunique()
    print(f"{len(df)} rows from {runs} run(s)" + "".join(f"; wrote {p}" for p in (args.csv, args.parquet) if p))
    if args.csv is None and args.parquet is None and len(df):
        import pandas as pd

        # one column per run, oldest first: keyed by time alone, runs of one second (a CI matrix)
        # showed one run's values and a run with no readable time none
        when = df["created"].dt.strftime("%Y-%m-%d %H:%M:%S").fillna("no date")
        label = when + " " + df["run"].map(lambda r: Path(r).parent.name)
        if (df.groupby(label)["run"].nunique() > 1).any():
            label = when + " " + df["run"]
        label = pd.Categorical(label, categories=list(dict.fromkeys(label)), ordered=True)
        wide = df.assign(run_label=label).pivot_table(index=["suite", "model", "metric"], columns="run_label",
                                                      values="value", aggfunc="first", observed=True)
        wide.columns.name = None
        with pd.option_context("display.max_rows", 200, "display.width", 160):
            print(wide.round(4).to_string())
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..history import find_runs, items_table, read_results, write_table
    from ..errors import HarnessError

    from ..preflight import check_out_file

    check_out_file(args.csv, "--csv")
    files = find_runs([args.run])
    if len(files) != 1:
        raise HarnessError(f"expected one run, found {len(files)} results.json files", path=args.run,
                           hint="pass one run folder")
    df = items_table(read_results(files[0]))
    write_table(df, csv=args.csv)
    print(f"{len(df)} items x models; wrote {args.csv}")
    return 0
