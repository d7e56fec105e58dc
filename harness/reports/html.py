"""The scorecard `index.html`: a view of results.json for people, self-contained.

This module turns results.json into plain rows for ``templates/index.html.j2``; the
template only lays them out. All model text reaches the page through Jinja's
autoescaping; the page also forbids scripts with a Content-Security-Policy.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

from ..compare import direction, fmt, suite_comparisons
from . import charts
from .trends import trend_view

MAX_FLIPS_SHOWN = 40
MAX_CHART_METRICS = 16


def _json(x: Any) -> str:
    return json.dumps(x, indent=1, ensure_ascii=False, sort_keys=True, default=str)


def _delta_cell(delta: dict | None, hib: bool) -> dict | None:
    """Text and class for a delta: 'worse'/'better' only when the interval excludes 0."""
    if not delta or delta.get("diff") is None:
        return None
    low, high = delta.get("ci_low"), delta.get("ci_high")
    cls = direction(delta, hib)
    text = fmt(delta["diff"], signed=True)
    ci = f"[{fmt(low, signed=True)}, {fmt(high, signed=True)}]" if low is not None and high is not None else ""
    extra = []
    if "flipped_down" in delta:
        extra.append(f"{len(delta['flipped_down'])}↓ {len(delta['flipped_up'])}↑")
    if delta.get("mcnemar_p") is not None:
        extra.append(f"p={delta['mcnemar_p']:.2g}")
    return {"text": text, "ci": ci, "cls": cls, "extra": " ".join(extra), "method": delta.get("method", "")}


def _score_view(score: dict | None) -> dict | None:
    if score is None:
        return None
    return {"passed": score.get("passed"), "value": score.get("value"), "detail": score.get("detail", ""),
            "metrics": score.get("metrics") or {}, "extra": _json(score["extra"]) if score.get("extra") else ""}


def flipped_items(base: dict, cand: dict) -> tuple[list[dict], list[dict]]:
    """(pass->fail, fail->pass) items of cand vs base, each with both outputs and scores.

    An item is pass->fail when any scorer passed on base and fails on cand.
    """
    by_id = {str(i["id"]): i for i in base.get("items") or []}
    down, up = [], []
    for item in cand.get("items") or []:
        ref = by_id.get(str(item["id"]))
        if ref is None:
            continue
        ref_scores, scores = ref.get("scores") or {}, item.get("scores") or {}
        went_down, went_up = [], []
        for name in scores:
            a, b = (ref_scores.get(name) or {}).get("passed"), scores[name].get("passed")
            if a is True and b is False:
                went_down.append(name)
            elif a is False and b is True:
                went_up.append(name)
        if not went_down and not went_up:
            continue
        view = {
            "id": str(item["id"]), "category": item.get("category"), "prompt": item.get("prompt", ""),
            "target": item.get("target"), "base_output": ref.get("output", ""), "output": item.get("output", ""),
            "base_finish": ref.get("finish_reason"), "finish": item.get("finish_reason"),
            "down": went_down, "up": went_up,
            "scorers": [{"name": n, "base": _score_view(ref_scores.get(n)), "cand": _score_view(scores.get(n))}
                        for n in sorted(set(ref_scores) | set(scores))],
        }
        (down if went_down else up).append(view)
    return down, up


def _read_training_log(path: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]], str]:
    train, val = [], []
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        return [], [], f"training log not readable: {exc.strerror or exc}"
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            step = float(row["step"])
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        for key, dest in (("train_loss", train), ("val_loss", val)):
            v = row.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                dest.append((step, float(v)))
    note = f"{bad} unreadable line(s) skipped" if bad else ""
    return train, val, note


def training_charts(results: dict) -> list[dict]:
    out = []
    names = list((results.get("models") or {}).keys())
    for i, (name, model) in enumerate((results.get("models") or {}).items()):
        path = model.get("training_log")
        if not path:
            continue
        train, val, note = _read_training_log(path)
        color = charts.model_color(names.index(name) if name in names else i)
        svg = None
        if train or val:
            svg = charts.line_chart(
                [{"label": "train loss", "points": train, "color": color},
                 {"label": "validation loss", "points": val, "color": "#111827", "dashed": True}],
                title=f"{name}: training and validation loss", x_label="step", y_label="loss")
            last = []
            if train:
                last.append(f"last train loss {train[-1][1]:.4f} at step {train[-1][0]:.0f}")
            if val:
                best = min(val, key=lambda p: p[1])
                last.append(f"best validation loss {best[1]:.4f} at step {best[0]:.0f}")
            note = "; ".join(last + ([note] if note else []))
        out.append({"model": name, "path": path, "svg": svg, "note": note or "no loss values in the log"})
    return out


def _suite_view(suite: dict, model_order: list[str], colors: dict[str, str]) -> dict:
    models = suite.get("models") or {}
    names = [m for m in model_order if m in models] + [m for m in models if m not in model_order]
    comparisons = suite.get("comparisons") or suite_comparisons(suite, None)
    gates_by = {}
    for g in suite.get("gates") or []:
        gates_by.setdefault((g.get("model"), g.get("metric")), []).append(g)
    metrics: list[str] = []
    for m in names:
        for metric in (models[m].get("metrics") or {}):
            if metric not in metrics:
                metrics.append(metric)
    rows = []
    for metric in metrics:
        cells = []
        hib = True
        for m in names:
            info = (models[m].get("metrics") or {}).get(metric)
            if info is None:
                cells.append({"model": m, "missing": True})
                continue
            hib = info.get("higher_is_better", hib)
            comp = (comparisons.get(m) or {}).get(metric) or {}
            cells.append({
                "model": m, "missing": False, "value": fmt(info.get("value")),
                "ci": (f"{fmt(info.get('ci_low'))}–{fmt(info.get('ci_high'))}"
                       if info.get("ci_low") is not None and info.get("ci_high") is not None else ""),
                "n": info.get("n"), "kind": info.get("kind", ""),
                "vs_base": _delta_cell(comp.get("vs_base"), hib),
                "vs_baseline": _delta_cell(comp.get("vs_baseline"), hib),
                "gates": gates_by.get((m, metric), []),
            })
        rows.append({"metric": metric, "higher_is_better": hib, "cells": cells})
    # gates not tied to a metric row (integrity, missing metric)
    other_gates = [g for g in suite.get("gates") or [] if g.get("metric") not in metrics]

    groups = []
    for metric in metrics[:MAX_CHART_METRICS]:
        values = {}
        proportion = False
        for m in names:
            info = (models[m].get("metrics") or {}).get(metric)
            if info:
                proportion = proportion or info.get("kind") == "proportion"
                values[m] = (info.get("value"), info.get("ci_low"), info.get("ci_high"))
        groups.append({"metric": metric, "proportion": proportion, "values": values})
    bars = charts.metric_bars(groups, names) if groups else None

    # categories: every metric that has per-category values, one table
    cat_names: list[str] = []
    cat_metrics: list[str] = []
    for m in names:
        for cat, per in (models[m].get("categories") or {}).items():
            if cat not in cat_names:
                cat_names.append(cat)
            for metric, info in per.items():
                if metric not in cat_metrics and ("." not in metric or info.get("kind") == "proportion"):
                    cat_metrics.append(metric)
    cat_rows = []
    for cat in cat_names:
        for metric in cat_metrics:
            cells = []
            for m in names:
                info = ((models[m].get("categories") or {}).get(cat) or {}).get(metric)
                cells.append({"value": fmt(info.get("value")) if info else "–",
                              "n": info.get("n") if info else None,
                              "ci": (f"{fmt(info.get('ci_low'))}–{fmt(info.get('ci_high'))}"
                                     if info and info.get("ci_low") is not None else "")})
            cat_rows.append({"category": cat, "metric": metric, "cells": cells})

    flips = []
    base = models.get("base")
    if base is not None:
        for m in names:
            if m == "base":
                continue
            down, up = flipped_items(base, models[m])
            flips.append({"model": m, "down": down[:MAX_FLIPS_SHOWN], "up": up[:MAX_FLIPS_SHOWN // 2],
                          "down_total": len(down), "up_total": len(up)})

    latency = []
    for field, title, unit in (("ttft_s", "Time to first token", "seconds"),
                               ("decode_tps", "Decode speed", "tokens per second")):
        groups_l = []
        for m in names:
            vals = [float(i[field]) for i in models[m].get("items") or []
                    if isinstance(i.get(field), (int, float)) and not i.get("cached")]
            if vals:
                groups_l.append({"label": m, "values": vals, "color": colors.get(m)})
        if groups_l:
            latency.append(charts.distribution(groups_l, title, unit))

    integrity = [{"model": m, **(models[m].get("integrity") or {})} for m in names if models[m].get("integrity")]
    cached = {m: sum(1 for i in models[m].get("items") or [] if i.get("cached")) for m in names}
    gates = sorted(suite.get("gates") or [], key=lambda g: g.get("passed", False))
    return {
        "name": suite.get("name"), "description": suite.get("description", ""), "path": suite.get("path"),
        "fingerprint": suite.get("fingerprint"), "data_fingerprint": suite.get("data_fingerprint"),
        "scorers": [{"name": n, "version": s.get("version"), "options": _json(s.get("options") or {}),
                     "skipped": s.get("skipped")} for n, s in (suite.get("scorers") or {}).items()],
        "generation": json.dumps(suite.get("generation") or {}, ensure_ascii=False, default=str), "template": suite.get("template"),
        "models": names, "model_fingerprints": {m: models[m].get("fingerprint") for m in names},
        "items_count": {m: len(models[m].get("items") or []) for m in names}, "cached": cached,
        "rows": rows, "other_gates": other_gates, "bars": bars,
        "categories": {"metrics": cat_metrics, "rows": cat_rows} if cat_rows else None,
        "flips": flips, "latency": latency, "integrity": integrity, "gates": gates,
        "failed": sum(1 for g in gates if not g.get("passed")), "passed": sum(1 for g in gates if g.get("passed")),
        "warnings": suite.get("warnings") or [],
        "has_baseline": any(c.get("vs_baseline") for r in rows for c in r["cells"] if not c.get("missing")),
    }


def context(results: dict) -> dict:
    """Everything index.html.j2 shows, as plain values (the template does no arithmetic)."""
    model_order = list((results.get("models") or {}).keys())
    for suite in results.get("suites") or []:
        for m in suite.get("models") or {}:
            if m not in model_order:
                model_order.append(m)
    if "base" in model_order:
        model_order.remove("base")
        model_order.insert(0, "base")
    colors = {m: charts.model_color(i) for i, m in enumerate(model_order)}
    suites = [_suite_view(s, model_order, colors) for s in results.get("suites") or []]
    all_gates = [g for s in results.get("suites") or [] for g in s.get("gates") or []]
    warnings = list(results.get("warnings") or [])
    command = results.get("command") or []
    return {
        "verdict": results.get("verdict", "fail"),
        "created": results.get("created", ""),
        "harness_version": results.get("harness_version", ""),
        "command": shlex.join(str(c) for c in command) if isinstance(command, list) else str(command),
        "environment": sorted((str(k), _json(v) if isinstance(v, (dict, list)) else str(v))
                              for k, v in (results.get("environment") or {}).items()),
        "models": [{"name": n, "color": colors.get(n), **m} for n, m in (results.get("models") or {}).items()],
        "baseline": results.get("baseline"),
        "warnings": warnings,
        "suite_warnings": [(s["name"], w) for s in suites for w in s["warnings"]],
        "failed_gates": [g for g in all_gates if not g.get("passed")],
        "n_gates": len(all_gates), "n_failed": sum(1 for g in all_gates if not g.get("passed")),
        "suites": suites,
        "training": training_charts(results),
        "trends": trend_view(results),
        "colors": colors,
    }


def compare_context(cmp: dict) -> dict:
    """Rows for compare.html.j2 from ``harness.compare.compare_runs``."""
    suites = []
    for suite in cmp.get("suites") or []:
        models = []
        for name, entry in suite["models"].items():
            rows = []
            for metric, m in entry["metrics"].items():
                rows.append({"metric": metric, "a": fmt(m["a"].get("value")), "b": fmt(m["b"].get("value")),
                             "delta": _delta_cell(m.get("delta"), m.get("higher_is_better", True))})
            models.append({"name": name, "rows": rows, "changed": len(entry["changed_outputs"]),
                           "compared": entry["compared_outputs"], "flipped_down": entry["flipped_down"],
                           "flipped_up": entry["flipped_up"]})
        suites.append({"name": suite["name"], "fingerprints": suite["fingerprints"], "models": models})
    return {"a": cmp.get("a"), "b": cmp.get("b"), "fingerprints": cmp.get("fingerprints") or [],
            "only_in_a": cmp.get("only_in_a") or [], "only_in_b": cmp.get("only_in_b") or [], "suites": suites}
