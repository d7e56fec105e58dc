"""sql_exact, sql_execution and sql_logical_form on hand-checked WikiSQL variants, and the
execution sandbox: writes, two statements, ATTACH, PRAGMA and a query that never ends all
score 0, within the timeout, with the table untouched."""

from __future__ import annotations

import time

import pytest

from harness.errors import HarnessError
from harness.scorers import REGISTRY, Item
from harness.scorers import wikisql
from harness.scorers.sql_execution import QueryFailed, run_query, same_result, wikisql_database
from harness.case import Case

PROMPT = ("table: 1-10015132-11\n"
          "columns: Player, No., Nationality, Position, Years in Toronto, School/Club Team\n"
          "Q: What position does the player who played for butler cc (ks) play?\nA: ")
GOLD = "SELECT Position FROM 1-10015132-11 WHERE School/Club Team = 'Butler CC (KS)'"
GOLD2 = "SELECT COUNT Player FROM 1-10015132-11 WHERE Position = 'Guard' AND No. > 20"
TIMEOUT = 0.5


def item(output: str, target: str = GOLD, prompt: str = PROMPT, record: dict | None = None) -> Item:
    case = Case(id="s1", index=0, category=None, record=record or {}, prompt=prompt, target=target,
                source_line=4)
    return Item(case=case, output=output, finish_reason="stop")


def run(scorer: str, output: str, target: str = GOLD, options: dict | None = None, **kw):
    return REGISTRY[scorer](options or {}).score(item(output, target, **kw))


# Same query: case, whitespace, quoting of the literal, a trailing ';', a fence.
EQUAL_VARIANTS = [
    GOLD,
    "select position from 1-10015132-11 where school/club team = 'Butler CC (KS)'",
    "SELECT   Position\nFROM 1-10015132-11   WHERE School/Club Team='Butler CC (KS)' ;",
    'SELECT Position FROM 1-10015132-11 WHERE School/Club Team = "Butler CC (KS)"',
    "```sql\nSELECT Position FROM 1-10015132-11 WHERE School/Club Team = 'Butler CC (KS)';\n```",
    'SELECT "Position" FROM "1-10015132-11" WHERE "School/Club Team" = \'Butler CC (KS)\'',
]
# A different literal, column, aggregate or table.
UNEQUAL_VARIANTS = [
    "SELECT Position FROM 1-10015132-11 WHERE School/Club Team = 'Butler CC'",
    "SELECT Player FROM 1-10015132-11 WHERE School/Club Team = 'Butler CC (KS)'",
    "SELECT Position FROM 1-10015132-11 WHERE Player = 'Butler CC (KS)'",
    "SELECT COUNT Position FROM 1-10015132-11 WHERE School/Club Team = 'Butler CC (KS)'",
    "SELECT Position FROM 1-10015132-11",
]


def test_wikisql_gives_the_table_so_the_from_name_is_not_judged():
    other = GOLD.replace("FROM 1-10015132-11", "FROM table")
    s = run("sql_execution", other)
    assert s.value == 1.0 and "FROM names 'table'" in s.extra["note"]
    assert run("sql_logical_form", other).value == 1.0
    assert run("sql_exact", other).value == 0.0


@pytest.mark.parametrize("output", EQUAL_VARIANTS)
@pytest.mark.parametrize("scorer", ["sql_exact", "sql_execution", "sql_logical_form"])
def test_equal_variants_score_1(scorer, output):
    s = run(scorer, output)
    assert (s.value, s.passed) == (1.0, True), s.detail


@pytest.mark.parametrize("output", UNEQUAL_VARIANTS)
@pytest.mark.parametrize("scorer", ["sql_exact", "sql_execution", "sql_logical_form"])
def test_unequal_variants_score_0(scorer, output):
    s = run(scorer, output)
    assert (s.value, s.passed) == (0.0, False), s.detail
    assert s.detail


def test_exact_match_keeps_literal_case_and_reports_where():
    s = run("sql_exact", GOLD.replace("Butler CC (KS)", "butler cc (ks)"))
    assert s.value == 0.0 and "character" in s.detail


def test_execution_and_logical_form_compare_values_case_insensitively_as_wikisql_does():
    lower = GOLD.replace("Butler CC (KS)", "butler cc (ks)")
    assert run("sql_execution", lower).value == 1.0
    assert run("sql_logical_form", lower).value == 1.0


