"""The scorecard `index.html`: a view of results.json for people, self-contained.

This module turns results.json into plain rows for ``templates/index.html.j2`` (and the
partials it includes); the templates only lay them out. The page reads top-down:

1. the verdict banner and an overview grid (suite x model: gates, main metric, deltas);
2. the failed gates, then the warnings (grouped, collapsed);
3. every item that failed a gate, next to its reference (base or the baseline), the
   differences marked, with each scorer's detail;
4. the full item table (search, filter, sort by a small inline script; plain table
   without scripts);
5. per suite: scores, charts, gates, categories, other flipped items, latency, details;
6. training curves and the run's provenance.

All model text reaches the page through Jinja's autoescaping (or ``items.diff_markup``,
which escapes every piece). The page loads nothing: a Content-Security-Policy allows no
source at all, and the one inline script by its hash only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import shlex
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ..compare import direction, flip_label, fmt, has_interval, suite_comparisons
from . import charts
from ..gates import VACUOUS_PHRASE, could_not_fail, vacuous_bound, vacuous_reason
from ..runs import POINT_WORDS
from .items import Cards, flip_words, gate_items, lower_is_better_scorers, scorer_flips, verdict
from .trends import trend_view

MAX_CHART_ROWS = 24  # metric groups in the 0-1 chart of one suite
MAX_OTHER_FLIPS = 10  # cards per model and suite for flips that failed no gate (all are in the item table)
DETAIL_CHARS = 100
PREVIEW_CHARS = 70


def _json(x: Any) -> str:
    return json.dumps(x, indent=1, ensure_ascii=False, sort_keys=True, default=str)


@lru_cache(maxsize=1)
def script() -> tuple[Markup, str]:
    """The page's one inline script and its CSP hash ('sha256-...')."""
    text = resources.files("harness").joinpath("templates/report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return Markup(text), f"sha256-{digest}"


def _delta_cell(delta: dict | None, hib: bool, ref_name: str = "", points: bool = False) -> dict | None:
    """Text and class for a delta: 'worse'/'better' only when the interval excludes 0; with
    ``points``, a point-only delta is called on its points too (``compare.direction``), and its
    ``note`` says so, as ``harness compare`` does for the same delta."""
    if not delta or delta.get("diff") is None:
        return None
    low, high = delta.get("ci_low"), delta.get("ci_high")
    ci = f"[{fmt(low, signed=True)}, {fmt(high, signed=True)}]" if low is not None and high is not None else ""
    if not has_interval(delta):
        ci = "(no interval)"
    extra = []
    if "flipped_down" in delta:
        extra.append(f"{len(delta['flipped_down'])}↓ {len(delta['flipped_up'])}↑")
    if delta.get("mcnemar_p") is not None:
        extra.append(f"p={delta['mcnemar_p']:.2g}")
    if delta.get("design_effect") is not None:  # clustered suite
        extra.append(f"deff={delta['design_effect']:.2f} (n_eff={delta.get('n_eff', 0):.0f})")
    if delta.get("approximate"):  # a quantile on too few items for a distribution-free bound
        extra.append("approximate")
    ref = f"{ref_name} {fmt(delta.get('ref_value'))}" if ref_name and delta.get("ref_value") is not None else ""
    call = direction(delta, hib, points=points)
    note = f"{call} ({POINT_WORDS})" if call and not has_interval(delta) else ""
    return {"text": fmt(delta["diff"], signed=True), "ci": ci, "cls": call, "note": note,
            "extra": " ".join(extra), "method": delta.get("method", ""), "ref": ref}


def _ci(info: dict | None) -> str:
    if not info or info.get("ci_low") is None or info.get("ci_high") is None:
        return ""
    return f"{fmt(info.get('ci_low'))}–{fmt(info.get('ci_high'))}"


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


def training_charts(results: dict, colors: dict[str, str]) -> list[dict]:
    out = []
    for name, model in (results.get("models") or {}).items():
        path = model.get("training_log")
        if not path:
            continue
        train, val, note = _read_training_log(path)
        svg = None
        if train or val:
            svg = charts.line_chart(
                [{"label": "train loss", "points": train, "color": colors.get(name, "#2563eb")},
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


# --- metrics ---------------------------------------------------------------------------------

def _metric_kind(metric: str, info: dict | None) -> str:
    kind = (info or {}).get("kind") or ""
    if kind == "perplexity" or metric.endswith(".perplexity") or metric.endswith("perplexity"):
        return "perplexity"
    return kind


def main_metric(suite: dict) -> str | None:
    """The one number the overview shows for a suite: its first gated metric (a floor at
    0 does not count), else its first pass/fail scorer, else its first metric."""
    metrics: list[str] = []
    infos: dict[str, dict] = {}
    for model in (suite.get("models") or {}).values():
        for name, info in (model.get("metrics") or {}).items():
            if name not in infos:
                metrics.append(name)
                infos[name] = info
    for g in suite.get("gates") or []:
        if g.get("metric") in infos and not vacuous_bound(g, infos[g["metric"]]):
            return g["metric"]
    for name in metrics:
        if "." not in name and infos[name].get("kind") == "proportion":
            return name
    for g in suite.get("gates") or []:
        if g.get("metric") in infos:
            return g["metric"]
    return metrics[0] if metrics else None


def _chart_groups(suite: dict, names: list[str], metrics: list[str], gated: set[str],
                  colors: dict[str, str]) -> tuple[list[Markup], str]:
    """Charts with one axis each: 0-1 scores, perplexity (log), then each other gated metric."""
    models = suite.get("models") or {}

    def values(metric: str) -> dict:
        out = {}
        for m in names:
            info = (models[m].get("metrics") or {}).get(metric)
            if info and info.get("value") is not None:
                out[m] = (info.get("value"), info.get("ci_low"), info.get("ci_high"))
        return out

    def info_of(metric: str) -> dict:
        for m in names:
            info = (models[m].get("metrics") or {}).get(metric)
            if info:
                return info
        return {}

    def in_unit(vals: dict) -> bool:
        nums = [x for v in vals.values() for x in v if x is not None]
        return bool(nums) and all(-1e-9 <= x <= 1 + 1e-9 for x in nums)

    unit, log, own = [], [], []
    zero = 0
    for metric in metrics:
        vals = values(metric)
        if not vals:
            continue
        if "." in metric and metric not in gated and all(v[0] == 0 for v in vals.values()):
            zero += 1  # a sub-metric at exactly 0 everywhere (a class nobody hit): in the table only
            continue
        kind = _metric_kind(metric, info_of(metric))
        headline = "." not in metric or metric in gated
        if kind == "perplexity":
            log.append({"label": metric, "values": vals})
        elif in_unit(vals) and (kind == "proportion" or (headline and kind in ("mean", "pooled")
                                                         and info_of(metric).get("higher_is_better", True))):
            # pass rates, and 0-1 scores where more is better (token accuracy, keyword
            # fraction); a lower-is-better mean in 0-1 is a quantity (seconds), not a score
            unit.append({"label": metric, "values": vals})
        elif headline:  # a scorer's own number or a gated one, in its own units: its own axis
            own.append({"label": metric, "values": vals})
    shown_unit = unit[:MAX_CHART_ROWS]
    svgs = []
    if shown_unit:
        svgs.append(charts.bar_chart(f"{suite.get('name')}: scores on a 0–1 scale, 95% intervals",
                                     shown_unit, names, colors, scale="unit"))
    if log:
        svgs.append(charts.bar_chart(f"{suite.get('name')}: perplexity (log scale, lower is better)",
                                     log, names, colors, scale="log"))
    for row in own:
        svgs.append(charts.bar_chart(f"{suite.get('name')}: {row['label']}", [row], names, colors,
                                     scale="linear"))
    charted = len(shown_unit) + len(log) + len(own)
    note = (f"{charted} of {len(metrics)} metrics charted (pass rates and other 0–1 scores on one axis, "
            f"perplexity on a log axis, each other scorer or gated metric on its own); all {len(metrics)} "
            f"are in the scores table above.")
    if zero:
        note += f" {zero} sub-metric{'s' if zero != 1 else ''} at 0 for every model {'are' if zero != 1 else 'is'} not drawn."
    if len(unit) > len(shown_unit):
        note += f" The 0–1 chart shows the first {len(shown_unit)} of {len(unit)}."
    return svgs, note


def _suite_view(suite: dict, model_order: list[str], colors: dict[str, str], cards: Cards,
                failed_keys: set) -> dict:
    models = suite.get("models") or {}
    names = [m for m in model_order if m in models] + [m for m in models if m not in model_order]
    comparisons = suite.get("comparisons") or suite_comparisons(suite, None)
    gates_by: dict[tuple, list] = {}
    for g in suite.get("gates") or []:
        gates_by.setdefault((g.get("model"), g.get("metric")), []).append(g)
    metrics: list[str] = []
    for m in names:
        for metric in (models[m].get("metrics") or {}):
            if metric not in metrics:
                metrics.append(metric)
    gated = {g.get("metric") for g in suite.get("gates") or []}
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
                "model": m, "missing": False, "value": fmt(info.get("value")), "ci": _ci(info),
                "n": info.get("n"), "kind": info.get("kind", ""),
                "vs_base": _delta_cell(comp.get("vs_base"), hib),
                "vs_baseline": _delta_cell(comp.get("vs_baseline"), hib, "baseline"),
                "gates": [_gate_view(g, suite) for g in gates_by.get((m, metric), [])],
            })
        rows.append({"metric": metric, "higher_is_better": hib, "cells": cells,
                     "headline": "." not in metric or metric in gated})
    other_gates = [g for g in suite.get("gates") or [] if g.get("metric") not in metrics]
    bars, chart_note = _chart_groups(suite, names, metrics, gated, colors)

    # categories: pass/fail and top-level metrics per category, one table
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
                              "n": info.get("n") if info else None, "ci": _ci(info)})
            cat_rows.append({"category": cat, "metric": metric, "cells": cells})

    # flipped items vs base that no failed gate already shows
    flips = []
    base = models.get("base")
    lower = lower_is_better_scorers(suite)
    if base is not None:
        by_id = {str(i["id"]): i for i in base.get("items") or []}
        for m in names:
            if m == "base":
                continue
            down, up = [], []
            down_scorers: set[str] = set()
            up_scorers: set[str] = set()
            for item in models[m].get("items") or []:
                went_down, went_up = scorer_flips(by_id.get(str(item["id"])), item, lower)
                if went_down:
                    down.append((item, f"{flip_words(went_down, lower, True)} vs base (" + ", ".join(went_down) + ")",
                                 True))
                    down_scorers.update(went_down)
                elif went_up:
                    up.append((item, f"{flip_words(went_up, lower, False)} vs base (" + ", ".join(went_up) + ")",
                               False))
                    up_scorers.update(went_up)
            rest = [x for x in down + up if (suite.get("name"), m, str(x[0]["id"]), "base") not in failed_keys]
            shown = [cards.make(suite, m, item, "base", change, d) for item, change, d in rest[:MAX_OTHER_FLIPS]]
            # the badges: a lower-is-better scorer's new failures went to pass (a leak found), so
            # "pass→fail" only when no such scorer is behind them
            flips.append({"model": m, "down_total": len(down), "up_total": len(up), "cards": shown,
                          "down_words": flip_words(sorted(down_scorers), lower, True),
                          "up_words": flip_words(sorted(up_scorers), lower, False),
                          "rest": len(rest), "elsewhere": len(down) + len(up) - len(rest)})

    latency = []
    for field_, title, unit in (("ttft_s", "Time to first token", "seconds"),
                                ("decode_tps", "Decode speed", "tokens per second")):
        groups_l = []
        for m in names:
            vals = [float(i[field_]) for i in models[m].get("items") or []
                    if isinstance(i.get(field_), (int, float)) and not i.get("cached")]
            if vals:
                groups_l.append({"label": m, "values": vals, "color": colors.get(m)})
        if groups_l:
            latency.append(charts.distribution(groups_l, title, unit))

    integrity = [{"model": m, **(models[m].get("integrity") or {})} for m in names if models[m].get("integrity")]
    cached = {m: sum(1 for i in models[m].get("items") or [] if i.get("cached")) for m in names}
    gates = [_gate_view(g, suite) for g in
             sorted(suite.get("gates") or [], key=lambda g: g.get("passed", False))]
    return {
        "name": suite.get("name"), "description": suite.get("description", ""), "path": suite.get("path"),
        "fingerprint": suite.get("fingerprint"), "data_fingerprint": suite.get("data_fingerprint"),
        "scorers": [{"name": n, "version": s.get("version"),
                     "options": json.dumps(s.get("options") or {}, ensure_ascii=False, sort_keys=True, default=str),
                     "skipped": s.get("skipped")} for n, s in (suite.get("scorers") or {}).items()],
        "generation": json.dumps(suite.get("generation") or {}, ensure_ascii=False, default=str),
        "template": suite.get("template"),
        "models": names, "model_fingerprints": {m: models[m].get("fingerprint") for m in names},
        "items_count": {m: len(models[m].get("items") or []) for m in names}, "cached": cached,
        "rows": [r for r in rows if r["headline"]], "more_rows": [r for r in rows if not r["headline"]],
        "other_gates": other_gates, "bars": bars, "chart_note": chart_note,
        "categories": {"metrics": cat_metrics, "rows": cat_rows, "count": len(cat_names)} if cat_rows else None,
        "flips": flips, "latency": latency, "integrity": integrity, "gates": gates,
        "failed": sum(1 for g in gates if not g["passed"]),
        "passed": sum(1 for g in gates if g["passed"] and not g["vacuous"]),
        "vacuous": sum(1 for g in gates if g["vacuous"]),
        "warnings": suite.get("warnings") or [],
        "has_baseline": any(c.get("vs_baseline") for r in rows for c in r["cells"] if not c.get("missing")),
    }


