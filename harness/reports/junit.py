"""`junit.xml`: one test case per gate (classname suite.model, name metric and gate kind);
a failed gate is a <failure> whose message is the gate's reason. CI systems show these
as test results, so a regression reads like a failing test. With ``--junit-items`` every
item that flipped (vs the base or the baseline) is a test case of its own too: one that got
worse (pass->fail, or 0->1 where lower is better) a failure when a gate on that metric and
reference failed, else a pass that says the gates allowed it; one that got better a pass.
junit.xml has failures exactly when the run exits 1."""

from __future__ import annotations

from ..compare import flip_change, flip_label
from ..gates import VACUOUS_PHRASE, could_not_fail, vacuous_reason
from .items import split_category


def context(results: dict) -> dict:
    suites = []
    for suite in results.get("suites") or []:
        cases = []
        for g in suite.get("gates") or []:
            reason = g.get("reason", "")
            if could_not_fail(suite, g):
                reason = f"vacuous, {VACUOUS_PHRASE} ({vacuous_reason(g)}): {reason}"
            cases.append({"classname": f"{g.get('suite', suite['name'])}.{g.get('model')}",
                          "name": _gate_name(g),
                          "passed": bool(g.get("passed")), "reason": reason,
                          "kind": g.get("kind") or "gate", "skipped": None})
        if (results.get("report_options") or {}).get("junit_items"):
            cases.extend(flipped_item_cases(suite))
        if not cases:
            cases.append({"classname": suite["name"], "name": "no gates", "passed": True, "reason": "",
                          "kind": "none", "skipped": "no gate applies to this suite"})
        suites.append({"name": suite["name"], "cases": cases,
                       "failures": sum(1 for c in cases if not c["passed"] and not c["skipped"]),
                       "skipped": sum(1 for c in cases if c["skipped"]),
                       "warnings": list(suite.get("warnings") or [])})
    return {
        "suites": suites, "created": results.get("created") or "",
        "total": sum(len(s["cases"]) for s in suites),
        "failures": sum(s["failures"] for s in suites),
        "skipped": sum(s["skipped"] for s in suites),
    }


def flipped_item_cases(suite: dict) -> list[dict]:
    """One test case per (model, item, reference) that flipped on a pass/fail metric.

    A pass→fail flip is a <failure> only when a gate of this run on that metric, model and
    reference failed (the message names it); one the gates allowed (within a drop gate's
    margin) is a passing case whose <system-out> says so. CI reporters (GitHub checks, GitLab,
    Jenkins) turn a job red on any failed test case, so junit.xml must have no failure in a
    run that exits 0, or a red report gets read as noise. fail→pass is a pass."""
    items = {m: {str(i.get("id")): i for i in (r or {}).get("items") or []}
             for m, r in (suite.get("models") or {}).items()}
    found: dict[tuple, dict] = {}
    for model, metrics in sorted((suite.get("comparisons") or {}).items()):
        for metric, refs in sorted((metrics or {}).items()):
            for ref_key, ref_name in (("vs_base", "base"), ("vs_baseline", "baseline")):
                delta = (refs or {}).get(ref_key) or {}
                for direction in ("flipped_down", "flipped_up"):
                    for item_id in delta.get(direction) or []:
                        key = (model, str(item_id), ref_name)
                        case = found.setdefault(key, {
                            "classname": f"{suite['name']}.{model}.items",
                            "name": f"item {item_id} vs {ref_name}", "passed": True, "reason": "",
                            "kind": "flipped_item", "skipped": None, "_down": [], "_up": []})
                        # what the item did, as the delta says it and in compare's words: pass→fail,
                        # got worse (1→0) on a 0/1 mean, got worse (0→1) where lower is better (and
                        # fail→pass, got better (0→1), got better (1→0) for flipped_up)
                        worse = direction == "flipped_down"
                        case["_down" if worse else "_up"].append(
                            (metric, flip_label({flip_change(delta, worse)}, worse)))
    cases = []
    for (model, item_id, ref_name), case in found.items():
        item = items.get(model, {}).get(item_id) or {}
        output = str(item.get("output", ""))
        shown = output[:200] + ("…" if len(output) > 200 else "")
        down, up = case.pop("_down"), case.pop("_up")
        parts = []
        for metric, flip in down:
            gates = gates_covering(suite, model, metric, ref_name, item_id, item.get("category"))
            failed = [_gate_name(g) for g in gates if not g.get("passed")]
            if failed:
                case["passed"] = False
                parts.append(f"{flip} vs {ref_name} on {metric}, failed gate: {', '.join(failed)}")
            elif gates:
                names = ", ".join(_gate_name(g) for g in gates)
                parts.append(f"{flip} vs {ref_name} on {metric}, within the gate's margin ({names} passed)")
            else:
                parts.append(f"{flip} vs {ref_name} on {metric}, not gated (no gate on {metric} vs {ref_name})")
        for flip in dict.fromkeys(f for _, f in up):  # one part per change, in the order seen
            parts.append(f"{flip} vs {ref_name} on {', '.join(m for m, f in up if f == flip)}")
        case["reason"] = f"{'; '.join(parts)}; output: {shown!r}"
        cases.append(case)
    return cases


def gates_covering(suite: dict, model: str, metric: str, ref_name: str, item_id: str,
                   category: str | None) -> list[dict]:
    """The gates of this run that speak for one item's flip on ``metric`` against ``ref_name``:
    the same model, a ``*_vs_base`` / ``*_vs_baseline`` kind, the metric itself or its
    category (``METRIC[CAT]`` for an item of CAT); a critical-items gate only for its items.
    A floor or ceiling has no reference: it failing does not make one flip the cause."""
    out = []
    for g in suite.get("gates") or []:
        kind = str(g.get("kind") or "")
        if g.get("model") != model or not kind.endswith(f"_vs_{ref_name}"):
            continue
        name, cat = split_category(str(g.get("metric") or ""))
        cat = (g.get("details") or {}).get("category", cat)  # as gate_items reads a gate's category
        if name != metric or (cat is not None and cat != category):
            continue
        if kind.startswith("critical_vs_") and item_id not in [str(i) for i in
                                                               (g.get("details") or {}).get("critical") or []]:
            continue
        out.append(g)
    return out


def _gate_name(gate: dict) -> str:
    """As the gate's own test case is named (``METRIC KIND``), so the failure points at it."""
    return f"{gate.get('metric')} {gate.get('kind') or 'gate'}"
