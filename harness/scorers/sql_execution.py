"""Execution accuracy: does the predicted query return what the gold query returns?

Both run on a small in-memory SQLite table built for the case. A table with only the
rows that answer the question cannot tell a right query from many wrong ones, so the
rows are chosen to separate them: rows that meet every gold condition (two of them
alike, to catch a lost duplicate or a wrong COUNT), one row per condition that breaks
only that condition (to catch a dropped condition, or ``>`` for ``>=``), NULLs, and
distractors. Results are compared as bags (multisets) of rows, or as lists when the
gold query orders them.

The prediction is untrusted text: it runs on a connection that is read-only
(``PRAGMA query_only``), whose authorizer allows only reading (no ATTACH, PRAGMA or
writes), one statement at a time, under a real timeout (a progress handler interrupts
the VM), with a cap on rows and on string sizes. Anything that fails scores 0 with the
error as the detail.

Two kinds of case:

- WikiSQL (the default): the prompt's ``table:`` and ``columns:`` lines give the table;
  gold and prediction are parsed with the column-aware parser (``wikisql.py``) and
  translated to SQLite over the case's table (WikiSQL gives the table, so a prediction's
  FROM name is noted, not judged). A prediction that is not in WikiSQL notation runs as
  SQLite SQL, as written. Columns are typed as WikiSQL types them, ``real`` or ``text``,
  read off the gold query (``wikisql.numeric_columns``: compared with ``<``/``>``, an
  unquoted number, or MAX/MIN/SUM/AVG make a column real). A condition on a real column
  compares numbers (``'20'`` = ``20.0``, as WikiSQL's ``lib/dbengine.py`` converts
  values for real columns); on a text column it compares text, case-insensitively as
  WikiSQL's executor lower-cases values, and never as numbers (``'2.0'`` is not ``'2'``).
- plain SQLite: ``schema_field`` names a record field with the ``CREATE TABLE`` (and
  optionally ``INSERT``) statements; gold and prediction run as written. Empty tables
  are seeded from the gold query's literals.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import time
from collections import Counter
from typing import Any

from ..errors import HarnessError
from . import wikisql
from .base import Item, Score, Scorer
from .normalize import sql_tokens, strip_sql

MAX_ROWS = 10_000
MAX_STRING = 1_000_000  # bytes of one string or blob a query may build
_PROGRESS_STEPS = 1_000  # VM instructions between timeout checks

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                    sqlite3.SQLITE_RECURSIVE}
_DENIED_FUNCTIONS = {"load_extension"}


def _authorizer(action: int, arg1, arg2, db_name, trigger) -> int:
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


# Suite setup SQL builds tables, so it may write, but never reach outside its in-memory
# database: no ATTACH (which creates files), PRAGMA or extension loading; time-limited.
_SETUP_DENIED = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA}
SETUP_TIMEOUT_S = 5.0


def _setup_authorizer(action: int, arg1, arg2, db_name, trigger) -> int:
    if action in _SETUP_DENIED:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def run_setup(conn: sqlite3.Connection, setup: str, timeout_s: float = SETUP_TIMEOUT_S) -> None:
    """A suite's setup script under the setup authorizer, a size limit and a timeout."""
    deadline = time.monotonic() + timeout_s
    if hasattr(conn, "setlimit"):
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_STRING)
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.set_authorizer(_setup_authorizer)
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS)
    try:
        conn.executescript(setup)
    except sqlite3.Error as exc:
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"timed out after {timeout_s:g} s") from None
        if "not authorized" in str(exc):
            raise sqlite3.OperationalError("not authorized: setup SQL may create and fill tables, "
                                           "not ATTACH, PRAGMA or load extensions") from None
        raise
    finally:
        conn.set_progress_handler(None, 0)
        conn.set_authorizer(None)


def new_connection() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.create_function("wn", 1, wikisql.as_real, deterministic=True)
    conn.create_function("wt", 1, wikisql.as_text, deterministic=True)
    return conn