def _gate_view(g: dict, suite: dict) -> dict:
    empty = could_not_fail(suite, g)
    return dict(g, vacuous=empty, vacuous_reason=vacuous_reason(g) if empty else "")


# --- overview, warnings, failures, item table ------------------------------------------------

def _overview(suites: list[dict], model_order: list[str]) -> dict:
    rows = []
    for suite in suites:
        models = suite.get("models") or {}
        metric = main_metric(suite)
        comparisons = suite.get("comparisons") or {}
        cells = []
        for m in model_order:
            if m not in models:
                cells.append(None)
                continue
            info = (models[m].get("metrics") or {}).get(metric) if metric else None
            own = [g for g in suite.get("gates") or [] if g.get("model") == m]
            real = [g for g in own if not could_not_fail(suite, g)]
            failed = [g for g in own if not g.get("passed")]
            if failed:
                state, label = "fail", f"✗ {len(failed)} of {len(own)} gate{'s' if len(own) != 1 else ''} failed"
            elif real:
                state, label = "pass", f"✓ {len(real)} gate{'s' if len(real) != 1 else ''} passed"
            elif own:
                state, label = "neutral", f"only gates that {VACUOUS_PHRASE}"
            else:
                state, label = "neutral", "reference" if m == "base" and len(models) > 1 else "no gates"
            hib = (info or {}).get("higher_is_better", True)
            comp = (comparisons.get(m) or {}).get(metric) or {} if metric else {}
            cells.append({
                "model": m, "state": state, "label": label,
                "value": fmt((info or {}).get("value")) if info else "–", "ci": _ci(info),
                "vs_base": _delta_cell(comp.get("vs_base"), hib) if m != "base" else None,
                "vs_baseline": _delta_cell(comp.get("vs_baseline"), hib, "baseline"),
            })
        rows.append({"suite": suite.get("name"), "metric": metric or "–", "cells": cells})
    return {"models": model_order, "rows": rows}


