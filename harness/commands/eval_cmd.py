"""`harness eval`: run suites against a base model and its adapters, gate, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..preflight import out_dir_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a base model and its adapters on suites",
                       description="Run suites against a base model and adapters; exit 0 when every gate passes, "
                                   "1 when a gate fails, 2 on bad input, 3 on an internal error or when a rank of a "
                                   "distributed eval gave up waiting for the others.")
    p.add_argument("suites", nargs="*", default=["suites"], metavar="SUITE|DIR",
                   help="suite YAML files or folders of them (default: suites/)")
    p.add_argument("--model", required=True, help="base model: a local mlx-lm folder (or a hub id already in the local Hugging Face cache; "
                        "nothing is downloaded)")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH",
                   help="an mlx-lm adapter folder to evaluate on the same items (repeatable)")
    p.add_argument("--baseline", type=Path, help="approved baseline file to gate against")
    p.add_argument("--strict-baseline", action="store_true",
                   help="fail (exit 1) when the baseline lacks a suite or adapter of this run (a rename), or "
                        "when a gate it was approved under is dropped or loosened (or its cluster: removed); "
                        "default: a warning naming both sides")
    p.add_argument("--out", type=out_dir_arg, default=Path("reports/latest"),
                   help="output folder (default reports/latest)")
    p.add_argument("--limit", type=int, help="only the first N cases of each suite")
    p.add_argument("--ids", action="append", metavar="ID,ID", help="only these case ids (comma-separated, repeatable)")
    p.add_argument("--only-failing", metavar="RUN",
                   help="only the cases that failed in RUN (a run folder or its results.json)")
    p.add_argument("--no-cache", action="store_true", help="generate everything; do not read or write the cache")
    p.add_argument("--cache-dir", help="completion cache folder (default: user cache dir, or $HARNESS_CACHE_DIR)")
    p.add_argument("--allow-fingerprint-mismatch", action="store_true",
                   help="compare with a baseline even when its fingerprints differ")
    p.add_argument("--allow-base-mismatch", action="store_true",
                   help="load adapters recorded as trained on another (shape-compatible) base")
    p.add_argument("--history", action="append", default=[], type=Path, metavar="DIR",
                   help="earlier runs (folders with results.json): draw each gated metric's trend in the "
                        "scorecard (repeatable)")
    p.add_argument("--quiet", action="store_true",
                   help="no live progress on stderr (items done, tokens/s, ETA)")
    p.add_argument("--allow-outside-data", action="store_true",
                   help="let a suite's `data:` name a file outside its folder and repository")
    p.add_argument("--junit-items", action="store_true",
                   help="junit.xml also gets one test case per item that flipped (vs base or baseline)")
    p.add_argument("--benchmark-json", type=Path, metavar="F",
                   help="also write latency suites' timings as pytest-benchmark JSON (pytest-benchmark compare reads it)")
    p.add_argument("--collective-timeout", metavar="SECONDS",
                   help="under mlx.launch: seconds a rank waits for the others in one collective before it "
                        "gives up with exit 3 (default: max(300, 5 x its own longest work between collectives); "
                        "0: no limit; also $HARNESS_COLLECTIVE_TIMEOUT)")
    ep = p.add_argument_group("served models (an OpenAI-compatible endpoint instead of a local model)")
    ep.add_argument("--endpoint", metavar="URL",
                    help="evaluate the model served at URL (mlx_lm.server, LM Studio, vLLM, llama.cpp); "
                         "--model is then the name the server knows it by")
    ep.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    ep.add_argument("--timeout", type=float, default=60.0,
                    help="seconds per request attempt, wall clock from connect to the answer's last byte "
                         "(default 60)")
    ep.add_argument("--retries", type=int, default=2,
                    help="retries of a request after connection errors, timeouts, 429 and 5xx (default 2)")
    ep.add_argument("--parity", action="store_true",
                    help="compare the endpoint's greedy outputs on a sample with the local engine's on the same "
                         "weights (fails the endpoint_parity gate when they differ)")
    ep.add_argument("--parity-samples", type=int, default=8, help="items per suite and model for --parity (default 8)")
    ep.add_argument("--parity-model", metavar="PATH", help="local folder of the served weights (default: --model)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..suite import outside_data_allowed

    with outside_data_allowed(args.allow_outside_data):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..errors import HarnessError
    from ..runner import finish, load_suites, parse_adapter_args, run_eval
    from ..suite import find_suites

    if args.limit is not None and args.limit < 1:
        raise HarnessError("--limit must be at least 1", field="--limit")
    from ..preflight import check_out_dir

    check_out_dir(args.out)  # before any suite, model or generation
    from ..run_marker import start

    # a reused --out holds an earlier run's results: mark it before anything else can fail, so that
    # `harness verdict` does not read them as this run's (rank 0 only; retired with the results)
    mark = start(args.out, ["harness", *sys.argv[1:]])
    from ..distributed import set_collective_timeout

    set_collective_timeout(args.collective_timeout)
    if args.strict_baseline and not args.baseline:
        raise HarnessError("--strict-baseline needs --baseline", field="--strict-baseline")
    paths = find_suites(args.suites)
    from ..selection import from_args

    select = from_args(args.ids, args.only_failing)
    adapters = parse_adapter_args(args.adapter)
    baseline = None
    if args.baseline:
        from ..baseline import load_baseline

        baseline = load_baseline(args.baseline)
    if args.benchmark_json is not None:
        from ..benchjson import require_pytest_benchmark

        require_pytest_benchmark()
    history = None
    if args.history:
        from ..history import load

        history = load(args.history)  # bad history input fails before the model loads
    suites = load_suites(paths, args.limit, select)  # loaded once: what is evaluated is what is gated
    if args.endpoint:
        from ..backends.openai import EndpointConfig, run_endpoint_eval

        config = EndpointConfig(args.endpoint, args.model, concurrency=args.concurrency, timeout=args.timeout,
                                retries=args.retries)
        results = run_endpoint_eval(suites, config, adapters, limit=args.limit, use_cache=not args.no_cache,
                                    cache_dir=args.cache_dir, baseline=baseline,
                                    allow_fingerprint_mismatch=args.allow_fingerprint_mismatch,
                                    parity=args.parity, parity_samples=args.parity_samples,
                                    parity_model=args.parity_model, command=["harness", *sys.argv[1:]])
    elif args.parity:
        raise HarnessError("--parity compares an endpoint with the local engine", field="--parity",
                           hint="add --endpoint URL")
    else:
        results = run_eval(suites, args.model, adapters, limit=args.limit, use_cache=not args.no_cache,
                           cache_dir=args.cache_dir, baseline=baseline,
                           allow_fingerprint_mismatch=args.allow_fingerprint_mismatch,
                           allow_base_mismatch=args.allow_base_mismatch, command=["harness", *sys.argv[1:]],
                           quiet=args.quiet)
    from ..distributed import rank_and_size

    if rank_and_size()[0] != 0:
        return 0  # under mlx.launch, rank 0 gates and writes the reports
    if history is not None:
        from ..history import past_series

        results["history"] = past_series(history, results)
    if args.junit_items:
        results["report_options"] = {"junit_items": True}
    code = finish(results, suites, args.out, baseline, strict_baseline=args.strict_baseline, mark=mark)
    if args.benchmark_json is not None:
        from ..benchjson import write_benchmark_json

        n = write_benchmark_json(results, args.benchmark_json)
        print(f"{n} latency benchmark(s) in {args.benchmark_json}" + ("" if n else " (no latency suite ran)"))
    from ..errors import printable

    from ..gates import tally

    print(printable(f"{results['verdict'].upper()}: report in {args.out / 'index.html'} ({tally(results)})"))
    for suite in results["suites"]:
        for gate in suite["gates"]:
            if not gate["passed"]:
                print(printable(f"  FAILED {gate['suite']} / {gate['model']} / {gate['metric']}: {gate['reason']}"))
    from ..baseline import gating_notes

    # baseline gating never falls short silently, nor goes unchecked for want of --baseline
    for note in gating_notes(baseline, results, suites, strict=args.strict_baseline):
        print(printable(f"  WARNING {note}"))
    from ..reports.summary import warnings_line

    if (line := warnings_line(results)) is not None:
        print(printable(line))
    return code
