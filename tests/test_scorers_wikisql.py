"""The WikiSQL parser and translator on every row of the project's WikiSQL sample
(100 valid + 999 train): each gold query parses, executes, and matches itself under
sql_execution and sql_logical_form; and its near misses (another aggregate, literal,
column, or a dropped condition) do not."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.scorers import REGISTRY, Item
from harness.scorers import wikisql
from harness.case import Case
from timing import within

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "wikisql"


def _rows() -> list[tuple[str, str]]:
    rows = []
    for name in ("valid.jsonl", "train.jsonl"):
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            prompt, gold = json.loads(line)["text"].split("\nA: ")
            rows.append((prompt + "\nA: ", gold))
    return rows


ROWS = _rows()


def _item(prompt: str, gold: str, output: str) -> Item:
    return Item(case=Case(id="w", index=0, category=None, record={}, prompt=prompt, target=gold),
                output=output, finish_reason="stop")


def test_the_sample_is_all_there():
    assert len(ROWS) == 1099


def test_every_gold_query_parses_executes_and_matches_itself():
    execution, logical = REGISTRY["sql_execution"]({}), REGISTRY["sql_logical_form"]({})
    failures = []
    for prompt, gold in ROWS:
        table = wikisql.table_from_prompt(prompt)
        query = wikisql.parse(gold, table)  # raises on any row that does not parse
        assert query.table == table.id
        s = execution.score(_item(prompt, gold, gold))
        if s.value != 1.0 or "weak" in s.detail or "note" in s.extra:
            failures.append((gold, s.detail))
        if logical.score(_item(prompt, gold, gold)).value != 1.0:
            failures.append((gold, "logical form differs from itself"))
    assert failures == []


def _render(q: wikisql.Query, t: wikisql.Table) -> str:
    sql = f"SELECT {q.agg + ' ' if q.agg else ''}{t.name(q.column)} FROM {q.table}"
    if q.conditions:
        sql += " WHERE " + " AND ".join(
            f"{t.name(c.column)} {c.op} " + (f"'{c.text}'" if c.quoted else c.text) for c in q.conditions)
    return sql


def test_near_misses_of_every_gold_query_score_0():
    rng = random.Random(0)
    execution, logical = REGISTRY["sql_execution"]({}), REGISTRY["sql_logical_form"]({})
    other_agg = {"": "COUNT", "COUNT": "", "MAX": "MIN", "MIN": "MAX", "SUM": "AVG", "AVG": "SUM"}
    wrongly_equal = []
    count_ties = 0
    for prompt, gold in ROWS:
        t = wikisql.table_from_prompt(prompt)
        q = wikisql.parse(gold, t)
        singles = [span for _, span in t.candidates() if span[1] - span[0] == 1]
        mutants = {"aggregate": wikisql.Query(other_agg[q.agg], q.column, q.table, q.conditions)}
        others = [s for s in singles if s != q.column and t.name(s) != t.name(q.column)]
        if others:
            mutants["select column"] = wikisql.Query(q.agg, rng.choice(others), q.table, q.conditions)
        if q.conditions:
            c, rest = q.conditions[0], q.conditions[1:]
            mutants["literal"] = wikisql.Query(q.agg, q.column, q.table,
                                               (wikisql.Condition(c.column, c.op, "9" + c.text, c.quoted),) + rest)
            mutants["dropped condition"] = wikisql.Query(q.agg, q.column, q.table, rest)
            cond_cols = [s for s in singles if s != c.column and t.name(s) != t.name(c.column)]
            mutants["condition column"] = wikisql.Query(
                q.agg, q.column, q.table, (wikisql.Condition(rng.choice(cond_cols), c.op, c.text, c.quoted),) + rest)
        for kind, mutant in mutants.items():
            out = _render(mutant, t)
            assert logical.score(_item(prompt, gold, out)).value == 0.0, (kind, gold, out)
            if execution.score(_item(prompt, gold, out)).value != 0.0:
                # COUNT of another column that is never NULL in the matching rows returns the
                # same number: execution accuracy cannot tell these apart; logical form does.
                if kind == "select column" and q.agg == "COUNT":
                    count_ties += 1
                else:
                    wrongly_equal.append((kind, gold, out))
    assert wrongly_equal == []
    assert count_ties < 60


def test_column_names_with_commas_parentheses_and_duplicates():
    t = wikisql.Table("1-1", ("Name", "Age (years", "days)", "Power", "continuous", "Power", "takeoff",
                              "Extroverted", "Task-Oriented"))
    q = wikisql.parse("SELECT MAX Age (years, days) FROM 1-1 WHERE Power, takeoff = '1,200 hp' "
                      "AND Extroverted, Task-Oriented = 'x'", t)
    assert q.agg == "MAX" and t.name(q.column) == "Age (years, days)"
    assert [(t.name(c.column), c.text) for c in q.conditions] == [("Power, takeoff", "1,200 hp"),
                                                                  ("Extroverted, Task-Oriented", "x")]
    # Parentheses join fragments by themselves; other joins come from the gold query.
    names = [name for _, name in wikisql.table_columns(t, q)]
    assert names == ["Name", "Age (years, days)", "Power", "continuous", "Power, takeoff",
                     "Extroverted, Task-Oriented"]
    plain = wikisql.parse("SELECT Name FROM 1-1", t)
    assert [name for _, name in wikisql.table_columns(t, plain)] == [
        "Name", "Age (years, days)", "Power", "continuous", "Power #2", "takeoff", "Extroverted",
        "Task-Oriented"]


def test_model_style_variants_parse_to_the_same_logical_form():
    t = wikisql.Table("1-10007452-3", ("Order Year", "Fleet Series (Quantity)", "Fuel Propulsion", "Pick"))
    gold = wikisql.parse("SELECT COUNT Fleet Series (Quantity) FROM 1-10007452-3 "
                         "WHERE Fuel Propulsion = 'CNG' AND Pick < 243.0", t)
    for variant in [
        "select count(Fleet Series (Quantity)) from 1-10007452-3 where fuel propulsion = 'cng' and pick < 243",
        'SELECT COUNT("Fleet Series (Quantity)") FROM "1-10007452-3" WHERE "Pick" < 243.0 AND "Fuel Propulsion" = \'CNG\';',
        "SELECT COUNT [Fleet Series (Quantity)] FROM 1-10007452-3 WHERE Fuel Propulsion = \"CNG\" AND Pick < '243'",
    ]:
        parsed = wikisql.parse(variant, t)
        assert parsed.logical_form(numbers_by_value=True) == gold.logical_form(numbers_by_value=True), variant
        # WikiSQL's own comparison is on the value's text: 243 and '243' are not 243.0.
        assert (parsed.logical_form() == gold.logical_form()) == ("243.0" in variant), variant


@pytest.mark.parametrize("text", ["", "SELECT", "SELECT Nope FROM 1-1", "DROP TABLE x",
                                  "SELECT Pick FROM 1-1 WHERE", "SELECT Pick FROM 1-1 WHERE Pick ~ 3"])
def test_unparseable_queries_raise_parse_error(text):
    t = wikisql.Table("1-1", ("Pick", "Name"))
    with pytest.raises(wikisql.ParseError):
        wikisql.parse(text, t)


def test_values_with_unescaped_quotes_and_and():
    t = wikisql.Table("1-1", ("Player", "Title"))
    q = wikisql.parse("SELECT Player FROM 1-1 WHERE Title = 'Rock AND Roll' AND Player = 'O'Bryant'", t)
    assert [c.text for c in q.conditions] == ["Rock AND Roll", "O'Bryant"]
    q = wikisql.parse("SELECT Player FROM 1-1 WHERE Player = 'O''Bryant'", t)
    assert q.conditions[0].text == "O'Bryant"


def test_a_looping_prediction_parses_in_linear_time():
    import time

    t = wikisql.Table("1-1", ("Player", "No."))
    loop = "SELECT Player FROM 1-1 WHERE " + " AND ".join(["Player = 'a'"] * 200)
    start = time.monotonic()
    assert len(wikisql.parse(loop, t).conditions) == 200
    with pytest.raises(wikisql.ParseError):
        wikisql.parse(loop + " AND Player = 'a", t)  # cut off by max_tokens
    # A hang guard, not a speed target: plain backtracking took seconds at 18 conditions
    # and doubles per condition, so 200 would never finish; linear parsing takes
    # milliseconds (2 s seen on a fully loaded 2-core machine).
    assert time.monotonic() - start < 30.0


def _bare_value_ends_by_regex(rest: str) -> list[int]:
    """Where a bare value could end, as the parser's regex found them (cubic on long runs
    of whitespace), kept as the reference for ``bare_value_ends``."""
    import re

    return [m.start() for m in re.finditer(r"\s+AND\s+|[\s;]*$", rest, re.IGNORECASE)]


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from([" ", "\t", "\n", "\u2003", "\x1c", ";", "AND", "and",
                                             "x", "3", "'"]), max_size=16).map("".join))
def test_bare_value_ends_are_the_regex_definition(rest):
    assert list(wikisql.bare_value_ends(rest)) == _bare_value_ends_by_regex(rest)


@pytest.mark.parametrize("output", [
    "SELECT Player FROM 1-1 WHERE No. = 3" + " " * 99_000 + "x",  # a bare value: 12 s at 2,000 spaces
    "SELECT Player" + " " * 99_000 + "x",  # the diagnosis of why it does not parse: 14 s at 2,000
    "SELECT Player" + " " * 49_000 + ")" + " " * 49_000,
    # every quote a possible end of the value: 10.7 s at 99,000 quotes (each tried copied the
    # value and re-read the rest of the text for the end)
    "SELECT Player FROM 1-1 WHERE No. = '" + "'" * 99_000,
    "SELECT Player FROM 1-1 WHERE No. = '" + "' " * 49_000,
    "SELECT Player FROM 1-1 WHERE No. = '" + "' AND " * 14_000,
    # a tail of ;s and spaces, where the value and the statement end (and one that goes on)
    "SELECT Player FROM 1-1 WHERE No. = 3" + " ;" * 49_000,
    "SELECT Player FROM 1-1 WHERE No. = 3" + "; " * 49_000 + "x",
])
def test_hostile_outputs_parse_in_linear_time(output):
    """Stored outputs of 100,000 characters that the parser took seconds to hours on."""

    t = wikisql.Table("1-1", ("Player", "No."))
    def parse() -> None:
        try:
            wikisql.parse(output, t)
        except wikisql.ParseError:
            pass

    within(2.0, parse)


def test_a_looping_chain_reads_each_and_once(monkeypatch):
    """Each bare value listed every ` AND ` to the end of the text before the parser took
    the first: 7,000 looping conditions (98,000 characters, under the output cap) read
    3.3 million AND matches and took 4 s to fail. Now each condition reads up to its own
    AND (491 matches); the count of matches read is the measure (no clock)."""
    reads = []

    class CountingAnd:
        def __init__(self, pattern):
            self.pattern = pattern

        def finditer(self, text):
            for m in self.pattern.finditer(text):
                reads.append(m)
                yield m

    monkeypatch.setattr(wikisql, "_AND", CountingAnd(wikisql._AND))
    loop = "SELECT Team FROM 2-1000-1 WHERE " + "Goals = 1 AND " * 7000 + "Goals = 1"
    with pytest.raises(wikisql.ParseError, match="conditions"):
        wikisql.parse(loop, _TEAMS)
    assert 0 < len(reads) < 10 * 7000, len(reads)


def test_thousands_of_conditions_fail_with_their_reason():
    """2,000 conditions ran out of Python's recursion: 'not scored: the output is nested too
    deeply to check', for a query that nests nothing."""
    t = wikisql.Table("1-1", ("Player", "No."))
    with pytest.raises(wikisql.ParseError, match="conditions"):
        wikisql.parse("SELECT Player FROM 1-1 WHERE " + " AND ".join(["No. = 3"] * 2000), t)
    score = REGISTRY["sql_logical_form"]({}).score_all([_item(
        "table: 1-1\ncolumns: Player, No.\nQ: q\nA: ", "SELECT Player FROM 1-1 WHERE No. = 3",
        "SELECT Player FROM 1-1 WHERE " + " AND ".join(["No. = 3"] * 2000))])[0]
    assert score.value == 0.0 and "conditions" in score.detail, score.detail