WARNING_GROUPS = [
    ("prompts past the model's positions", re.compile(r"need more positions than the model has")),
    ("prompt format", re.compile(r"prompt format|trained with the .* format", re.I)),
    ("reasoning cut at the token limit", re.compile(r"inside their reasoning block")),
    ("too few items to detect the margin", re.compile(r"paired items|power|can only show a margin", re.I)),
    ("baseline", re.compile(r"^baseline|the baseline|baseline has no", re.I)),
    ("adapter or training", re.compile(r"adapter|train|untrained|token.accuracy", re.I)),
    ("gates not checked", re.compile(r"not checked|skipped", re.I)),
]


def warning_groups(results: dict) -> list[dict]:
    """Every warning once, grouped by what it is about (first matching group, else 'other')."""
    seen: set[tuple[str, str]] = set()
    items: list[tuple[str, str]] = []
    for w in results.get("warnings") or []:
        if ("", w) not in seen:
            seen.add(("", w))
            items.append(("", w))
    for s in results.get("suites") or []:
        for w in s.get("warnings") or []:
            if (s.get("name"), w) not in seen:
                seen.add((s.get("name"), w))
                items.append((s.get("name"), w))
    groups: dict[str, list] = {}
    for suite, text in items:
        label = next((name for name, rx in WARNING_GROUPS if rx.search(text)), "other")
        groups.setdefault(label, []).append({"suite": suite, "text": text})
    order = [g for g, _ in WARNING_GROUPS] + ["other"]
    return [{"label": g, "entries": groups[g]} for g in order if g in groups]


