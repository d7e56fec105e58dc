"""Run files: reading a run folder or baseline, its verdict (``harness verdict``), and
``harness compare RUN_A RUN_B``.

The paired statistics live in ``harness.compare``; this module only pairs two whole runs
(suites by name, models by name, items by id) and formats what changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .baseline import baseline_from_json, fingerprint_differences
from .compare import (direction, flip_change, flip_label, fmt, has_interval, higher_is_better, model_view,
                      paired_delta)
from .errors import HarnessError
from .files import read_json, require_utf8_name
from .results import check_results, is_baseline
from .run_marker import check_finished

__all__ = ["load_run", "run_verdict", "compare_runs", "flip_labels", "format_comparison", "parse_map",
           "regressions"]

# a delta with no interval (a peak memory's max) is called on its point, and says so
POINT_WORDS = "point estimates only"


def load_run(path: str | Path, items: bool = True) -> dict:
    """A run folder (its results.json), a results.json file, or a baseline file. ``items=False``
    checks the run's summary only (``harness verdict`` reads no item; checking 60,000 of them
    against the schema took 15 s)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    require_utf8_name(p, "run")  # compare.html, --only-failing's results name it
    data = read_json(p, what="run", finite=True)
    if is_baseline(data):
        return baseline_from_json(data, p)
    check_finished(p.parent)  # a reused folder whose last run died: its results.json is an earlier run's
    if "suites" not in data:
        raise HarnessError("not a results.json or baseline file (no `suites`)", path=p)
    data = dict(check_results(data, p, "run", items))
    data["_path"] = str(p)
    return data


def run_verdict(run: dict) -> tuple[int, list[str]]:
    """(exit code, lines to print) of a finished run, as ``harness eval`` decided it: 0 when
    every gate passed, 1 when one failed. The gates are counted again rather than the
    ``verdict`` field trusted alone; a file whose two disagree is refused (exit 2), since
    it was edited or written by something else."""
    from .gates import tally

    path = run.get("_path") or run.get("source") or "results.json"
    if is_baseline(run):
        raise HarnessError("this is a baseline file, not a run's results.json", path=path,
                           hint="give the run's --out folder")
    if not run.get("suites"):  # no eval or score writes this: an edited file, not a PASS
        raise HarnessError("this run has no suites: nothing was evaluated", path=path, field="suites",
                           hint="rerun harness eval; do not edit results.json")
    failed = [(s.get("name"), g) for s in run.get("suites") or [] for g in s.get("gates") or []
              if not g.get("passed")]
    verdict = run.get("verdict")
    if verdict not in ("pass", "fail") or (verdict == "fail") != bool(failed):
        raise HarnessError(f"verdict {verdict!r} does not match its gates ({len(failed)} failed)", path=path,
                           field="verdict", hint="rerun harness eval; do not edit results.json")
    env = run.get("environment") or {}
    world = env.get("world_size")
    head = (f"{'FAIL' if failed else 'PASS'}: {tally(run)} (run of {run.get('created') or '?'}"
            + (f", {world} processes" if isinstance(world, int) and world > 1 else "") + f"; {path})")
    lines = [head] + [f"  failed: {name} / {g.get('model')}: {g.get('reason')}" for name, g in failed]
    return (1 if failed else 0), lines


def parse_map(values: list[str] | None) -> dict[str, str]:
    """``--map old=new`` (repeatable) -> {old: new}: model ``old`` of run A is compared with
    model ``new`` of run B."""
    out: dict[str, str] = {}
    for value in values or []:
        old, sep, new = str(value).partition("=")
        if not sep or not old.strip() or not new.strip():
            raise HarnessError(f"--map {value!r} is not OLD=NEW", field="--map",
                               hint="e.g. --map adapter-v1=adapter-v2 (A's name = B's name)")
        if old.strip() in out:
            raise HarnessError(f"--map names {old.strip()!r} twice", field="--map")
        out[old.strip()] = new.strip()
    return out


