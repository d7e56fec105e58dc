"""`harness check-suite`: every check `harness eval` makes of a suite that needs no model.

A typo in a suite (a gate option, a scorer name, a data file's path) used to show only
when an eval started, after the model was named and often loaded. This loads each suite
with the same code eval loads it with (``suite.load_suite``: schema, templates, item ids,
scorer options and the files they read, gates; then ``suite.check_unique_names`` across
the files), so what passes here passes eval's loading, and what fails here fails there
with the same line. It also reads each case's target as its scorers do: a WikiSQL gold
query that does not parse makes an item no answer can pass, which eval scores None
without stopping. What needs a model is not checked: the chat template, prompts that
overrun the model's positions or vocabulary, and the power warning (it needs the base's
measured value).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-suite", help="check suite files as eval loads them, without a model",
                       description="Load each suite as `harness eval` does (schema, data file, templates, item "
                                   "ids, scorer options and the files they read, gates), read each case's target as its "
                                   "scorers do (a WikiSQL gold query that does not parse can never pass), and "
                                   "print one line per suite: OK with its items and gates, or the error eval "
                                   "would stop on (one line per gold query that does not parse). Exit 0 "
                                   "when every suite is fine, 2 otherwise.")
    p.add_argument("suites", nargs="*", default=["suites"], metavar="SUITE|DIR",
                   help="suite YAML files or folders of them (default: suites/)")
    p.add_argument("--allow-outside-data", action="store_true",
                   help="let a suite's `data:` name a file outside its folder and repository (as eval's option)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import HarnessError, printable
    from ..suite import check_unique_names, find_suites, load_suite, outside_data_allowed

    failed = 0
    loaded = []
    with outside_data_allowed(args.allow_outside_data):
        for path in find_suites(args.suites):  # none found: eval's one error, exit 2
            try:
                suite = load_suite(path)
            except HarnessError as exc:
                failed += 1
                # an error in a data file names that file; say which suite read it
                where = "" if exc.path == str(path) else f"{path}: "
                print(printable(f"FAIL {where}") + exc.one_line())
                continue
            loaded.append(suite)
            problems = gold_problems(suite)
            for exc in problems:
                print("FAIL " + exc.one_line())
            if problems:
                failed += 1
                continue
            print(printable(f"OK {path}: suite {suite.name!r}, {len(suite.cases)} items, {gates_text(suite)}"))
    try:
        check_unique_names(loaded)
    except HarnessError as exc:
        failed += 1
        print("FAIL " + exc.one_line())
    return 2 if failed else 0  # 2: bad input, as eval exits on the first of these errors


def gold_problems(suite) -> list:
    """One HarnessError per case whose target a scorer of the suite cannot read (a WikiSQL gold
    query that does not parse): eval scores such an item None on every run, so it can never
    pass, and nothing said so before a run. Each scorer reads the targets with its own code
    (``Scorer.gold_problems``); a case two scorers cannot read is one error naming both."""
    from ..errors import HarnessError
    from ..scorers import make_scorer

    found: dict[tuple, tuple[HarnessError, list[str]]] = {}
    for spec in suite.scorers:
        for exc in make_scorer(spec, suite.dir).gold_problems(suite.cases):
            key = (exc.path, exc.line, exc.field, exc.message)
            found.setdefault(key, (exc, []))[1].append(spec.name)
    out = []
    for exc, names in found.values():
        hint = f"{' and '.join(names)} cannot score this item, so it can never pass: {exc.hint}"
        out.append(HarnessError(exc.message, path=exc.path, line=exc.line, field=exc.field, hint=hint))
    return out


def gates_text(suite) -> str:
    """The suite's gates as written (eval adds the default margins to pass/fail metrics
    that set none; ``gates.policy`` needs the run's metrics to say which)."""
    gates = suite.raw.get("gates")
    if gates is False:
        return "gates off (gates: false)"
    if not gates:
        return "no gates written (default margins 0.05 vs base and baseline)"
    parts = []
    for metric, options in gates.items():
        if options is False:
            parts.append(f"{metric} off")
            continue
        # null drops a default margin (gates.policy): "off", not Python's "None"
        shown = ", ".join(f"{k} {'off' if v is None else v}" for k, v in options.items() if k != "categories")
        categories = options.get("categories") or {}
        if categories:
            shown += (", " if shown else "") + f"{len(categories)} category gate(s)"
        parts.append(f"{metric} ({shown})")
    return "gates: " + "; ".join(parts)