def _failures(results: dict, cards: Cards) -> tuple[list[dict], set]:
    """Each failed gate with the cards of the items behind it (every item, no cap)."""
    out = []
    keys: set = set()
    for suite in results.get("suites") or []:
        models = suite.get("models") or {}
        # once a suite, not once a failed item: a gate failing on most of a large suite rescanned
        # every base item and every metric's direction for each of them
        base_items = {str(i["id"]): i for i in (models.get("base") or {}).get("items") or []}
        lower = lower_is_better_scorers(suite)
        for g in suite.get("gates") or []:
            if g.get("passed"):
                continue
            entries, note = gate_items(g, suite)
            shown = []
            cand_items = {str(i["id"]): i for i in (models.get(g.get("model")) or {}).get("items") or []}
            for item_id, ref_kind, worse in entries:
                item = cand_items.get(item_id)
                if item is None:
                    continue
                if worse:
                    change = worse
                elif ref_kind == "base":
                    went_down, _ = scorer_flips(base_items.get(item_id), item, lower)
                    change = f"{flip_words(went_down, lower, True)} vs base" if went_down else "fails"
                elif ref_kind == "baseline":
                    change = "pass→fail vs baseline"
                else:
                    change = "fails"
                if g.get("kind", "").startswith("critical"):
                    change = "critical item " + change
                key = (suite.get("name"), g["model"], item_id, ref_kind)
                first = key not in keys
                card = cards.make(suite, g["model"], item, ref_kind, change, True)
                label = f"{g.get('metric')} {g.get('kind')}"
                if label not in card.gates:
                    card.gates.append(label)
                keys.add(key)
                shown.append({"card": card, "first": first})
            kind = str(g.get("kind") or "")
            if not shown and kind.startswith(("max_drop", "rel_tolerance")):
                note = ("No item got worse: the gate failed because the interval is wider than the "
                        "margin, so these items cannot show the candidate is no worse (more items, "
                        "or a wider margin).")
            out.append({"gate": g, "cards": shown, "note": note, "n": len(shown)})
    return out, keys