def test_condition_order_and_equivalent_sql_forms():
    swapped = "SELECT COUNT Player FROM 1-10015132-11 WHERE No. > 20 AND Position = 'Guard'"
    for scorer in ("sql_execution", "sql_logical_form"):
        assert run(scorer, swapped, GOLD2).value == 1.0
    assert run("sql_exact", swapped, GOLD2).value == 0.0
    # Plain SQLite SQL that means the same runs as written and returns the same rows.
    plain = 'SELECT COUNT(*) FROM "1-10015132-11" WHERE "Position" = \'Guard\' AND "No." > 20'
    s = run("sql_execution", plain, GOLD2)
    assert s.value == 1.0 and "not WikiSQL notation" in s.extra["note"]
    assert run("sql_logical_form", plain, GOLD2).value == 0.0  # not parseable as WikiSQL


def test_execution_catches_near_misses_of_a_two_condition_query():
    wrong = [
        "SELECT COUNT Player FROM 1-10015132-11 WHERE Position = 'Guard'",  # dropped a condition
        "SELECT COUNT Player FROM 1-10015132-11 WHERE Position = 'Guard' AND No. >= 20",  # > vs >=
        "SELECT COUNT Player FROM 1-10015132-11 WHERE Position = 'Guard' AND No. > 21",  # literal
        "SELECT Player FROM 1-10015132-11 WHERE Position = 'Guard' AND No. > 20",  # aggregate
    ]
    for output in wrong:
        s = run("sql_execution", output, GOLD2)
        assert s.value == 0.0, (output, s.detail)
        assert s.detail.startswith("different result")


def test_min_max_differ_when_a_condition_is_dropped():
    gold = "SELECT MIN No. FROM 1-10015132-11 WHERE Position = 'Guard'"
    assert run("sql_execution", "SELECT MIN No. FROM 1-10015132-11", gold).value == 0.0
    gold = "SELECT MAX No. FROM 1-10015132-11 WHERE Position = 'Guard'"
    assert run("sql_execution", "SELECT MAX No. FROM 1-10015132-11", gold).value == 0.0


def test_logical_form_details_say_what_differs():
    s = run("sql_logical_form", "SELECT COUNT Player FROM 1-10015132-11 WHERE Position = 'Forward'", GOLD2)
    assert "missing condition Position = 'Guard' AND No. > 20" in s.detail
    assert "unexpected condition Position = 'Forward'" in s.detail
    s = run("sql_logical_form", "SELECT MAX Player FROM 1-10015132-11 WHERE Position = 'Guard' AND No. > 20", GOLD2)
    assert s.detail == "aggregate MAX, expected COUNT"
    s = run("sql_logical_form", "SELECT Nope FROM 1-10015132-11", GOLD2)
    assert s.value == 0.0 and "does not parse" in s.detail and "'Nope'" in s.detail



@pytest.mark.parametrize("output, parts", [
    (GOLD2, {"agg": 1.0, "select": 1.0, "where": 1.0}),
    ("SELECT MAX Player FROM 1-10015132-11 WHERE Position = 'Guard' AND No. > 20", {"agg": 0.0, "select": 1.0, "where": 1.0}),
    ("SELECT COUNT Position FROM 1-10015132-11 WHERE No. > 20 AND Position = 'guard'", {"agg": 1.0, "select": 0.0, "where": 1.0}),
    ("SELECT COUNT Player FROM 1-10015132-11 WHERE Position = 'Guard'", {"agg": 1.0, "select": 1.0, "where": 0.0}),
    ("SELECT COUNT Player FROM 1-10015132-11 WHERE Position = 'Guard' AND No. < 20", {"agg": 1.0, "select": 1.0, "where": 0.0}),
    ("SELECT Nope FROM 1-10015132-11", {"agg": 0.0, "select": 0.0, "where": 0.0}),  # does not parse
])
def test_logical_form_breaks_down_into_sqlnets_agg_select_where(output, parts):
    """SQLNet's Acc_agg / Acc_sel / Acc_where per item: which part of the query is wrong."""
    s = run("sql_logical_form", output, GOLD2)
    assert s.metrics == parts
    assert (s.value == 1.0) == all(parts.values())


