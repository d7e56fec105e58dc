"""Commands on finished runs: `harness baseline approve RUN_DIR [--to FILE]`, `harness compare
RUN_A RUN_B` and `harness verdict RUN_DIR` (a run's verdict as an exit code, for launchers such
as `mlx.launch` that drop their ranks' exit codes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import terminal
from ..preflight import out_dir_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baseline", help="approved baselines to gate later runs against",
                       description="Manage approved baselines (small, committable summaries of a passing run).")
    bsub = p.add_subparsers(dest="baseline_command", metavar="ACTION", parser_class=type(p))
    a = bsub.add_parser("approve", help="write a baseline file from a passing run",
                        description="Write a baseline file (metrics, per-item pass/fail, fingerprints) from "
                                    "RUN_DIR/results.json. Only a run whose verdict is pass can be approved.")
    a.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run's output folder (or its results.json)")
    a.add_argument("--to", type=Path, default=None, metavar="FILE",
                   help="baseline file to write (default reports/baselines/baseline.json)")
    a.set_defaults(func=run_approve)
    p.set_defaults(func=lambda args: _usage(p))

    c = sub.add_parser("compare", help="differences between two runs",
                       description="Compare two runs (folders, results.json files or baseline files): "
                                   "fingerprints, metric deltas with paired intervals, flipped items. "
                                   "Prints them and writes compare.html.")
    c.add_argument("run_a", metavar="RUN_A")
    c.add_argument("run_b", metavar="RUN_B")
    c.add_argument("--out", type=out_dir_arg, default=None,
                   help="folder for compare.html (default: reports/compare)")
    c.add_argument("--map", action="append", metavar="OLD=NEW",
                   help="compare run A's model OLD with run B's model NEW (repeatable); models are "
                        "otherwise paired by name, and the ones that cannot be are listed")
    c.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when B is worse: a metric's paired interval wholly on the worse side "
                        "(a number reported without an interval, peak memory: worse at all), "
                        "an item that went from pass to fail, a suite whose definition differs, or a "
                        "suite or model of A that B does not have (after --map)")
    c.set_defaults(func=run_compare)

    v = sub.add_parser("verdict", help="a finished run's verdict as the exit code (0 pass, 1 fail)",
                       description="Read RUN_DIR/results.json and exit as `harness eval` did: 0 every gate "
                                   "passed, 1 a gate failed, 2 no readable results (the run did not finish: no "
                                   "results.json, or the run-in-progress.json of a run that stopped "
                                   "before writing its own). "
                                   "For launchers that drop the exit code: mlx.launch (mlx 0.32.4) exits 0 "
                                   "whatever its ranks return.")
    v.add_argument("run_dir", metavar="RUN_DIR", help="a run's output folder (or its results.json)")
    v.set_defaults(func=run_verdict)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_approve(args: argparse.Namespace) -> int:
    from ..baseline import DEFAULT_BASELINE, approve
    from ..preflight import check_out_file

    check_out_file(args.to or DEFAULT_BASELINE, "--to")
    path = approve(args.run_dir, args.to or DEFAULT_BASELINE)
    print(terminal(f"approved {args.run_dir} -> {path} (commit it to gate later runs: harness eval ... --baseline {path})"))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from ..preflight import check_out_dir
    from ..runs import compare_runs, format_comparison, load_run, parse_map, regressions
    from ..reports import write_compare_report

    check_out_dir(args.out or Path("reports/compare"))
    mapping = parse_map(args.map)
    a, b = load_run(args.run_a), load_run(args.run_b)
    cmp = compare_runs(a, b, mapping)
    print(terminal(format_comparison(cmp)))
    path = write_compare_report(cmp, args.out or Path("reports/compare"), runs=(a, b))
    print(f"\nreport: {path}")
    for line in cmp["unpaired"]:
        print(f"harness: warning: not compared: {terminal(line)}", file=sys.stderr)
    if args.fail_on_regression:
        found = regressions(cmp)
        for line in found:
            print(f"REGRESSION {terminal(line)}")
        return 1 if found else 0
    return 0


def run_verdict(args: argparse.Namespace) -> int:
    from ..runs import load_run, run_verdict as verdict_of

    from ..errors import HarnessError
    from ..run_marker import check_finished

    folder = Path(args.run_dir)
    # a reused folder: a run that started into it and stopped left its mark, and the results.json
    # there is an earlier run's (never its PASS for this one)
    if folder.is_dir() or folder.is_file():
        check_finished(folder if folder.is_dir() else folder.parent)
    # a fresh folder (the README's recipe removes --out first): a run that died leaves no results.json
    if not folder.exists() or (folder.is_dir() and not (folder / "results.json").exists()):
        raise HarnessError("no results.json here: the run did not finish (or wrote to another --out)",
                           path=folder, hint="a run that stops without a verdict (exit 2 or 3, a distributed "
                                             "rank that gave up) writes no results; see its log, rerun")
    code, lines = verdict_of(load_run(folder, items=False))
    for line in lines:
        print(terminal(line))
    return code