_TEAMS = wikisql.Table(id="2-1000-1", fragments=("Season", "Team", "Games", "Goals", "Coach"))


@pytest.mark.parametrize("tail", ["; DROP TABLE x", " OR Goals = 13", " LIMIT 1", " ORDER BY Goals",
                                  " -- the answer", " /* x */", " SELECT Team FROM 2-1000-1 WHERE Goals = 12",
                                  " AND 1 = 1", " GROUP BY Team"])
def test_a_bare_value_never_swallows_sql(tail):
    """`Goals = 12; DROP TABLE x` parsed as Goals = '12; DROP TABLE x', and on a real column
    the executor's first number made it right: a second statement, an OR, a LIMIT or the
    query looping on one line passed sql_execution."""
    with pytest.raises(wikisql.ParseError):
        wikisql.parse("SELECT Team FROM 2-1000-1 WHERE Goals = 12" + tail, _TEAMS)


@pytest.mark.parametrize("text, value", [
    ("SELECT Team FROM 2-1000-1 WHERE Goals = 12;", "12"),
    ("SELECT Team FROM 2-1000-1 WHERE Goals = 12 ;  ", "12"),
    ("SELECT Coach FROM 2-1000-1 WHERE Team = Green Bay Packers", "Green Bay Packers"),
    ("SELECT Coach FROM 2-1000-1 WHERE Team = Toronto Raptors AND Goals = 12", "Toronto Raptors"),
    ("SELECT Coach FROM 2-1000-1 WHERE Team = 'Fromage; OR -- x' AND Goals = 12", "Fromage; OR -- x"),
])
def test_bare_and_quoted_values_still_parse(text, value):
    assert wikisql.parse(text, _TEAMS).conditions[0].text == value