def compare_runs(a: dict, b: dict, mapping: dict[str, str] | None = None) -> dict:
    """What changed from run A to run B: fingerprints, and per suite/model/metric deltas.

    Models are matched by name, or by ``mapping`` (A's name -> B's name), and items by id.
    Returns ``{"a", "b", "fingerprints": [differences], "only_in_a", "only_in_b",
    "unpaired": [one line per model that could not be paired],
    "suites": [{name, fingerprints, only_in_a: [A's models B lacks], models: {model: {a_name, metrics: {m: {a, b, delta}},
    changed_outputs, flipped_down, flipped_up, flip_changes}}}]}`` (models keyed by B's name).
    ``flipped_down`` lists the items that got worse on any metric, ``flipped_up`` those that got
    better on one and worse on none; ``flip_changes``: item -> the changes it went through
    (``compare.flip_change``: 'pass→fail', or '0→1' on a lower-is-better metric).
    """
    mapping = dict(mapping or {})
    a_suites = {s["name"]: s for s in a.get("suites", [])}
    b_suites = {s["name"]: s for s in b.get("suites", [])}
    a_models = {m for s in a_suites.values() for m in s.get("models", {})}
    b_models = {m for s in b_suites.values() for m in s.get("models", {})}
    for old, new in mapping.items():
        if old not in a_models:
            raise HarnessError(f"--map {old}={new}: run A has no model {old!r} "
                               f"(it has {', '.join(sorted(a_models)) or 'none'})", field="--map")
        if new not in b_models:
            raise HarnessError(f"--map {old}={new}: run B has no model {new!r} "
                               f"(it has {', '.join(sorted(b_models)) or 'none'})", field="--map")
    out: dict[str, Any] = {
        "a": a.get("_path"), "b": b.get("_path"),
        "fingerprints": [d for d in fingerprint_differences(a, b) if d["suite"] is None],
        "only_in_a": sorted(set(a_suites) - set(b_suites)),
        "only_in_b": sorted(set(b_suites) - set(a_suites)),
        "unpaired": [],
        "suites": [],
    }
    all_diffs = fingerprint_differences(a, b)
    back = {new: old for old, new in mapping.items()}
    for name in [n for n in b_suites if n in a_suites]:
        sa, sb = a_suites[name], b_suites[name]
        entry: dict[str, Any] = {
            "name": name,
            "fingerprints": [d for d in all_diffs if d["suite"] == name],
            "models": {},
            "only_in_a": [],  # A's models B has no partner for (after --map): B lost them
        }
        in_a, in_b = list(sa.get("models", {})), list(sb.get("models", {}))
        pairs = []
        for model in in_b:
            partner = back.get(model, model if model not in mapping else None)
            if partner in in_a:
                pairs.append((partner, model))
        paired_a, paired_b = {p for p, _ in pairs}, {m for _, m in pairs}
        lone_a = [m for m in in_a if m not in paired_a]
        lone_b = [m for m in in_b if m not in paired_b]
        entry["only_in_a"] = lone_a
        if lone_a or lone_b:
            hint = (f"; pair them with --map {lone_a[0]}={lone_b[0]}" if lone_a and lone_b else "")
            out["unpaired"].append(
                f"suite {name}: "
                + "; ".join(x for x in (f"only in A: {', '.join(lone_a)}" if lone_a else "",
                                        f"only in B: {', '.join(lone_b)}" if lone_b else "") if x)
                + hint)
        for a_name, model in pairs:
            va, vb = model_view(sa["models"][a_name]), model_view(sb["models"][model])
            metrics = {}
            # item -> the changes it went through, per metric that listed it: a lower-is-better
            # metric's worse items went 0→1, so the merged lists cannot all be called pass→fail
            down: dict[str, set[str]] = {}
            up: dict[str, set[str]] = {}
            for metric in [m for m in vb.metrics if m in va.metrics]:
                delta = paired_delta(va, vb, metric)
                metrics[metric] = {"a": va.metrics[metric], "b": vb.metrics[metric], "delta": delta,
                                   "higher_is_better": higher_is_better(metric, vb, va)}
                if delta:
                    for item_id in delta.get("flipped_down", []):
                        down.setdefault(item_id, set()).add(flip_change(delta, worse=True))
                    for item_id in delta.get("flipped_up", []):
                        up.setdefault(item_id, set()).add(flip_change(delta, worse=False))
            common = [i for i in vb.outputs if i in va.outputs]
            flipped_up = sorted(set(up) - set(down))
            entry["models"][model] = {
                "a_name": a_name,
                "metrics": metrics,
                "changed_outputs": sorted(i for i in common if va.outputs[i] != vb.outputs[i]),
                "compared_outputs": len(common),
                "flipped_down": sorted(down), "flipped_up": flipped_up,
                "flip_changes": {**{i: sorted(c) for i, c in down.items()}, **{i: sorted(up[i]) for i in flipped_up}},
            }
        out["suites"].append(entry)
    return out


def flip_labels(entry: dict) -> tuple[str, str]:
    """Words for one model's merged flipped_down and flipped_up lists (``compare_runs``):
    'pass→fail' / 'fail→pass' only when that is what those items did (``flip_label``)."""
    changes = entry.get("flip_changes") or {}
    return (flip_label({c for i in entry["flipped_down"] for c in changes.get(i, ())}, worse=True),
            flip_label({c for i in entry["flipped_up"] for c in changes.get(i, ())}, worse=False))


def _ascii(words: str) -> str:
    return words.replace("→", "->")  # the terminal report's arrows