def lock_down(conn: sqlite3.Connection) -> None:
    """Make the connection safe for untrusted queries. Call after building the tables."""
    conn.execute("PRAGMA query_only = ON")
    if hasattr(conn, "setlimit"):  # Python 3.11+
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_STRING)
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.set_authorizer(_authorizer)


class QueryFailed(Exception):
    """A query that did not run: the message says why, for the score's detail."""


def run_query(conn: sqlite3.Connection, sql: str, params: list | tuple = (),
              timeout_s: float = 2.0) -> list[tuple]:
    """Rows of one read-only statement, or QueryFailed (timeout, error, not a query)."""
    if not sql.strip():
        raise QueryFailed("empty query")
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS)
    try:
        cursor = conn.execute(sql, params)
        if cursor.description is None:
            raise QueryFailed("not a query: it returns no result set")
        rows = cursor.fetchmany(MAX_ROWS + 1)
    except QueryFailed:
        raise
    except (sqlite3.Error, sqlite3.Warning) as exc:
        message = str(exc)
        if time.monotonic() > deadline or "interrupted" in message:
            message = f"timed out after {timeout_s:g} s"
        elif "one statement" in message:
            message = "more than one statement (only one SELECT may run)"
        elif "not authorized" in message:
            message = "refused: only reading is allowed (no writes, ATTACH or PRAGMA)"
        else:
            message = f"SQLite error: {message}"
        raise QueryFailed(message) from None
    except Exception as exc:  # untrusted text: any failure to run is a failed prediction
        raise QueryFailed(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.set_progress_handler(None, 0)
    if len(rows) > MAX_ROWS:
        raise QueryFailed(f"more than {MAX_ROWS} rows")
    return rows


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return round(float(value), 6) + 0.0  # + 0.0 turns -0.0 into 0.0
    return value


def same_result(gold: list[tuple], pred: list[tuple], ordered: bool) -> bool:
    g = [tuple(_cell(c) for c in row) for row in gold]
    p = [tuple(_cell(c) for c in row) for row in pred]
    return g == p if ordered else Counter(g) == Counter(p)


def orders(sql: str) -> bool:
    """Whether a query has an ORDER BY (outside string literals)."""
    words = [t for kind, t in sql_tokens(sql) if kind == "word"]
    return any(a == "order" and b == "by" for a, b in zip(words, words[1:]))


def _preview(rows: list[tuple], limit: int = 3) -> str:
    shown = ", ".join(repr(r[0] if len(r) == 1 else r) for r in rows[:limit])
    more = f", ... ({len(rows)} rows)" if len(rows) > limit else ""
    return f"[{shown}{more}]"


# --- WikiSQL tables ---------------------------------------------------------------------------

_WORDS = ("alder", "birch", "cedar", "delta", "ember", "fjord", "grove", "heron", "ivory",
          "juniper", "kestrel", "lumen", "maple", "nectar", "onyx", "pebble")


def _typed(text: str) -> Any:
    value = wikisql.as_number(text)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def seed_wikisql_rows(columns: list[tuple[tuple[int, int], str]], gold: wikisql.Query,
                      seed: int) -> list[tuple]:
    """Rows that separate the gold query from its near misses (see the module docstring)."""
    rng = random.Random(seed)
    spans = [span for span, _ in columns]
    numeric = wikisql.numeric_columns(gold)

    def distractor(span: tuple[int, int], row: int) -> Any:
        if span in numeric:
            lits = [c.value for c in gold.conditions if c.column == span and isinstance(c.value, float)]
            centre = lits[0] if lits else 500.0
            while True:
                v = _typed(str(round(centre + rng.uniform(-1, 1) * (abs(centre) + 50))))
                if all(v != lit for lit in lits):
                    return v
        return f"{rng.choice(_WORDS)}-{spans.index(span)}-{row}"

    def shifted(c: wikisql.Condition, up: bool, near: bool = False) -> Any:
        v = c.value
        if not isinstance(v, float):
            return c.text
        step = 1.0 if near else max(2.0, abs(v) * 0.1)
        return _typed(str(round(v + step if up else v - step, 1)))

    def meets(c: wikisql.Condition, n: int) -> Any:
        # The first matching row sits just past a > or < bound, the second far past it.
        return {"=": _typed(c.text) if c.column in numeric else c.text, ">=": _typed(c.text),
                "<=": _typed(c.text), ">": shifted(c, True, near=n == 1),
                "<": shifted(c, False, near=n == 1), "!=": None}[c.op]

    def breaks(c: wikisql.Condition) -> Any:
        return {"=": None, ">": _typed(c.text), "<": _typed(c.text), ">=": shifted(c, False),
                "<=": shifted(c, True), "!=": _typed(c.text)}[c.op]

    # Numeric select values: the matching rows sit in the middle, every other row below or
    # above them, so MIN and MAX both change when a wrong row gets in.
    middle = rng.sample(range(40, 60), 2)

    def select_value(n: int, low: bool | None) -> Any:
        if gold.column not in numeric:
            return distractor(gold.column, n)
        if low is None:
            return middle[n - 1]
        return rng.randint(1, 9) if low else rng.randint(100, 199)

    def row(n: int, broken: wikisql.Condition | None = None, low: bool | None = None,
            nulls: bool = False) -> tuple:
        values = {span: None if nulls else distractor(span, n) for span in spans}
        for c in gold.conditions:
            v = breaks(c) if c is broken else meets(c, n)
            values[c.column] = distractor(c.column, n) if v is None else v
        if gold.column not in {c.column for c in gold.conditions}:
            values[gold.column] = select_value(n, low)
        return tuple(values[s] for s in spans)

    first = row(1)
    rows = [first, first, row(2, nulls=True)]
    for i, c in enumerate(gold.conditions):
        rows += [row(3 + 2 * i, broken=c, low=True), row(4 + 2 * i, broken=c, low=False)]
    rows.append(tuple(None for _ in spans))
    for i, low in enumerate((True, False)):
        values = [distractor(s, 20 + i) for s in spans]
        if gold.column in numeric and gold.column not in {c.column for c in gold.conditions}:
            values[spans.index(gold.column)] = select_value(20 + i, low)
        rows.append(tuple(values))
    rows.append(tuple(distractor(s, 22) for s in spans))
    rng.shuffle(rows)
    return rows


def wikisql_database(table: wikisql.Table, gold: wikisql.Query,
                     columns: list[tuple[tuple[int, int], str]]) -> sqlite3.Connection:
    """The case's table, seeded: ``real`` columns (``wikisql.numeric_columns``) typed REAL,
    the others TEXT, compared case-insensitively, as in WikiSQL's executor."""
    conn = new_connection()
    names = [name for _, name in columns]
    numeric = wikisql.numeric_columns(gold)
    types = [" REAL" if span in numeric else " TEXT COLLATE NOCASE" for span, _ in columns]
    try:
        conn.execute(f"CREATE TABLE {wikisql.quote_ident(table.id)} "
                     f"({', '.join(wikisql.quote_ident(n) + t for n, t in zip(names, types))})")
        seed = int.from_bytes(hashlib.sha256(f"{table.id}\0{gold}".encode()).digest()[:8], "big")
        conn.executemany(
            f"INSERT INTO {wikisql.quote_ident(table.id)} VALUES ({', '.join('?' * len(names))})",
            seed_wikisql_rows(columns, gold, seed))
    except BaseException:
        conn.close()
        raise
    lock_down(conn)
    return conn


# --- plain SQLite tables ------------------------------------------------------------------------

def _gold_literals(sql: str) -> list[Any]:
    out: list[Any] = []
    tokens = sql_tokens(sql)
    for i, (kind, tok) in enumerate(tokens):
        if kind in ("lit", "dq"):
            out.append(tok)
        elif kind == "word" and isinstance(wikisql.as_number(tok), float):
            negative = i > 0 and tokens[i - 1] == ("punct", "-")
            out.append(_typed(("-" if negative else "") + tok))
    return out


def sqlite_database(setup: str, gold_sql: str) -> sqlite3.Connection:
    """Run a case's setup SQL; seed its tables from the gold literals if it left them empty."""
    conn = new_connection()
    try:
        run_setup(conn, setup)
    except BaseException:
        conn.close()
        raise
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    if all(conn.execute(f"SELECT COUNT(*) FROM {wikisql.quote_ident(t)}").fetchone()[0] == 0
           for t in tables):
        rng = random.Random(int.from_bytes(hashlib.sha256(gold_sql.encode()).digest()[:8], "big"))
        literals = _gold_literals(gold_sql)
        for t in tables:
            info = conn.execute(f"PRAGMA table_info({wikisql.quote_ident(t)})").fetchall()
            rows = [_generic_row(info, literals, rng, n) for n in range(8)]
            rows += [rows[0], tuple(None for _ in info)]
            marks = ", ".join("?" * len(info))
            conn.executemany(f"INSERT OR IGNORE INTO {wikisql.quote_ident(t)} VALUES ({marks})", rows)
    lock_down(conn)
    return conn


def _generic_row(info: list[tuple], literals: list[Any], rng: random.Random, n: int) -> tuple:
    row = []
    for _, name, decl, *_ in info:
        decl = (decl or "").upper()
        numeric = any(k in decl for k in ("INT", "REAL", "FLOA", "DOUB", "NUM", "DEC"))
        textual = any(k in decl for k in ("CHAR", "CLOB", "TEXT"))
        fits = [v for v in literals if (isinstance(v, str) and not numeric)
                or (not isinstance(v, str) and not textual)]
        if fits and rng.random() < 0.5:
            row.append(rng.choice(fits))
        elif numeric:
            row.append(rng.randint(0, 100))
        else:
            row.append(f"{rng.choice(_WORDS)}-{n}")
    return tuple(row)


# --- the scorer ----------------------------------------------------------------------------------

class SqlExecution(Scorer):
    name = "sql_execution"
    metric_keys = frozenset({"executed"})
    unbounded = frozenset()  # a pass rate, a share that ran
    # 2: text-typed columns compare as text (no numeric coercion); 3: a bare value holds no
    # `;`, comment, comparison or SQL clause (wikisql.py), so `= 6; DROP TABLE x` is not `= 6`;
    # 4: every trailing `;` ends a bare value (`= 12;;` is 12, as sql_logical_form reads it)
    version = "4"
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 2.0,
                          "description": "wall-clock limit for each query"},
            "schema_field": {"type": "string", "minLength": 1,
                             "description": "record field with CREATE TABLE statements (plain "
                                            "SQLite cases); without it, WikiSQL prompts"},
        },
    }

    def check(self, path, line, field, cases=()) -> None:
        """With ``schema_field``, every case must carry its setup SQL there."""
        name = self.options.get("schema_field")
        if name is None:
            return
        for case in cases:
            if not isinstance(case.record.get(name), str) or not case.record[name].strip():
                raise HarnessError(f"no SQL in field `{name}`", path=case.source, line=case.source_line,
                                   field=name, hint="give each case its CREATE TABLE statements there")
            conn = new_connection()  # run it now, sandboxed: a bad setup fails before any model loads
            try:
                run_setup(conn, case.record[name])
            except (sqlite3.Error, sqlite3.Warning) as exc:
                raise HarnessError(f"the setup SQL fails: {exc}", path=case.source, line=case.source_line, field=name,
                                   hint="the field must run in SQLite as a script") from None
            finally:
                conn.close()

    def gold_problems(self, cases) -> list:
        """WikiSQL cases only: a plain SQLite gold (``schema_field``) runs as written."""
        return [] if "schema_field" in self.options else wikisql.gold_problems(cases)

    def score(self, item: Item) -> Score:
        if item.case.target is None:
            return Score(None, None, "the suite gives no target (gold query) for this case")
        timeout = self.options.get("timeout_s", 2.0)
        pred_text = strip_sql(item.output)
        if "schema_field" in self.options:
            conn, gold_sql, gold_params, pred_sql, pred_params, note = self._sqlite_case(item, pred_text)
        else:
            prepared = self._wikisql_case(item, pred_text)
            if isinstance(prepared, Score):
                return prepared
            conn, gold_sql, gold_params, pred_sql, pred_params, note = prepared
        try:
            try:
                gold_rows = run_query(conn, gold_sql, gold_params, timeout)
            except QueryFailed as exc:
                return Score(None, None, f"the gold query failed ({exc}); fix the case",
                             extra={"gold_sql": gold_sql})
            extra = {"gold_sql": gold_sql, "sql": pred_sql}
            if note:
                extra["note"] = note
            try:
                pred_rows = run_query(conn, pred_sql, pred_params, timeout)
            except QueryFailed as exc:
                return Score(0.0, False, f"prediction failed: {exc}", metrics={"executed": 0.0},
                             extra={**extra, "error": str(exc)})
        finally:
            conn.close()
        ordered = orders(gold_sql)
        weak = " (the gold result is empty, so this check is weak)" if not gold_rows else ""
        if same_result(gold_rows, pred_rows, ordered):
            return Score(1.0, True, f"same result as the gold query: {_preview(gold_rows)}{weak}",
                         metrics={"executed": 1.0}, extra=extra)
        how = "list" if ordered else "bag of rows"
        return Score(0.0, False, f"different result ({how}): gold gave {_preview(gold_rows)}, "
                                 f"prediction gave {_preview(pred_rows)}{weak}",
                     metrics={"executed": 1.0}, extra=extra)

    def _wikisql_case(self, item: Item, pred_text: str):
        try:
            table, gold = wikisql.case_table_and_gold(
                item.case,
                hint="put them in the prompt, or set sql_execution's schema_field for plain SQLite cases")
        except wikisql.ParseError as exc:
            return Score(None, None, f"the gold query does not parse ({exc}); fix the case")
        note = None
        try:
            pred = wikisql.parse(pred_text, table)
        except wikisql.ParseError as exc:
            pred, note = None, f"not WikiSQL notation ({exc}); ran as SQLite SQL"
        columns = wikisql.table_columns(table, gold)
        by_span = dict(columns)
        try:
            conn = wikisql_database(table, gold, columns)
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            # the case's own table or gold: over 2,000 columns, a NUL in a name, a table named
            # sqlite_*, a bound of 1e999 (no seed value past it) were an internal error (exit 3)
            return Score(None, None, f"the case's table cannot be built in SQLite ({type(exc).__name__}: "
                                     f"{exc}); fix the case")
        numeric = wikisql.numeric_columns(gold)
        gold_sql, gold_params = wikisql.to_sqlite(gold, table, by_span, numeric)
        pred_sql, pred_params = pred_text, []
        if pred is not None and pred.table.casefold() != table.id.casefold():
            note = f"FROM names {pred.table!r}; ran on the case's table {table.id} (WikiSQL gives the table)"
        if pred is not None:
            try:
                pred_sql, pred_params = wikisql.to_sqlite(pred, table, by_span, numeric)
            except wikisql.TranslateError as exc:
                conn.close()
                return Score(0.0, False, f"prediction failed: {exc}", metrics={"executed": 0.0},
                             extra={"gold_sql": gold_sql, "error": str(exc)})
        return conn, gold_sql, gold_params, pred_sql, pred_params, note

    def _sqlite_case(self, item: Item, pred_text: str):
        field = self.options["schema_field"]
        setup = item.case.record.get(field)
        if not isinstance(setup, str) or not setup.strip():
            raise HarnessError(f"case {item.case.id!r}: no SQL in field `{field}`",
                               line=item.case.source_line, field=field,
                               hint="give each case its CREATE TABLE statements in that field")
        gold_sql = strip_sql(item.case.target)
        try:
            conn = sqlite_database(setup, gold_sql)
        except (sqlite3.Error, sqlite3.Warning) as exc:
            raise HarnessError(f"case {item.case.id!r}: the setup SQL fails: {exc}",
                               line=item.case.source_line, field=field,
                               hint="the field must run in SQLite as a script") from None
        return conn, gold_sql, [], pred_text, [], None