def _item_rows(results: dict, cards: Cards, model_order: list[str]) -> tuple[list[dict], dict]:
    rows = []
    facets: dict[str, list] = {"model": [], "suite": [], "category": []}
    for suite in results.get("suites") or []:
        name = suite.get("name", "")
        models = suite.get("models") or {}
        metric = main_metric(suite)
        scorer = (metric or "").split(".", 1)[0]
        base_items = {str(i["id"]): i for i in (models.get("base") or {}).get("items") or []}
        lower = lower_is_better_scorers(suite)
        comparisons = suite.get("comparisons") or {}
        for m in [x for x in model_order if x in models]:
            down_bl: set[str] = set()
            up_bl: set[str] = set()
            for comp in (comparisons.get(m) or {}).values():
                d = (comp or {}).get("vs_baseline") or {}
                down_bl.update(str(i) for i in d.get("flipped_down") or [])
                up_bl.update(str(i) for i in d.get("flipped_up") or [])
            for item in models[m].get("items") or []:
                item_id = str(item["id"])
                flips = []
                if m != "base":
                    went_down, went_up = scorer_flips(base_items.get(item_id), item, lower)
                    if went_down:
                        flips.append("↓ vs base")
                    elif went_up:
                        flips.append("↑ vs base")
                if item_id in down_bl:
                    flips.append("↓ vs baseline")
                elif item_id in up_bl:
                    flips.append("↑ vs baseline")
                score = ((item.get("scores") or {}).get(scorer) or {})
                value = score.get("value")
                failing = [n for n, s in (item.get("scores") or {}).items() if s.get("passed") is False]
                detail = (item.get("scores") or {}).get(failing[0] if failing else scorer, {}).get("detail", "")
                if len(detail) > DETAIL_CHARS:
                    detail = detail[:DETAIL_CHARS] + "…"
                card = None
                for ref in ("base", "baseline", ""):
                    card = cards.get((name, m, item_id, ref))
                    if card:
                        break
                out = str(item.get("output", ""))
                thought = item.get("reasoning") or {}
                if isinstance(thought.get("chars"), int) and 0 < thought["chars"] <= len(out):
                    # a reasoning model: show the answer the scorers read, and that it thought first
                    note = (f"[still reasoning at the token limit: {thought['chars']} chars, no answer] "
                            if thought.get("unfinished") else f"[reasoning: {thought['chars']} chars] ")
                    out = note + out[thought["chars"]:]
                preview = out if len(out) <= PREVIEW_CHARS else out[:PREVIEW_CHARS] + "…"
                v = verdict(item)
                if item.get("error"):  # never answered (an endpoint's failed request): its scores are of ""
                    v, detail = "fail", f"no answer: {str(item['error'])[:DETAIL_CHARS]}"
                rows.append({"suite": name, "model": m, "id": item_id, "category": item.get("category") or "",
                             "verdict": v or "n/a", "flips": flips, "flipped": bool(flips),
                             "failing": failing, "detail": detail, "value": value,
                             "value_text": "–" if value is None else f"{value:.3g}",  # the script sorts on it
                             "preview": preview, "anchor": card.anchor if card else None})
                for key, val in (("model", m), ("suite", name), ("category", item.get("category"))):
                    if val and val not in facets[key]:
                        facets[key].append(val)
    return rows, facets


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
    cards = Cards()
    failures, failed_keys = _failures(results, cards)
    suites = [_suite_view(s, model_order, colors, cards, failed_keys) for s in results.get("suites") or []]
    item_rows, facets = _item_rows(results, cards, model_order)
    all_gates = [g for s in results.get("suites") or [] for g in s.get("gates") or []]
    command = results.get("command") or []
    js, js_hash = script()
    return {
        "verdict": results.get("verdict", "fail"),
        "created": results.get("created", ""),
        "harness_version": results.get("harness_version", ""),
        "command": shlex.join(str(c) for c in command) if isinstance(command, list) else str(command),
        "environment": sorted((str(k), _json(v) if isinstance(v, (dict, list)) else str(v))
                              for k, v in (results.get("environment") or {}).items()),
        "models": [{"name": n, "color": colors.get(n), **m} for n, m in (results.get("models") or {}).items()],
        "baseline": results.get("baseline"),
        "overview": _overview(results.get("suites") or [], model_order),
        "warning_groups": warning_groups(results),
        "n_warnings": sum(len(g["entries"]) for g in warning_groups(results)),
        "failed_gates": [g for g in all_gates if not g.get("passed")],
        "failures": failures,
        "n_failed_items": len(failed_keys),
        "n_gates": len(all_gates), "n_failed": sum(1 for g in all_gates if not g.get("passed")),
        "n_vacuous": sum(s["vacuous"] for s in suites), "vacuous_phrase": VACUOUS_PHRASE,
        "suites": suites,
        "item_rows": item_rows, "facets": facets,
        "training": training_charts(results, colors),
        "trends": trend_view(results),
        "colors": colors,
        "script": js, "script_hash": js_hash,
    }


