"""`junit.xml`: one test case per gate (classname suite.model, name metric and gate kind);
a failed gate is a <failure> whose message is the gate's reason. CI systems show these
as test results, so a regression reads like a failing test."""

from __future__ import annotations


def context(results: dict) -> dict:
    suites = []
    for suite in results.get("suites") or []:
        cases = []
        for g in suite.get("gates") or []:
            cases.append({"classname": f"{g.get('suite', suite['name'])}.{g.get('model')}",
                          "name": f"{g.get('metric')} {g.get('kind') or 'gate'}",
                          "passed": bool(g.get("passed")), "reason": g.get("reason", ""),
                          "kind": g.get("kind") or "gate", "skipped": None})
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