def format_comparison(cmp: dict) -> str:
    """Plain-text report of ``compare_runs`` for the terminal."""
    lines = [f"A: {cmp['a']}", f"B: {cmp['b']}"]
    for d in cmp["fingerprints"]:
        lines.append(f"differs: {d['part']}: {d['a']} -> {d['b']}")
    if cmp["only_in_a"]:
        lines.append("suites only in A: " + ", ".join(cmp["only_in_a"]))
    if cmp["only_in_b"]:
        lines.append("suites only in B: " + ", ".join(cmp["only_in_b"]))
    for line in cmp.get("unpaired") or []:
        lines.append(f"not compared: {line}")
    for suite in cmp["suites"]:
        lines.append("")
        lines.append(f"suite {suite['name']}")
        for d in suite["fingerprints"]:
            lines.append(f"  differs: {d['part']}: {d['a']} -> {d['b']}")
        for model, entry in suite["models"].items():
            a_name = entry.get("a_name", model)
            label = model if a_name == model else f"{a_name} -> {model}"
            got_worse, got_better = (_ascii(w) for w in flip_labels(entry))
            lines.append(f"  {label}: {len(entry['changed_outputs'])}/{entry['compared_outputs']} outputs changed"
                         f", {len(entry['flipped_down'])} {got_worse}, {len(entry['flipped_up'])} {got_better}")
            for metric, m in entry["metrics"].items():
                d = m["delta"] or {}
                call = direction(d, m["higher_is_better"], points=True)
                mark = {"worse": "  WORSE", "better": "  better"}.get(call, "")
                if mark and not has_interval(d):
                    mark += f" ({POINT_WORDS})"
                p = f", McNemar p={d['mcnemar_p']:.3g}" if "mcnemar_p" in d else ""
                # an interval from the two reported intervals, not from paired items, is far wider
                # (an A/A compare can read ±310): say so beside it
                p += " unpaired" if str(d.get("method", "")).startswith("unpaired") else ""
                ci = (f"[{fmt(d.get('ci_low'), signed=True)}, {fmt(d.get('ci_high'), signed=True)}]"
                      if not d or has_interval(d) else "(no interval)")
                lines.append(f"    {metric:<32} {fmt(m['a'].get('value')):>8} -> {fmt(m['b'].get('value')):>8}"
                             f"  Δ {fmt(d.get('diff'), signed=True)} {ci}{p}{mark}")
            if entry["flipped_down"]:
                lines.append(f"    {got_worse}: " + ", ".join(entry["flipped_down"][:20])
                             + (" ..." if len(entry["flipped_down"]) > 20 else ""))
    return "\n".join(lines)


def regressions(cmp: dict) -> list[str]:
    """What `--fail-on-regression` fails on: a metric whose paired interval lies wholly on
    the worse side (a point-only delta, a peak memory's max: its point worse, and the line says
    so), an item that went from pass to fail (one line each, per model), or a suite whose
    data, content or scorers differ between the runs (its deltas mean nothing),
    and what A covered that B does not: a suite, or a model of a suite (after ``--map``). B
    dropping a suite or an adapter is not B being no worse on it; B's extras are fine."""
    out = [f"{name}: in run A, not in run B: B does not evaluate this suite, so it cannot be shown no worse"
           for name in cmp.get("only_in_a") or []]
    for suite in cmp.get("suites") or []:
        # a suite whose items, prompts or scoring differ between A and B: its deltas compare two
        # definitions, and a loosened scorer read 'better' (keywords mode all -> fraction,
        # threshold 0: 0.828 -> 1.000 for a regressed adapter), so B cannot be shown no worse
        differs = [d for d in suite.get("fingerprints") or [] if d.get("severity") == "refuse"]
        if differs:
            what = "; ".join(f"{d['part']} differs" for d in differs[:3]) + (" ..." if len(differs) > 3 else "")
            out.append(f"{suite['name']}: not comparable ({what}): its deltas compare two definitions")
        for model in suite.get("only_in_a") or []:
            out.append(f"{suite['name']} / {model}: in run A, not in run B (pair a renamed model with "
                       f"--map {model}=NEW): B does not evaluate it, so it cannot be shown no worse")
        for model, entry in suite["models"].items():
            for metric, m in entry["metrics"].items():
                d = m.get("delta") or {}
                if direction(d, m["higher_is_better"], points=True) != "worse":
                    continue
                where = f"{suite['name']} / {model} / {metric}"
                if has_interval(d):
                    out.append(f"{where}: worse, Δ {fmt(d['diff'], signed=True)} "
                               f"[{fmt(d['ci_low'], signed=True)}, {fmt(d['ci_high'], signed=True)}]")
                else:  # no interval to tell noise from a change: the point decides, as in a gate
                    out.append(f"{where}: worse on {POINT_WORDS} (no interval, so any change counts), "
                               f"{fmt(d['ref_value'])} -> {fmt(d['cand_value'])}")
            if entry["flipped_down"]:
                down = entry["flipped_down"]
                out.append(f"{suite['name']} / {model}: {len(down)} item(s) {_ascii(flip_labels(entry)[0])} ("
                           + ", ".join(down[:5]) + (", ..." if len(down) > 5 else "") + ")")
    return out
