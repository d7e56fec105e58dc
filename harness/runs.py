"""Run files: reading a run folder or baseline, and ``harness compare RUN_A RUN_B``.

The paired statistics live in ``harness.compare``; this module only pairs two whole runs
(suites by name, models by name, items by id) and formats what changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .baseline import fingerprint_differences, load_baseline
from .compare import fmt, higher_is_better, model_view, paired_delta
from .errors import HarnessError
from .files import read_json

__all__ = ["load_run", "compare_runs", "format_comparison"]


def load_run(path: str | Path) -> dict:
    """A run folder (its results.json), a results.json file, or a baseline file."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    data = read_json(p, what="run")
    if str(data.get("format") or "").startswith("mlx-harness-baseline"):
        return load_baseline(p)
    if "suites" not in data:
        raise HarnessError("not a results.json or baseline file (no `suites`)", path=p)
    data["_path"] = str(p)
    return data


def compare_runs(a: dict, b: dict) -> dict:
    """What changed from run A to run B: fingerprints, and per suite/model/metric deltas.

    Models are matched by name and items by id. Returns
    ``{"a", "b", "fingerprints": [differences], "only_in_a", "only_in_b",
    "suites": [{name, fingerprints, models: {model: {metrics: {m: {a, b, delta}},
    changed_outputs, flipped_down, flipped_up}}}]}``.
    """
    a_suites = {s["name"]: s for s in a.get("suites", [])}
    b_suites = {s["name"]: s for s in b.get("suites", [])}
    out: dict[str, Any] = {
        "a": a.get("_path"), "b": b.get("_path"),
        "fingerprints": [d for d in fingerprint_differences(a, b) if d["suite"] is None],
        "only_in_a": sorted(set(a_suites) - set(b_suites)),
        "only_in_b": sorted(set(b_suites) - set(a_suites)),
        "suites": [],
    }
    all_diffs = fingerprint_differences(a, b)
    for name in [n for n in b_suites if n in a_suites]:
        sa, sb = a_suites[name], b_suites[name]
        entry: dict[str, Any] = {
            "name": name,
            "fingerprints": [d for d in all_diffs if d["suite"] == name],
            "models": {},
        }
        for model in [m for m in sb.get("models", {}) if m in sa.get("models", {})]:
            va, vb = model_view(sa["models"][model]), model_view(sb["models"][model])
            metrics = {}
            flipped_down: set[str] = set()
            flipped_up: set[str] = set()
            for metric in [m for m in vb.metrics if m in va.metrics]:
                delta = paired_delta(va, vb, metric)
                metrics[metric] = {"a": va.metrics[metric], "b": vb.metrics[metric], "delta": delta,
                                   "higher_is_better": higher_is_better(metric, vb, va)}
                if delta:
                    flipped_down.update(delta.get("flipped_down", []))
                    flipped_up.update(delta.get("flipped_up", []))
            common = [i for i in vb.outputs if i in va.outputs]
            entry["models"][model] = {
                "metrics": metrics,
                "changed_outputs": sorted(i for i in common if va.outputs[i] != vb.outputs[i]),
                "compared_outputs": len(common),
                "flipped_down": sorted(flipped_down), "flipped_up": sorted(flipped_up - flipped_down),
            }
        out["suites"].append(entry)
    return out


def format_comparison(cmp: dict) -> str:
    """Plain-text report of ``compare_runs`` for the terminal."""
    lines = [f"A: {cmp['a']}", f"B: {cmp['b']}"]
    for d in cmp["fingerprints"]:
        lines.append(f"differs: {d['part']}: {d['a']} -> {d['b']}")
    if cmp["only_in_a"]:
        lines.append("suites only in A: " + ", ".join(cmp["only_in_a"]))
    if cmp["only_in_b"]:
        lines.append("suites only in B: " + ", ".join(cmp["only_in_b"]))
    for suite in cmp["suites"]:
        lines.append("")
        lines.append(f"suite {suite['name']}")
        for d in suite["fingerprints"]:
            lines.append(f"  differs: {d['part']}: {d['a']} -> {d['b']}")
        for model, entry in suite["models"].items():
            lines.append(f"  {model}: {len(entry['changed_outputs'])}/{entry['compared_outputs']} outputs changed"
                         f", {len(entry['flipped_down'])} pass->fail, {len(entry['flipped_up'])} fail->pass")
            for metric, m in entry["metrics"].items():
                d = m["delta"] or {}
                mark = ""
                if d and d.get("ci_low") is not None:
                    worse = d["ci_high"] < 0 if m["higher_is_better"] else d["ci_low"] > 0
                    better = d["ci_low"] > 0 if m["higher_is_better"] else d["ci_high"] < 0
                    mark = "  WORSE" if worse else ("  better" if better else "")
                p = f", McNemar p={d['mcnemar_p']:.3g}" if "mcnemar_p" in d else ""
                lines.append(f"    {metric:<32} {fmt(m['a'].get('value')):>8} -> {fmt(m['b'].get('value')):>8}"
                             f"  Δ {fmt(d.get('diff'), signed=True)} [{fmt(d.get('ci_low'), signed=True)},"
                             f" {fmt(d.get('ci_high'), signed=True)}]{p}{mark}")
            if entry["flipped_down"]:
                lines.append("    pass->fail: " + ", ".join(entry["flipped_down"][:20])
                             + (" ..." if len(entry["flipped_down"]) > 20 else ""))
    return "\n".join(lines)
