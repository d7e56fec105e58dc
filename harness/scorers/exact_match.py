"""Exact match of the output with the target, after trimming surrounding whitespace.

The simplest scorer: for smoke tests and suites whose answer has one spelling.
"""

from __future__ import annotations

from .base import Item, Score, Scorer


class ExactMatch(Scorer):
    name = "exact_match"
    metric_keys = frozenset()
    unbounded = frozenset()  # a pass rate
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"case_sensitive": {"type": "boolean", "default": True}},
    }

    def score(self, item: Item) -> Score:
        target = (item.case.target or "").strip()
        output = item.output.strip()
        if not self.options.get("case_sensitive", True):
            target, output = target.casefold(), output.casefold()
        ok = output == target
        detail = "matches the target" if ok else f"expected {target[:80]!r}, got {output[:80]!r}"
        return Score(value=1.0 if ok else 0.0, passed=ok, detail=detail)
