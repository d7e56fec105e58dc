"""`summary.md`: the verdict, the failed gates and a compact score table, short enough
for $GITHUB_STEP_SUMMARY or a pull-request comment (details stay in index.html)."""

from __future__ import annotations

from ..compare import direction, fmt
from ..gates import VACUOUS_PHRASE, could_not_fail, vacuous_reason

MAX_ROWS = 30


def _cell(info: dict | None, delta: dict | None, hib: bool) -> str:
    if not info or info.get("value") is None:
        return "–"
    text = fmt(info["value"])
    if delta and delta.get("diff") is not None:
        flag = {"worse": " ▼", "better": " ▲"}.get(direction(delta, hib), "")
        text += f" (Δ {fmt(delta['diff'], signed=True)}{flag})"
    return text


def _by_suite(gates: list[dict]) -> list[dict]:
    """Vacuous gates grouped for one short line: suite, its metrics, how many gates."""
    groups: dict[str, dict] = {}
    for g in gates:
        entry = groups.setdefault(str(g.get("suite")), {"suite": str(g.get("suite")), "metrics": [], "count": 0})
        entry["count"] += 1
        if g.get("metric") not in entry["metrics"]:
            entry["metrics"].append(g.get("metric"))
    return list(groups.values())


def context(results: dict) -> dict:
    models: list[str] = []
    for suite in results.get("suites") or []:
        for m in suite.get("models") or {}:
            if m not in models:
                models.append(m)
    if "base" in models:
        models.remove("base")
        models.insert(0, "base")
    rows = []
    for suite in results.get("suites") or []:
        gated = {g.get("metric") for g in suite.get("gates") or []}
        comparisons = suite.get("comparisons") or {}
        metrics: list[str] = []
        for m in models:
            for metric in ((suite.get("models") or {}).get(m) or {}).get("metrics") or {}:
                if metric not in metrics and ("." not in metric or metric in gated):
                    metrics.append(metric)
        for metric in metrics:
            cells = []
            for m in models:
                info = (((suite.get("models") or {}).get(m) or {}).get("metrics") or {}).get(metric)
                hib = (info or {}).get("higher_is_better", True)
                delta = ((comparisons.get(m) or {}).get(metric) or {}).get("vs_base") if m != "base" else None
                cells.append(_cell(info, delta, hib))
            rows.append({"suite": suite["name"], "metric": metric, "cells": cells})
        for gated_metric in sorted(m for m in gated if m and m.endswith("]") and "[" in m):
            metric, category = gated_metric[:-1].split("[", 1)  # a per-category gate: METRIC[CATEGORY]
            cells = []
            for m in models:
                info = ((((suite.get("models") or {}).get(m) or {}).get("categories") or {}).get(category) or {}).get(metric)
                cells.append(_cell(info, None, (info or {}).get("higher_is_better", True)))
            rows.append({"suite": suite["name"], "metric": gated_metric, "cells": cells})
    gates = [g for s in results.get("suites") or [] for g in s.get("gates") or []]
    empty = [g for s in results.get("suites") or [] for g in s.get("gates") or [] if could_not_fail(s, g)]
    warnings = run_warnings(results)
    baseline = results.get("baseline") or {}
    return {
        "verdict": results.get("verdict", "fail"), "created": results.get("created", ""),
        "models": models, "suites": results.get("suites") or [],
        "n_gates": len(gates), "n_failed": sum(1 for g in gates if not g.get("passed")),
        "failed_gates": [g for g in gates if not g.get("passed")],
        "vacuous_gates": [dict(g, why=vacuous_reason(g)) for g in empty], "vacuous_phrase": VACUOUS_PHRASE,
        "vacuous_by_suite": _by_suite(empty),
        "score_rows": rows, "warnings": warnings, "max_rows": MAX_ROWS,
        "baseline": baseline.get("path") if isinstance(baseline, dict) else None,
    }


def run_warnings(results: dict) -> list[str]:
    """Every warning of a run, the run's own first, then each suite's (prefixed with its name)."""
    return list(results.get("warnings") or []) + [f"{s['name']}: {w}" for s in results.get("suites") or []
                                                  for w in s.get("warnings") or []]


def warnings_line(results: dict) -> str | None:
    """The terminal's pointer to the warnings, printed under the verdict line: they were only in
    summary.md and the scorecard, so a PASS whose adapter had no effect on a server said nothing."""
    n = len(run_warnings(results))
    return f"  {n} warning{'s' if n != 1 else ''}: see summary.md (a warning does not change the verdict)" if n else None
