"""WikiSQL's logical-form accuracy, as WikiSQL's own evaluation computes it.

The reference is ``lib/query.py`` of github.com/salesforce/WikiSQL (``Query.__eq__``, used
by ``evaluate.py`` for ``lf_accuracy``): two queries are equal when they have the same
select column, the same aggregate, and the same *set* of conditions ``(column, operator,
str(value).lower())`` (a list, in order, with ``--ordered``). Values are compared as
lower-cased **strings**: ``'2.0'`` does not equal gold ``'2'``, ``'1,200'`` does not
equal ``'1200'``. That is what this scorer does by default.

Options:

- ``numbers_by_value: true`` (not WikiSQL's): a value that is a number in both queries
  compares as a number (``2`` = ``'2'`` = ``2.0``), and text is NFKC-casefolded rather
  than lower-cased. Report it beside the official number, not instead of it.
- ``ordered: true``: conditions must come in the gold's order (WikiSQL's ``--ordered``).

Deliberate differences from the official code, all forced by scoring *text*:

1. The official evaluation compares structured predictions (column indices, operator
   indices, a value). Here both queries are text in WikiSQL's notation, parsed with the
   column-aware parser of ``wikisql.py`` against the prompt's ``columns:`` line. The
   parser accepts what a model writes for the same structure: any keyword case,
   ``COUNT(col)``, quoted identifiers, ``''``-escaped quotes, trailing ``;``s, a code
   fence, ``==`` for ``=``. Column names match case-insensitively (the official
   ``Query.from_sequence`` lower-cases headers too). A prediction that does not parse
   scores 0 (officially, a prediction that fails to convert is wrong too).
2. Operators: WikiSQL has ``=``, ``>``, ``<``. The parser also reads ``>=``, ``<=``,
   ``!=``/``<>``; such a condition never equals a WikiSQL gold condition.
3. A column name that occurs twice in a table means its first occurrence (text cannot
   say which; the official comparison uses indices).
4. The ``FROM`` name is not compared: WikiSQL gives the table (its ``Query`` has none).
5. A quoted value is compared as written between the quotes (inner spaces kept); a bare
   value runs to ``AND`` or the end, its outer spaces dropped. Quoting itself does not
   matter (``No. = 3`` equals ``No. = '3'``: both are the string ``3``, as
   ``str(3) == '3'`` officially).

Per-item breakdown (metrics ``sql_logical_form.agg``, ``.select``, ``.where``): the three
parts SQLNet (Xu et al., 2017, ``check_acc``) reports as Acc_agg, Acc_sel and Acc_where,
compared as above: the aggregate, the select column, and the condition set (every
condition's column, operator and value; in order with ``ordered: true``). They say *which
part* of the query an adapter got wrong or lost. A prediction that does not parse scores 0
on all three (SQLNet's structured predictions always have the three parts).

Unlike execution accuracy, it does not credit a different query that happens to return
the same rows on the test table, and unlike exact match, it does not care about layout.
"""

from __future__ import annotations

from . import wikisql
from .base import Item, Score, Scorer
from .normalize import strip_sql


class SqlLogicalForm(Scorer):
    name = "sql_logical_form"
    metric_keys = frozenset({"agg", "select", "where"})
    unbounded = frozenset()  # a pass rate and shares of its parts
    # 2: values compare as lower-cased strings, as WikiSQL's lib/query.py; 3: a bare value holds
    # no `;`, comment, comparison or SQL clause (wikisql.py); 4: every trailing `;` (and the
    # whitespace between) ends a bare value, so `= 12;;` is 12, not '12;'
    version = "4"
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "numbers_by_value": {"type": "boolean", "default": False,
                                 "description": "not WikiSQL's: numeric values compare as numbers "
                                                "(2 = '2.0'), text casefolded"},
            "ordered": {"type": "boolean", "default": False,
                        "description": "conditions must be in the gold's order (WikiSQL --ordered)"},
        },
    }

    def gold_problems(self, cases) -> list:
        return wikisql.gold_problems(cases)

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
            return Score(0.0, False, f"prediction does not parse: {exc}",
                         metrics={"agg": 0.0, "select": 0.0, "where": 0.0})
        by_value, ordered = self.options.get("numbers_by_value", False), self.options.get("ordered", False)
        differences = _differences(gold, pred, table, by_value, ordered)
        parts = {"agg": float(gold.agg == pred.agg), "select": float(gold.column == pred.column),
                 "where": float(_conditions(gold, by_value, ordered) == _conditions(pred, by_value, ordered))}
        if not differences:
            return Score(1.0, True, "same aggregate, column and conditions as the gold query", metrics=parts)
        return Score(0.0, False, "; ".join(differences), metrics=parts)


def _conditions(query: wikisql.Query, numbers_by_value: bool, ordered: bool) -> list | frozenset:
    """A query's conditions as WikiSQL compares them: a set, or a list with ``ordered``."""
    keys = [c.key(numbers_by_value) for c in query.conditions]
    return keys if ordered else frozenset(keys)


def _differences(gold: wikisql.Query, pred: wikisql.Query, table: wikisql.Table,
                 numbers_by_value: bool = False, ordered: bool = False) -> list[str]:
    out = []
    if gold.agg != pred.agg:
        out.append(f"aggregate {pred.agg or 'none'}, expected {gold.agg or 'none'}")
    if gold.column != pred.column:
        out.append(f"selects {table.name(pred.column)!r}, expected {table.name(gold.column)!r}")
    g = {c.key(numbers_by_value): c for c in gold.conditions}
    p = {c.key(numbers_by_value): c for c in pred.conditions}
    missing = [_show(g[k], table) for k in g if k not in p]
    extra = [_show(p[k], table) for k in p if k not in g]
    if missing:
        out.append("missing condition " + " AND ".join(missing))
    if extra:
        out.append("unexpected condition " + " AND ".join(extra))
    if not missing and not extra and ordered:
        gold_keys = [c.key(numbers_by_value) for c in gold.conditions]
        pred_keys = [c.key(numbers_by_value) for c in pred.conditions]
        if gold_keys != pred_keys:
            out.append("conditions in another order than the gold's (ordered: true)")
    return out


def _show(c: wikisql.Condition, table: wikisql.Table) -> str:
    value = repr(c.text) if c.quoted else c.text
    return f"{table.name(c.column)} {c.op} {value}"