def test_logical_form_breakdown_follows_the_options():
    swapped = "SELECT COUNT Player FROM 1-10015132-11 WHERE No. > 20 AND Position = 'Guard'"
    assert run("sql_logical_form", swapped, GOLD2, options={"ordered": True}).metrics["where"] == 0.0
    as_float = GOLD2.replace("> 20", "> '20.0'")
    assert run("sql_logical_form", as_float, GOLD2).metrics["where"] == 0.0
    assert run("sql_logical_form", as_float, GOLD2, options={"numbers_by_value": True}).metrics["where"] == 1.0


def test_logical_form_compares_values_as_strings_like_wikisql_numbers_only_as_an_option():
    # WikiSQL's lib/query.py compares str(value).lower(): '20.0' is not 20, '20' is.
    as_float = GOLD2.replace("> 20", "> '20.0'")
    s = run("sql_logical_form", as_float, GOLD2)
    assert s.value == 0.0 and "missing condition No. > 20" in s.detail
    assert run("sql_logical_form", GOLD2.replace("> 20", "> '20'"), GOLD2).value == 1.0
    assert run("sql_logical_form", as_float, GOLD2, options={"numbers_by_value": True}).value == 1.0


def test_logical_form_ordered_option():
    swapped = "SELECT COUNT Player FROM 1-10015132-11 WHERE No. > 20 AND Position = 'Guard'"
    assert run("sql_logical_form", swapped, GOLD2).value == 1.0
    s = run("sql_logical_form", swapped, GOLD2, options={"ordered": True})
    assert s.value == 0.0 and "order" in s.detail


def test_execution_compares_text_columns_as_text_and_real_columns_as_numbers():
    # No. is text in GOLD (quoted '3', compared with =): '3.0' is another string.
    gold = "SELECT Player FROM 1-10015132-11 WHERE No. = '3'"
    assert run("sql_execution", "SELECT Player FROM 1-10015132-11 WHERE No. = 3", gold).value == 1.0
    assert run("sql_execution", "SELECT Player FROM 1-10015132-11 WHERE No. = '3.0'", gold).value == 0.0
    assert run("sql_execution", "SELECT Player FROM 1-10015132-11 WHERE No. = '03'", gold).value == 0.0
    # No. is real in GOLD2 (No. > 20): '20.0' and 20 are the same number.
    assert run("sql_execution", GOLD2.replace("> 20", "> '20.0'"), GOLD2).value == 1.0


# --- the sandbox -------------------------------------------------------------------------------

HOSTILE = {
    "drop": 'DROP TABLE "1-10015132-11"',
    "delete": 'DELETE FROM "1-10015132-11"',
    "two statements": 'SELECT 1; DROP TABLE "1-10015132-11"',
    "attach": "ATTACH DATABASE 'file:evil?mode=memory' AS evil",
    "pragma": "PRAGMA query_only = OFF",
    "endless recursive CTE": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
}


def _table_contents(conn) -> list:
    return conn.execute('SELECT * FROM "1-10015132-11" ORDER BY rowid').fetchall()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_queries_fail_in_time_and_change_nothing(name):
    table = wikisql.table_from_prompt(PROMPT)
    gold = wikisql.parse(GOLD, table)
    conn = wikisql_database(table, gold, wikisql.table_columns(table, gold))
    before = _table_contents(conn)
    assert before
    start = time.monotonic()
    with pytest.raises(QueryFailed) as failed:
        run_query(conn, HOSTILE[name], timeout_s=TIMEOUT)
    assert time.monotonic() - start < TIMEOUT + 1.0
    assert _table_contents(conn) == before
    conn.set_authorizer(None)  # to look: nothing attached, still read-only
    assert [row[1] for row in conn.execute("PRAGMA database_list")] == ["main"]
    assert conn.execute("PRAGMA query_only").fetchone() == (1,)
    assert str(failed.value)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_predictions_score_0_with_the_reason(name):
    start = time.monotonic()
    s = run("sql_execution", HOSTILE[name], options={"timeout_s": TIMEOUT})
    assert time.monotonic() - start < TIMEOUT + 1.5
    assert (s.value, s.passed) == (0.0, False)
    assert s.detail.startswith("prediction failed: ")
    expected = {"two statements": "more than one statement", "endless recursive CTE": "timed out"}
    assert expected.get(name, "refused") in s.detail


def test_errors_and_empty_output_score_0():
    assert "empty query" in run("sql_execution", "").detail
    s = run("sql_execution", "SELEC Position FROM x")
    assert s.value == 0.0 and "syntax error" in s.detail