@pytest.mark.parametrize("value", ["12;;", "12 ;", "'12';;", "12 ; ;", "12;\n ;\t", "12;;;;"])
def test_every_trailing_semicolon_ends_the_value(value):
    """`Goals = 12;;` read as '12;' (only one `;` was dropped): text to the logical form,
    but the number 12 to the executor on a real column, so the scorers disagreed."""
    assert wikisql.parse("SELECT Team FROM 2-1000-1 WHERE Goals = " + value, _TEAMS).conditions[0].text == "12"


_TEAMS_PROMPT = "table: 2-1000-1\ncolumns: Season, Team, Games, Goals, Coach\nQ: how many goals?\nA: "


@pytest.mark.parametrize("value", ["12;;", "12 ;", "'12';;", "12 ; ;"])
@pytest.mark.parametrize("select", ["Team", "MAX Goals"])  # Goals a text column, then a real one
def test_both_scorers_agree_on_trailing_semicolons(select, value):
    """Gold or prediction ending in `;`s: both scorers give each the gold's answer, as for
    the same query written without them (before, gold `MAX Goals ... = 12;;` against a
    prediction `= 12` was right for sql_execution and wrong for sql_logical_form)."""
    plain = f"SELECT {select} FROM 2-1000-1 WHERE Goals = 12"
    with_tail = f"SELECT {select} FROM 2-1000-1 WHERE Goals = {value}"
    for gold, output in [(with_tail, plain), (plain, with_tail), (with_tail, with_tail)]:
        item = _item(_TEAMS_PROMPT, gold, output)
        values = {name: REGISTRY[name]({}).score(item).value for name in ("sql_logical_form", "sql_execution")}
        assert values == {"sql_logical_form": 1.0, "sql_execution": 1.0}, (gold, output)
