"""WikiSQL's logical-form accuracy: the same query, up to the order of its conditions.

As in WikiSQL's own evaluation (``Query.__eq__``): the same aggregate, the same select
column, and the same set of (column, operator, value) conditions, values compared
case-insensitively. Columns are compared by position in the table, after parsing both
queries with the column-aware parser of ``wikisql.py``; a value that is a number in both
queries compares as a number (``6`` equals ``'6'`` and ``6.0``).

Unlike execution accuracy, it does not credit a different query that happens to return
the same rows on the test table, and unlike exact match, it does not care about layout.
"""

from __future__ import annotations

from . import wikisql
from .base import Item, Score, Scorer
from .normalize import strip_sql


class SqlLogicalForm(Scorer):
    name = "sql_logical_form"
    version = "1"

    def score(self, item: Item) -> Score:
        if item.case.target is None:
            return Score(None, None, "the suite gives no target (gold query) for this case")
        try:
            table, gold = wikisql.case_table_and_gold(item.case,
                                                      hint="sql_logical_form scores WikiSQL cases only")
        except wikisql.ParseError as exc:
            return Score(None, None, f"the gold query does not parse ({exc}); fix the case")
        try:
            pred = wikisql.parse(strip_sql(item.output), table)
        except wikisql.ParseError as exc:
            return Score(0.0, False, f"prediction does not parse: {exc}")
        differences = _differences(gold, pred, table)
        if not differences:
            return Score(1.0, True, "same aggregate, column and conditions as the gold query")
        return Score(0.0, False, "; ".join(differences))


def _differences(gold: wikisql.Query, pred: wikisql.Query, table: wikisql.Table) -> list[str]:
    out = []
    if gold.agg != pred.agg:
        out.append(f"aggregate {pred.agg or 'none'}, expected {gold.agg or 'none'}")
    if gold.column != pred.column:
        out.append(f"selects {table.name(pred.column)!r}, expected {table.name(gold.column)!r}")
    g = {c.key(): c for c in gold.conditions}
    p = {c.key(): c for c in pred.conditions}
    missing = [_show(g[k], table) for k in g if k not in p]
    extra = [_show(p[k], table) for k in p if k not in g]
    if missing:
        out.append("missing condition " + " AND ".join(missing))
    if extra:
        out.append("unexpected condition " + " AND ".join(extra))
    return out


def _show(c: wikisql.Condition, table: wikisql.Table) -> str:
    value = repr(c.text) if c.quoted else c.text
    return f"{table.name(c.column)} {c.op} {value}"
