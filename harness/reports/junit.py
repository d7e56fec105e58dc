"""`junit.xml`: one test case per gate (classname suite.model, name metric and gate kind);
a failed gate is a <failure> whose message is the gate's reason. CI systems show these
as test results, so a regression reads like a failing test. With ``--junit-items`` every
item that flipped (vs the base or the baseline) is a test case of its own too: pass->fail
a failure, fail->pass a pass."""

from __future__ import annotations

from ..gates import could_not_fail, vacuous_reason


def context(results: dict) -> dict:
    suites = []
    for suite in results.get("suites") or []:
        cases = []
        for g in suite.get("gates") or []:
            reason = g.get("reason", "")
            if could_not_fail(suite, g):
                reason = f"vacuous, could not fail ({vacuous_reason(g)}): {reason}"
            cases.append({"classname": f"{g.get('suite', suite['name'])}.{g.get('model')}",
                          "name": f"{g.get('metric')} {g.get('kind') or 'gate'}",
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
    """One test case per (model, item, reference) that flipped on a pass/fail metric."""
    items = {m: {str(i.get("id")): i for i in (r or {}).get("items") or []}
             for m, r in (suite.get("models") or {}).items()}
    found: dict[tuple, dict] = {}
    for model, metrics in sorted((suite.get("comparisons") or {}).items()):
        for metric, refs in sorted((metrics or {}).items()):
            for ref_key, ref_name in (("vs_base", "base"), ("vs_baseline", "baseline")):
                delta = (refs or {}).get(ref_key) or {}
                for direction, went in (("flipped_down", "pass→fail"), ("flipped_up", "fail→pass")):
                    for item_id in delta.get(direction) or []:
                        key = (model, str(item_id), ref_name)
                        case = found.setdefault(key, {
                            "classname": f"{suite['name']}.{model}.items",
                            "name": f"item {item_id} vs {ref_name}", "passed": True, "reason": "",
                            "kind": "flipped_item", "skipped": None, "_down": [], "_up": []})
                        case["_down" if direction == "flipped_down" else "_up"].append(metric)
    cases = []
    for (model, item_id, ref_name), case in found.items():
        output = str((items.get(model, {}).get(item_id) or {}).get("output", ""))
        shown = output[:200] + ("…" if len(output) > 200 else "")
        down, up = case.pop("_down"), case.pop("_up")
        case["passed"] = not down
        parts = ([f"pass→fail vs {ref_name} on {', '.join(down)}"] if down else []) + \
                ([f"fail→pass vs {ref_name} on {', '.join(up)}"] if up else [])
        case["reason"] = f"{'; '.join(parts)}; output: {shown!r}"
        cases.append(case)
    return cases
