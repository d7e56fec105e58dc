"""Normalised exact match of a predicted SQL query with the gold query.

Strict on meaning-bearing text (string literals compare byte for byte), lenient on
layout: a ``sql`` fence, surrounding whitespace, a trailing ``;``, keyword and
identifier case, and spacing (also around punctuation) are ignored; a literal may be
single- or double-quoted, and an identifier quoted (backticks, brackets, or double
quotes around a column or table name of the WikiSQL prompt). Equivalent queries written differently (``COUNT(*)`` for
``COUNT col``, reordered conditions) do not match here; ``sql_execution`` and
``sql_logical_form`` judge those.
"""

from __future__ import annotations

from . import wikisql
from .base import Item, Score, Scorer
from .normalize import fold, normalize_sql


class SqlExact(Scorer):
    name = "sql_exact"
    metric_keys = frozenset()
    unbounded = frozenset()  # a pass rate
    version = "1"

    def score(self, item: Item) -> Score:
        if item.case.target is None:
            return Score(None, None, "the suite gives no target (gold query) for this case")
        table = wikisql.table_from_prompt(item.case.prompt)
        names = frozenset(fold(n) for n, _ in table.candidates()) | {fold(table.id)} if table else frozenset()
        gold, pred = normalize_sql(item.case.target, names), normalize_sql(item.output, names)
        if gold == pred:
            return Score(1.0, True, "matches the gold query after normalisation")
        return Score(0.0, False, f"differs from the gold query at {_first_difference(gold, pred)}",
                     extra={"gold_normalized": gold, "output_normalized": pred})


def _first_difference(gold: str, pred: str) -> str:
    i = next((k for k, (a, b) in enumerate(zip(gold, pred)) if a != b), min(len(gold), len(pred)))
    start = max(0, i - 20)
    return (f"character {i}: expected {gold[start:i + 20]!r}, got {pred[start:i + 20]!r}"
            if pred else "character 0: the output is empty")
