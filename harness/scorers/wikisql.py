"""WikiSQL's query notation: a column-aware parser and a translator to SQLite.

WikiSQL writes queries in its own notation, not SQL: column names are unquoted and may
hold spaces, slashes, parentheses and even ``, ``; aggregates take no parentheses;
values are quoted without escaping (``'St. John's'``)::

    SELECT COUNT Fleet Series (Quantity) FROM 1-10007452-3 WHERE Fuel Propulsion = 'CNG' AND Pick < 243.0

No tokenizer can split that without knowing the columns, so the parser takes the
table's column list (the ``columns:`` line of the prompt) and matches column names
longest first, backtracking where a value's closing quote is ambiguous. It also accepts
the usual variations of a model's answer: any keyword case, ``COUNT(col)``, quoted
identifiers, ``''``-escaped quotes, and ``;``s (and whitespace) at the end.

``sql_logical_form`` compares two parses; ``sql_execution`` translates them to
parameterised SQLite over a table it builds from the same column list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from .normalize import fold

AGGREGATES = ("COUNT", "MAX", "MIN", "SUM", "AVG")
_OPS = (">=", "<=", "!=", "<>", "==", "=", ">", "<")
_CANONICAL_OP = {"==": "=", "<>": "!="}
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WS = re.compile(r"\s+")
_IDENT_QUOTES = {'"': '"', "`": "`", "[": "]"}
# How many ``, ``-separated fragments of the columns line one column name may span
# ("Age (years, days)" spans two); the data has none longer than three.
MAX_FRAGMENTS = 3


class ParseError(ValueError):
    """The text is not a query in WikiSQL notation over this table."""


@dataclass(frozen=True)
class Table:
    """A WikiSQL table as its prompt gives it: an id and the raw ``columns:`` line."""

    id: str
    fragments: tuple[str, ...]  # the columns line split at ", " (a name may span several)

    def candidates(self) -> list[tuple[str, tuple[int, int]]]:
        """(name, fragment range) of every possible column, longest name first.

        A name that occurs twice (in any case) belongs to its first range.
        """
        seen: dict[str, tuple[int, int]] = {}
        for start in range(len(self.fragments)):
            for end in range(start + 1, min(start + MAX_FRAGMENTS, len(self.fragments)) + 1):
                name = ", ".join(self.fragments[start:end])
                seen.setdefault(fold(name), (start, end))
        out = [(", ".join(self.fragments[a:b]), (a, b)) for (a, b) in seen.values()]
        return sorted(out, key=lambda c: (-len(c[0]), c[1]))

    def name(self, span: tuple[int, int]) -> str:
        return ", ".join(self.fragments[span[0]:span[1]])


def table_from_prompt(text: str) -> Table | None:
    """The table of a WikiSQL prompt (``table: <id>`` and ``columns: a, b`` lines), or None."""
    table_id = columns = None
    for line in text.splitlines():
        if line.startswith("table:") and table_id is None:
            table_id = line[len("table:"):].strip()
        elif line.startswith("columns:") and columns is None:
            columns = line[len("columns:"):].strip()
    if not table_id or not columns:
        return None
    return Table(id=table_id, fragments=tuple(f.strip() for f in columns.split(", ")))


@dataclass(frozen=True)
class Condition:
    column: tuple[int, int]  # fragment range
    op: str  # one of = != > < >= <=
    text: str  # the value as written, unquoted
    quoted: bool

    @property
    def value(self) -> float | str:
        """The value to compare: a number where the text is one, else the text."""
        return as_number(self.text)

    def key(self, numbers_by_value: bool = False) -> tuple:
        """Identity for the logical form.

        By default WikiSQL's own (``lib/query.py``, ``Query.__eq__``): the value's text,
        lower-cased (``str(value).lower()``), so ``'2.0'`` is not ``'2'``. With
        ``numbers_by_value``, a value that is a number compares as a number (``2`` =
        ``'2'`` = ``2.0``) and text is NFKC-casefolded.
        """
        if not numbers_by_value:
            return (self.column, self.op, self.text.lower())
        v = self.value
        return (self.column, self.op, ("num", v) if isinstance(v, float) else ("str", fold(v)))


@dataclass(frozen=True)
class Query:
    agg: str  # "" or one of AGGREGATES
    column: tuple[int, int]
    table: str
    conditions: tuple[Condition, ...]

    def logical_form(self, numbers_by_value: bool = False) -> tuple:
        return (self.agg, self.column, frozenset(c.key(numbers_by_value) for c in self.conditions))


def as_number(text: str) -> float | str:
    stripped = text.strip()
    if _NUMBER.fullmatch(stripped):
        return float(stripped)
    return text


# --- parser ------------------------------------------------------------------------------------

_AND = re.compile(r"(?<!\s)\s+AND\s+", re.IGNORECASE)  # from a run's first space only
# What a bare value never holds: a statement's end (``;`` and more text: a second
# statement), a comment, a comparison, or SQL that changes the query (another condition
# joined by AND or OR, LIMIT, ORDER BY, GROUP BY, HAVING, UNION, another SELECT: a model
# looping on one line). WikiSQL's own bare values are numbers.
_NOT_IN_BARE_VALUE = re.compile(
    r";|--|/\*|[=<>]|!=|\b(?:SELECT|FROM|WHERE|AND|OR|LIMIT|HAVING|UNION|INTERSECT|EXCEPT)\b"
    r"|\b(?:ORDER|GROUP)\s+BY\b", re.IGNORECASE)


def statement_end(text: str) -> int:
    """Where ``text`` ends but for a tail of whitespace and ``;``s, in any mix (``12 ; ;``).

    One definition for the parser's end and a bare value's end: a bare value that kept
    the first of two ``;`` (``12;``) was text to the logical form but the number 12 to
    the executor on a real column, so the two scorers disagreed on ``Goals = 12;;``.
    A backward scan, linear on a hostile tail of 100,000 ``; ``.
    """
    i = len(text)
    while i and (text[i - 1] == ";" or text[i - 1].isspace()):
        i -= 1
    return i


def bare_value_ends(rest: str) -> Iterator[int]:
    """Where a bare value at the start of ``rest`` may end: before each ``<space>AND<space>``,
    then where only whitespace and ``;``s are left (``statement_end``), then the very end.

    The positions where the parser's regex (an AND between spaces, or whitespace and
    ``;``s to the end; ``tests/test_scorers_wikisql.py`` keeps it) starts its matches,
    found in linear time: that regex retried both branches at every space of a run (12 s
    on an output with 2,000 spaces, hours on 100,000). Lazily: the parser takes the first
    end that works, so on a looping ``a = 1 AND a = 1 AND ...`` each condition reads up to
    the next AND only, not every AND to the end (a list cost 4 s on 7,000 conditions).
    """
    tail = statement_end(rest)
    pos = 0
    for m in _AND.finditer(rest):
        if m.start() >= tail:
            break
        yield m.start()
        pos = m.end()
    start = max(pos, tail)
    yield start
    if start < len(rest):
        yield len(rest)  # finditer's empty match at the end, after the tail


class _Parser:
    """Backtracking recursive descent; each rule yields (result, next position)."""

    def __init__(self, text: str, table: Table):
        self.s = text
        self.folded = text.casefold()
        self.table = table
        self.cands = [(fold(name), name, span) for name, span in table.candidates()]
        self._memo: dict[int, tuple[Condition, ...] | None] = {}
        # end(i) is i >= this: what follows is only whitespace and ;s (read once, not per try)
        self._end_from = statement_end(text)

    def ws(self, i: int, required: bool = True) -> Iterator[int]:
        m = _WS.match(self.s, i)
        if m:
            yield m.end()
        elif not required:
            yield i

    def keyword(self, i: int, word: str) -> Iterator[int]:
        end = i + len(word)
        if self.s[i:end].upper() == word and (end == len(self.s) or not self.s[end].isalnum()):
            yield end

    def column(self, i: int) -> Iterator[tuple[tuple[int, int], int]]:
        opener = self.s[i:i + 1]
        if opener in _IDENT_QUOTES:
            closer = _IDENT_QUOTES[opener]
            for span, j in self._bare_column(i + 1):
                if self.s[j:j + 1] == closer:
                    yield span, j + 1
        yield from self._bare_column(i)

    def _bare_column(self, i: int) -> Iterator[tuple[tuple[int, int], int]]:
        for folded_name, name, span in self.cands:
            end = i + len(name)
            if fold(self.s[i:end]) == folded_name:
                yield span, end

    def select(self, i: int) -> Iterator[tuple[tuple[str, tuple[int, int]], int]]:
        for agg in AGGREGATES:
            for j in self.keyword(i, agg):
                for k in self.ws(j, required=False):
                    if self.s[k:k + 1] == "(":
                        for k2 in self.ws(k + 1, required=False):
                            for span, m in self.column(k2):
                                for m2 in self.ws(m, required=False):
                                    if self.s[m2:m2 + 1] == ")":
                                        yield (agg, span), m2 + 1
                    if k > j:
                        for span, m in self.column(k):
                            yield (agg, span), m
        for span, m in self.column(i):
            yield ("", span), m

    def table_name(self, i: int) -> Iterator[tuple[str, int]]:
        opener = self.s[i:i + 1]
        if opener in _IDENT_QUOTES:
            end = self.s.find(_IDENT_QUOTES[opener], i + 1)
            if end > i:
                yield self.s[i + 1:end], end + 1
            return
        if self.folded.startswith(self.table.id.casefold(), i):
            yield self.s[i:i + len(self.table.id)], i + len(self.table.id)
            return
        m = re.compile(r"[^\s;]+").match(self.s, i)
        if m:
            yield m.group(), m.end()

    def op(self, i: int) -> Iterator[tuple[str, int]]:
        for op in _OPS:
            if self.s.startswith(op, i):
                yield _CANONICAL_OP.get(op, op), i + len(op)
                return

    def value(self, i: int) -> Iterator[tuple[tuple[int, int, str], int]]:
        """(start, stop, quote) of each value that may begin at ``i``, and where it ends.

        Positions only: the text is built for the condition that is kept (``make``). A
        quoted value may end at any later quote, so building each one's text cost 10 s on
        99,000 quotes; a quote not followed by the end or `` AND `` is skipped too.
        """
        quote = self.s[i:i + 1]
        if quote in ("'", '"'):
            k = self.s.find(quote, i + 1)
            while k != -1:
                if self.end(k + 1) or next(self.and_after(k + 1), None) is not None:
                    yield (i + 1, k, quote), k + 1
                # '' is an escaped quote (or an empty value): the next try is after it
                k = self.s.find(quote, k + 2 if self.s[k + 1:k + 2] == quote else k + 1)
            return
        # A bare value (a number, or an unquoted word) runs to an AND or to the end, but
        # never over what _NOT_IN_BARE_VALUE names: `6; DROP TABLE x`, `6 OR 1 = 1`,
        # `6 LIMIT 1` or `2007 SELECT ... WHERE Year = 2007` were read as one value, and on
        # a real column its first number (WikiSQL's executor) made each a right answer.
        rest = self.s[i:]
        stop = _NOT_IN_BARE_VALUE.search(rest)
        for end in bare_value_ends(rest):
            if end and (stop is None or end <= stop.start() or not rest[stop.start():end].strip(" \t\n\r;")):
                yield (i, i + end, ""), i + end

    def and_after(self, j: int) -> Iterator[int]:
        """Where the next condition starts when ``j`` is followed by `` AND ``."""
        return (k2 for j2 in self.ws(j) for k in self.keyword(j2, "AND") for k2 in self.ws(k))

    def make(self, span: tuple[int, int], op: str, value: tuple[int, int, str]) -> Condition:
        start, stop, quote = value
        text = self.s[start:stop]
        return Condition(span, op, text.replace(quote * 2, quote) if quote else text, bool(quote))

    def condition(self, i: int) -> Iterator[tuple[tuple, int]]:
        for span, j in self.column(i):
            for j2 in self.ws(j, required=False):
                for op, k in self.op(j2):
                    for k2 in self.ws(k, required=False):
                        for value, m in self.value(k2):
                            yield (span, op, value), m

    def conditions_to_end(self, i: int) -> tuple[Condition, ...] | None:
        """The first ``cond AND cond ...`` from ``i`` that runs to the end of the text.

        Memoised by position: a looping model's ``a = 'x' AND a = 'x' AND ...`` offers a
        closing quote at every later quote, and plain backtracking goes exponential.
        """
        if i in self._memo:
            return self._memo[i]
        self._memo[i] = None
        for parts, j in self.condition(i):
            if self.end(j):
                self._memo[i] = (self.make(*parts),)
                break
            rest = next((self.conditions_to_end(k2) for k2 in self.and_after(j)), None)
            if rest:
                self._memo[i] = (self.make(*parts),) + rest
                break
        return self._memo[i]

    def end(self, i: int) -> bool:
        """Whether only whitespace and ``;`` follow ``i`` (``_end_from``)."""
        return i >= self._end_from

    def query(self) -> Query:
        start = len(self.s) - len(self.s.lstrip())
        for i in self.keyword(start, "SELECT"):
            for i2 in self.ws(i):
                for (agg, span), j in self.select(i2):
                    for j2 in self.ws(j):
                        for k in self.keyword(j2, "FROM"):
                            for k2 in self.ws(k):
                                for table, m in self.table_name(k2):
                                    if self.end(m):
                                        return Query(agg, span, table, ())
                                    for m2 in self.ws(m):
                                        for w in self.keyword(m2, "WHERE"):
                                            for w2 in self.ws(w):
                                                conds = self.conditions_to_end(w2)
                                                if conds:
                                                    return Query(agg, span, table, conds)
        raise ParseError(_diagnose(self.s, self.table))


def _diagnose(text: str, table: Table) -> str:
    """Why a query does not parse, for the score's detail.

    Read with every run of whitespace as one space: the regex below, on a run of 2,000
    spaces, took 14 s (its lazy column name retried the spaces before FROM at each one).
    """
    text = _WS.sub(" ", text)
    m = re.match(r"\s*SELECT\s+(?:(?:COUNT|MAX|MIN|SUM|AVG)\b\s*\(?\s*)?(.*?)\s*\)?\s+FROM\s",
                 text, re.IGNORECASE | re.S)
    if not re.match(r"\s*SELECT\b", text, re.IGNORECASE):
        return "does not start with SELECT"
    if not m:
        return "no `SELECT <column> FROM <table>` in it"
    if fold(m.group(1).strip('"`[]')) not in {fold(_WS.sub(" ", n)) for n, _ in table.candidates()}:
        return f"selects {m.group(1)!r}, which is not a column of table {table.id}"
    return "its WHERE clause is not `<column> <op> <value> [AND ...]` over the table's columns"


def parse(text: str, table: Table) -> Query:
    """Parse a query in WikiSQL notation (or close to it) against the table's columns.

    The parser recurses once per condition: a chain of hundreds (a looping model; WikiSQL
    has at most 4) runs out of Python's stack, and says so rather than "nested too deeply".
    """
    try:
        return _Parser(text, table).query()
    except RecursionError:
        raise ParseError("too many conditions to follow (a WikiSQL query has at most 4)") from None


# --- translation to SQLite -----------------------------------------------------------------------

def case_table_and_gold(case, hint: str) -> tuple[Table, Query]:
    """The table named by a case's prompt and its parsed gold query.

    A prompt without WikiSQL `table:`/`columns:` lines is bad suite input (HarnessError
    naming the case); a gold query that does not parse raises ParseError for the scorer to
    report on that item.
    """
    from ..errors import HarnessError

    table = table_from_prompt(case.prompt)
    if table is None:
        raise HarnessError(f"case {case.id!r}: the prompt has no WikiSQL `table:` and `columns:` lines",
                           line=case.source_line, field="prompt", hint=hint)
    return table, parse(case.target, table)


def gold_problems(cases) -> list:
    """A HarnessError (file, line, field, the fix) for each case whose gold
    ``case_table_and_gold`` cannot read: no table in the prompt, or a gold query that does
    not parse. Its scorers score such an item None on every run (``Scorer.gold_problems``).
    Cases without a target are left out (the scorers say so on each item)."""
    from ..errors import HarnessError

    out = []
    for case in cases:
        if case.target is None:
            continue
        try:
            case_table_and_gold(case, hint="")
        except HarnessError as exc:
            out.append(HarnessError(exc.message, path=case.source, line=case.source_line, field="prompt",
                                    hint="give the prompt its WikiSQL `table:` and `columns:` lines"))
        except ParseError as exc:
            gold = case.target if len(case.target) <= 200 else case.target[:200] + "..."
            out.append(HarnessError(f"case {case.id!r}: the gold query {gold!r} does not parse: {exc}",
                                    path=case.source, line=case.source_line, field="target",
                                    hint="fix the target"))
    return out


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_columns(table: Table, gold: Query) -> list[tuple[tuple[int, int], str]]:
    """The table's real columns, in order: (fragment range, unique name).

    Fragments are joined where a parenthesis spans the ``, `` ("Age (years, days)") and
    where the gold query names a joined range ("Extroverted, Task-Oriented"). Names are
    made unique case-insensitively (SQLite identifiers ignore case); a later duplicate
    gets a ``#2`` suffix, as the first is the one every query means.
    """
    joined = {span[0]: span for span in [gold.column] + [c.column for c in gold.conditions]
              if span[1] - span[0] > 1}
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(table.fragments):
        span = joined.get(i) or _paren_unit(table.fragments, i)
        spans.append(span)
        i = span[1]
    used: set[str] = set()
    out = []
    for span in spans:
        name = table.name(span) or "column"
        base, n = name, 2
        while fold(name) in used:
            name, n = f"{base} #{n}", n + 1
        used.add(fold(name))
        out.append((span, name))
    return out


def _paren_unit(fragments: tuple[str, ...], i: int) -> tuple[int, int]:
    """The fragments from ``i`` that close the parentheses opened in fragment ``i``."""
    depth, j = 0, i
    while j < len(fragments) and j < i + MAX_FRAGMENTS:
        depth += fragments[j].count("(") - fragments[j].count(")")
        j += 1
        if depth <= 0:
            return (i, j)
    return (i, i + 1)


class TranslateError(ValueError):
    """A parsed query names a column the built table does not have."""


def numeric_columns(gold: Query) -> set[tuple[int, int]]:
    """The columns the gold query treats as numbers (WikiSQL's ``real`` columns).

    WikiSQL's tables type each column ``text`` or ``real``; a prompt gives only the
    names, so the type is read off the gold query: a column is real when the gold compares
    it with ``<``/``>`` (or ``<=``/``>=``), gives it an unquoted number, or takes its
    MAX/MIN/SUM/AVG. Every other column is text.
    """
    numeric = {c.column for c in gold.conditions
               if c.op in (">", "<", ">=", "<=") or (not c.quoted and isinstance(c.value, float))}
    if gold.agg in ("MAX", "MIN", "SUM", "AVG"):
        numeric.add(gold.column)
    return numeric


def to_sqlite(query: Query, table: Table, columns: dict[tuple[int, int], str],
              numeric: set[tuple[int, int]] = frozenset()) -> tuple[str, list]:
    """Parameterised SQLite for a parsed query, over the case's table.

    As in WikiSQL's own evaluation, the table is given by the case, not predicted: the
    query's FROM name is not used. A condition on a ``numeric`` column compares through
    ``wn`` (the value as a number, as WikiSQL's ``lib/dbengine.py`` converts values for
    ``real`` columns); on any other column through ``wt`` (text, case-insensitive, never
    turned into a number: ``'2.0'`` is not ``'2'`` in a text column).
    """
    def col(span: tuple[int, int]) -> str:
        if span not in columns:
            raise TranslateError(f"{table.name(span)!r} is not a column of table {table.id}")
        return quote_ident(columns[span])

    select = col(query.column)
    if query.agg:
        select = f"{query.agg}({select})"
    sql = f"SELECT {select} FROM {quote_ident(table.id)}"
    params: list = []
    if query.conditions:
        parts = []
        for c in query.conditions:
            fn = "wn" if c.column in numeric else "wt"
            parts.append(f"{fn}({col(c.column)}) {c.op} {fn}(?)")
            params.append(c.text)
        sql += " WHERE " + " AND ".join(parts)
    return sql, params


_FIRST_NUMBER = re.compile(r"[-+]?\d*\.\d+|\d+")  # WikiSQL's num_re (lib/dbengine.py)


def as_real(value):
    """A value compared in a ``real`` column: a float, or None when it holds no number.

    Like WikiSQL's executor: numbers stay numbers; text is read as a number (thousands
    separators allowed, as babel's ``parse_decimal`` reads ``1,200``), else its first
    number is taken (``'12 km'`` -> 12.0).
    """
    if value is None or isinstance(value, bytes):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    number = as_number(text.replace(",", "")) if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?", text) \
        else as_number(text)
    if isinstance(number, float):
        return number
    m = _FIRST_NUMBER.search(text)
    return float(m.group()) if m else None


def as_text(value):
    """A value compared in a ``text`` column: its text, case-folded; never a number."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a number stored in a text column reads as WikiSQL writes it
    return fold(str(value))