def test_bag_and_ordered_comparison():
    assert same_result([(1,), (2,), (2,)], [(2,), (1,), (2,)], ordered=False)
    assert not same_result([(1,), (2,), (2,)], [(1,), (2,)], ordered=False)  # duplicates count
    assert not same_result([(1,), (2,)], [(2,), (1,)], ordered=True)
    assert same_result([(1,)], [(1.0000000001,)], ordered=True)


# --- plain SQLite cases ------------------------------------------------------------------------

SETUP = "CREATE TABLE head (name TEXT, age INTEGER, born_state TEXT)"


def test_plain_sqlite_case_with_its_own_schema_seeded_from_gold_literals():
    gold = "SELECT name FROM head WHERE age > 56 AND born_state = 'California'"
    opts = {"schema_field": "context"}
    rec = {"context": SETUP}
    assert run("sql_execution", gold.lower().replace("california", "California"), gold, opts, record=rec).value == 1.0
    s = run("sql_execution", "SELECT name FROM head WHERE age > 56", gold, opts, record=rec)
    assert s.value == 0.0
    ordered = "SELECT name, age FROM head ORDER BY age"
    assert run("sql_execution", "SELECT name, age FROM head ORDER BY age DESC", ordered, opts,
               record=rec).value == 0.0


def test_plain_sqlite_case_uses_given_rows():
    rec = {"context": SETUP + "; INSERT INTO head VALUES ('a', 60, 'Ohio'), ('b', 40, 'Ohio')"}
    gold = "SELECT name FROM head WHERE age > 50"
    opts = {"schema_field": "context"}
    assert run("sql_execution", "SELECT name FROM head WHERE name = 'a'", gold, opts, record=rec).value == 1.0


def test_missing_schema_is_a_clear_error():
    with pytest.raises(HarnessError) as err:
        run("sql_execution", GOLD, options={"schema_field": "context"}, record={})
    assert err.value.field == "context" and err.value.line == 4
    with pytest.raises(HarnessError) as err:
        run("sql_execution", GOLD, prompt="Q: no table here")
    assert "table:" in err.value.message and err.value.field == "prompt"


def test_plain_sqlite_suite_without_the_schema_field_fails_at_load(tmp_path):
    from harness.suite import load_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text('name: s\nprompt: "{{ q }}"\ntarget: "{{ sql }}"\n'
                     'scorers:\n  - sql_execution: {schema_field: context}\n'
                     'cases:\n  - {q: a, sql: SELECT 1, context: "CREATE TABLE t (a)"}\n'
                     '  - {q: b, sql: SELECT 1}\n')
    with pytest.raises(HarnessError) as err:
        load_suite(suite)
    assert (err.value.line, err.value.field) == (8, "context")


_WIDE = ", ".join(f"Col{i}" for i in range(2500))


@pytest.mark.parametrize("prompt, gold", [
    (f"table: 1-1\ncolumns: {_WIDE}\nQ: q\nA: ", "SELECT Col1 FROM 1-1 WHERE Col2 = 3"),  # SQLite: 2,000 columns
    ("table: 1-1\ncolumns: A\x00B, C\nQ: q\nA: ", "SELECT C FROM 1-1 WHERE A\x00B = 3"),
    ("table: sqlite_master\ncolumns: A, C\nQ: q\nA: ", "SELECT C FROM sqlite_master WHERE A = 3"),
    ("table: 1-1\ncolumns: A, C\nQ: q\nA: ", "SELECT MAX C FROM 1-1 WHERE A > 1e999"),
], ids=["2500-columns", "nul-in-a-column", "sqlite-table-name", "bound-1e999"])
def test_a_case_whose_table_cannot_be_built_is_unscored_not_a_crash(prompt, gold):
    """The case's table is built from its prompt and seeded from its gold query: a table
    SQLite refuses (too many columns, a NUL in a name, a reserved name) or a bound with no
    seed value past it (1e999) raised out of the scorer, an internal error that ended the
    run (exit 3) after every item had generated. Now the item is unscored, naming the fix,
    as a gold query that does not parse is."""
    for output in (gold, "SELECT C FROM 1-1"):
        (score,) = REGISTRY["sql_execution"]({}).score_all([item(output, gold, prompt)])
        assert score.value is None and "the case's table cannot be built in SQLite" in score.detail
        assert "fix the case" in score.detail
