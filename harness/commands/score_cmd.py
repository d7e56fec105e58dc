"""`harness score`: score stored completions without loading a model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..preflight import out_dir_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score stored completions (no model needed)",
                       description='Score a JSONL file of {"id", "output", "finish_reason", "model"?, "sample"?} '
                                   "lines against a suite (a sampled suite, generation.samples = k, needs "
                                   '"sample": 0..k-1 for each id); writes the same outputs as `harness eval`.')
    p.add_argument("suite", help="suite YAML file")
    p.add_argument("--completions", type=Path, required=True, help="JSONL file of stored completions")
    p.add_argument("--out", type=out_dir_arg, default=Path("reports/score"), help="output folder")
    p.add_argument("--baseline", type=Path, help="approved baseline file to gate against")
    p.add_argument("--strict-baseline", action="store_true",
                   help="fail (not warn) when the baseline lacks a model or suite of this run, or when a gate the "
                        "baseline was approved under is dropped or loosened (or its cluster: removed)")
    p.add_argument("--allow-fingerprint-mismatch", action="store_true",
                   help="gate against a baseline whose suite data, content, scorer versions, options or files "
                        "differ (warned; the comparison may be meaningless)")
    p.add_argument("--ids", action="append", metavar="ID,ID", help="only these case ids (comma-separated, repeatable)")
    p.add_argument("--only-failing", metavar="RUN",
                   help="only the cases that failed in RUN (a run folder or its results.json)")
    p.add_argument("--allow-outside-data", action="store_true",
                   help="let a suite's `data:` name a file outside its folder and repository")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..suite import outside_data_allowed

    with outside_data_allowed(args.allow_outside_data):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..errors import printable
    from ..preflight import check_out_dir
    from ..runner import finish, run_score

    check_out_dir(args.out)
    if args.strict_baseline and not args.baseline:
        from ..errors import HarnessError

        raise HarnessError("--strict-baseline needs --baseline", field="--strict-baseline")
    from ..run_marker import start

    mark = start(args.out, ["harness", *sys.argv[1:]])  # a reused --out: see harness.run_marker
    from ..selection import from_args

    baseline = None
    if args.baseline:
        from ..baseline import load_baseline

        baseline = load_baseline(args.baseline)
    results, suite = run_score(Path(args.suite), args.completions, command=["harness", *sys.argv[1:]],
                               select=from_args(args.ids, args.only_failing))
    if baseline is not None:
        from ..baseline import check_baseline

        # the suite as eval checks it (data, content, scorer versions, options, files): an edited
        # suite's scores were gated against the approved ones without a word; the models are not
        # compared, stored completions have no fingerprint of the model that wrote them
        check_baseline(baseline, results, args.allow_fingerprint_mismatch, models=False)
        results["baseline"] = {"path": baseline.get("_path"), "created": baseline.get("created")}
    code = finish(results, [suite], args.out, baseline, strict_baseline=args.strict_baseline, mark=mark)
    header = results["suites"][0]
    for name, info in header["scorers"].items():
        if info["skipped"]:
            print(printable(f"  skipped {name}: {info['skipped']}"))
    for model, res in header["models"].items():
        summary = ", ".join(f"{k}={v['value']:.3f}" for k, v in res["metrics"].items()
                            if v["value"] is not None and "." not in k)
        print(printable(f"  {model}: {summary}"))
    from ..gates import tally

    print(printable(f"{results['verdict'].upper()}: report in {args.out / 'index.html'} ({tally(results)})"))
    for gate in header["gates"]:  # what failed and why, as harness eval prints it
        if not gate["passed"]:
            print(printable(f"  FAILED {gate['suite']} / {gate['model']} / {gate['metric']}: {gate['reason']}"))
    from ..baseline import gating_notes

    # baseline gating never falls short silently, nor goes unchecked for want of --baseline
    for note in gating_notes(baseline, results, [suite], strict=args.strict_baseline):
        print(printable(f"  WARNING {note}"))
    from ..reports.summary import warnings_line

    if (line := warnings_line(results)) is not None:
        print(printable(line))
    return code
