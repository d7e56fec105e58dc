"""The shared normalisers: hand-checked forms, and (hypothesis) idempotent and total."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.scorers.normalize import (contains_phrase, fold, normalize_sql, normalize_text,
                                       sql_tokens, stream_safe, strip_code_fence, strip_sql)
from timing import within

# Text that exercises the awkward parts: quotes, fences, semicolons, Unicode that NFKC
# and casefold rewrite (ligatures, fullwidth, sharp s, Kelvin sign, combining marks).
_AWKWARD = st.sampled_from(list("'\"`;()[],.=<>-_ \n\t") + ["```", "```sql\n", "\n```", "''",
                                                            "ß", "ﬁ", "Ｋ", "K", "İ", "ǅ", "½",
                                                            "\u0301", "\u00a0", "ẞ", "ﬀ"])
TEXT = st.one_of(st.text(), st.lists(st.one_of(_AWKWARD, st.text(max_size=3))).map("".join))


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_normalize_text_is_idempotent_and_total(text):
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert "  " not in once and once == once.strip()


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_fold_is_idempotent(text):
    assert fold(fold(text)) == fold(text)


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_normalize_sql_is_idempotent_and_total(text):
    once = normalize_sql(text)
    assert normalize_sql(once) == once


@settings(max_examples=300, deadline=None)
@given(TEXT, st.lists(TEXT, max_size=3))
def test_normalize_sql_with_identifiers_is_idempotent(text, names):
    identifiers = frozenset(fold(n) for n in names) | {"school/club team", "#", "a b"}
    once = normalize_sql(text, identifiers)
    assert normalize_sql(once, identifiers) == once


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_strip_sql_is_idempotent(text):
    assert strip_sql(strip_sql(text)) == strip_sql(text)


def test_normalize_text_examples():
    assert normalize_text("  Port 8443, on the GATEWAY!  ") == "port 8443 on the gateway"
    assert normalize_text("PLAT_DEBUG=1") == "plat debug 1"
    assert normalize_text("Ｆｕｌｌｗｉｄｔｈ") == "fullwidth"  # NFKC
    assert normalize_text("Straße") == "strasse"  # casefold, not lower


def test_whole_word_matching():
    assert not contains_phrase(normalize_text("use concatenate here"), "cat")
    assert contains_phrase(normalize_text("the cat sat"), "cat")
    assert contains_phrase(normalize_text("Cat."), "cat")
    assert contains_phrase(normalize_text("port 8443 open"), "port 8443")
    assert not contains_phrase(normalize_text("port 84430"), "port 8443")
    assert not contains_phrase("anything", "")


def test_strip_code_fence():
    assert strip_code_fence("```sql\nSELECT 1\n```") == ("SELECT 1", "sql")
    assert strip_code_fence("```\n{}\n```\n") == ("{}", "")
    assert strip_code_fence("text ```sql\nx\n```") == ("text ```sql\nx\n```", None)


_OLD_FENCE = re.compile(r"\A\s*```[ \t]*([A-Za-z0-9_+.-]*)[ \t]*\r?\n(.*?)\r?\n?[ \t]*```\s*\Z", re.S)


def _regex_strip_code_fence(text):
    """The regex definition strip_code_fence had (quadratic), kept as the reference."""
    lang = None
    while m := _OLD_FENCE.match(text):
        text, lang = m.group(2), m.group(1) or (lang or "")
    return text, lang


_FENCY = st.lists(st.sampled_from(["```", "```sql", "\n", "\r", " ", "\t", "x", "sql", "\u2003", "\x1c", "`", "!"]),
                  max_size=24).map("".join)


@settings(max_examples=600, deadline=None)
@given(_FENCY)
def test_strip_code_fence_is_the_regex_definition(text):
    assert strip_code_fence(text) == _regex_strip_code_fence(text)


def test_strip_code_fence_is_linear_on_hostile_outputs():
    """A stored output of 100,000 characters took 44 s in sql_exact (nested fences, peeled
    one regex pass each) or 8 s (a fence then a run of spaces: the closing-fence regex
    retried at every space); each fence is now read from both ends once."""
    for text in ("```\n" * 25_000, "```\n" * 12_000 + "x" + "\n```" * 12_000, "```\n" + " " * 99_000 + "x",
                 "```sql\n" + " \t" * 49_000 + "\n```", "```" + " " * 99_000 + "!"):
        within(1.0, lambda: strip_code_fence(text), what=repr(text[:20]))


def test_sql_literals_keep_bytes_and_the_rest_folds():
    assert normalize_sql("SELECT Name FROM t WHERE x = 'Abc'") == "select name from t where x='Abc'"
    assert normalize_sql("select name from T where X='Abc' ;") == "select name from t where x='Abc'"
    assert normalize_sql('SELECT a FROM t WHERE b = "Abc"') == "select a from t where b='Abc'"
    assert normalize_sql("```sql\nSELECT  a\nFROM t;\n```") == "select a from t"
    # identifier quotes: backticks and brackets always go, double quotes around known names
    names = frozenset({"school/club team", "position"})
    plain = normalize_sql("SELECT Position FROM t WHERE School/Club Team = 'X'", names)
    assert normalize_sql('SELECT "Position" FROM t WHERE "School/Club Team" = \'X\'', names) == plain
    assert normalize_sql("SELECT `Position` FROM t WHERE [School/Club Team] = 'X'", names) == plain
    assert normalize_sql('SELECT Position FROM t WHERE School/Club Team = "X"', names) == plain
    assert normalize_sql("SELECT Position FROM t WHERE School/Club Team = 'x'", names) != plain
    # WikiSQL's unescaped quotes stay inside the literal
    assert sql_tokens("x = 'St. John's'")[-1] == ("lit", "St. John's")
    assert sql_tokens("x = '\"Don't Stop Believin'\"'")[-1] == ("lit", "\"Don't Stop Believin'\"")
    assert sql_tokens("x = 'it''s'")[-1] == ("lit", "it's")


@pytest.mark.parametrize("text", ["a" + "\u0301\u0316" * 49_000, "a" + "\u0f73" * 49_000, "a" + "\u0344\u0316" * 33_000])
def test_long_runs_of_combining_marks_normalise_in_linear_time(text):
    """NFKC sorts a run of combining marks in quadratic time: a 98,000-character output of
    marks of two classes took 14.6 s in keywords and 7.3 s in repetition. Runs are cut
    every 30 marks first (Unicode's stream-safe format, UAX #15)."""
    folded = within(1.0, lambda: fold(text))
    assert "\u034f" in folded  # the combining grapheme joiner cuts the run


def test_stream_safe_leaves_real_text_alone():
    for text in ("Tiếng Việt", "ﬁle ß", "e\u0301\u0316\u0302", "a" + "\u0301" * 30, "ǅ ½ Ｋ"):
        assert stream_safe(text) == text
    cut = stream_safe("a" + "\u0301" * 31)
    assert cut == "a" + "\u0301" * 30 + "\u034f\u0301"
    assert stream_safe(cut) == cut
    assert "\u034f" in stream_safe("\u01d6" + "\u0301" * 29)  # ǖ brings two marks of its own