def compare_context(cmp: dict, a: dict | None = None, b: dict | None = None) -> dict:
    """Rows for compare.html.j2 from ``compare_runs``; with the two runs, the changed
    outputs side by side (a baseline file gives its outputs when it kept them)."""
    from ..baseline import unpack_outputs
    from ..runs import flip_labels
    from .items import diff_markup

    def outputs(run: dict | None, suite: str, model: str) -> dict[str, dict]:
        for s in (run or {}).get("suites") or []:
            if s.get("name") == suite:
                entry = (s.get("models") or {}).get(model) or {}
                packed = unpack_outputs(entry.get("outputs_z"))
                return {str(i["id"]): {"output": i["output"] if isinstance(i.get("output"), str)
                                       else packed.get(str(i["id"])),
                                       "prompt": i.get("prompt"), "category": i.get("category")}
                        for i in entry.get("items") or []}
        return {}

    suites = []
    for suite in cmp.get("suites") or []:
        models = []
        for name, entry in suite["models"].items():
            rows = []
            for metric, m in entry["metrics"].items():
                rows.append({"metric": metric, "a": fmt(m["a"].get("value")), "b": fmt(m["b"].get("value")),
                             # called as `harness compare` and --fail-on-regression call it
                             "delta": _delta_cell(m.get("delta"), m.get("higher_is_better", True),
                                                  points=True)})
            a_name = entry.get("a_name", name)
            oa, ob = outputs(a, suite["name"], a_name), outputs(b, suite["name"], name)
            down, up = set(entry["flipped_down"]), set(entry["flipped_up"])
            changed = []
            for item_id in sorted(entry["changed_outputs"], key=lambda i: (i not in down, i not in up, i)):
                x, y = oa.get(item_id) or {}, ob.get(item_id) or {}
                if isinstance(x.get("output"), str) and isinstance(y.get("output"), str):
                    left, right = diff_markup(x["output"], y["output"])
                else:
                    left, right = None, None
                changes = (entry.get("flip_changes") or {}).get(item_id, ())
                changed.append({"id": item_id, "left": left, "right": right, "prompt": y.get("prompt") or "",
                                "category": y.get("category"), "down": item_id in down,
                                "flip": (flip_label(changes, worse=True) if item_id in down else
                                         flip_label(changes, worse=False) if item_id in up else "")})
            worse, better = flip_labels(entry)
            models.append({"name": name, "a_name": a_name, "rows": rows, "changed": changed,
                           "compared": entry["compared_outputs"], "flipped_down": entry["flipped_down"],
                           "flipped_up": entry["flipped_up"], "worse": worse, "better": better,
                           "texts": sum(1 for c in changed if c["left"] is not None)})
        suites.append({"name": suite["name"], "fingerprints": suite["fingerprints"], "models": models})
    return {"a": cmp.get("a"), "b": cmp.get("b"), "fingerprints": cmp.get("fingerprints") or [],
            "only_in_a": cmp.get("only_in_a") or [], "only_in_b": cmp.get("only_in_b") or [],
            "unpaired": cmp.get("unpaired") or [], "suites": suites}
