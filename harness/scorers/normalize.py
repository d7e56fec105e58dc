"""Text normalisers shared by the scorers.

Every normaliser here is idempotent (normalising twice changes nothing) and total (it
never raises on any string); ``tests/test_scorers_normalize.py`` checks both with
hypothesis, because a scorer that crashes or flips on a re-normalised answer is a
scorer whose numbers cannot be trusted.
"""

from __future__ import annotations

import unicodedata

import regex

# A fence is an opening line (``` and a language) read from the front and a closing ```
# read from the back, so a fence costs the length of its markers, never the text's: one
# regex over the whole fence (with a lazy body) took 44 s on 100,000 characters of nested
# fences, and 8 s on a fence followed by a long run of spaces. Possessive quantifiers (the
# ``regex`` package): re backtracked quadratically over spaces after ``` with no line break.
# [\s\x1c-\x1f] is re's \s (str.isspace), which the regex package's \s lacks those four of.
_FENCE_OPEN = regex.compile(r"[\s\x1c-\x1f]*+```[ \t]*+([A-Za-z0-9_+.-]*+)[ \t]*+\r?\n")


def _fixpoint(fn, text: str, limit: int = 8) -> str:
    """Apply ``fn`` until the text stops changing.

    NFKC and case folding do not commute for a handful of code points (a fold can
    produce a character that NFKC rewrites again), so one pass is not always stable.
    """
    for _ in range(limit):
        new = fn(text)
        if new == text:
            return new
        text = new
    return text


MAX_NON_STARTERS = 30  # UAX #15's stream-safe limit; no language needs more on one letter
_CGJ = "\u034f"  # COMBINING GRAPHEME JOINER: a starter that composes with nothing
_NON_STARTERS: dict[str, tuple[int, int, bool]] = {}
# 12 characters in a row that may be all combining marks (combining class not 0, or one of
# the five class-0 characters that decompose into marks): fewer cannot reach 30 marks, as
# a character brings at most 2 leading and 3 trailing. Other text skips the per-character pass.
_MARK_RUN = regex.compile(r"[\P{ccc=0}\u0f73\u0f75\u0f81\uff9e\uff9f]{12}")


def _non_starters(ch: str) -> tuple[int, int, bool]:
    """(leading, trailing, all) non-starters of the character's NFKD form."""
    if ch not in _NON_STARTERS:
        marks = [unicodedata.combining(c) != 0 for c in unicodedata.normalize("NFKD", ch)]
        lead = next((i for i, m in enumerate(marks) if not m), len(marks))
        trail = next((i for i, m in enumerate(reversed(marks)) if not m), len(marks))
        _NON_STARTERS[ch] = (lead, trail, lead == len(marks))
    return _NON_STARTERS[ch]


def stream_safe(text: str) -> str:
    """The text with a combining grapheme joiner after every 30 combining marks in a row
    (Unicode's stream-safe format, UAX #15), so that normalising it costs linear time.

    NFKC sorts a run of combining marks with a quadratic sort: a 98,000-character output
    of alternating marks took 14.6 s in keywords. Real text never has such a run, so it
    comes back unchanged.
    """
    if text.isascii() or not _MARK_RUN.search(text):
        return text
    out, run = [], 0
    for ch in text:
        lead, trail, only_marks = _non_starters(ch)
        if run + lead > MAX_NON_STARTERS:
            out.append(_CGJ)
            run = 0
        run = run + lead if only_marks else trail
        out.append(ch)
    return "".join(out) if len(out) > len(text) else text


def fold(text: str) -> str:
    """NFKC and casefold, to a fixpoint: the comparison form of free text (made stream-safe
    first, so that it takes linear time)."""
    return _fixpoint(lambda t: unicodedata.normalize("NFKC", stream_safe(t)).casefold(), text)


def _is_word_char(ch: str) -> bool:
    return ch.isalnum()


def normalize_text(text: str) -> str:
    """The keyword-matching form: NFKC, casefold, punctuation to space, one space between words.

    Anything that is not a letter or digit separates words (so ``PLAT_DEBUG`` and
    ``plat-debug`` both become ``plat debug``); matching phrases on this form with a
    space on either side is matching on word boundaries.
    """
    def one_pass(t: str) -> str:
        t = fold(t)
        t = "".join(ch if _is_word_char(ch) else " " for ch in t)
        return " ".join(t.split())

    return _fixpoint(one_pass, text)


def contains_phrase(normalized_text: str, normalized_phrase: str) -> bool:
    """Whole-word phrase match on normalised text: ``cat`` is not in ``concatenate``."""
    if not normalized_phrase:
        return False
    return f" {normalized_phrase} " in f" {normalized_text} "


def strip_code_fence(text: str) -> tuple[str, str | None]:
    """(inside, language) when the whole text is one markdown code fence, else (text, None).

    Nested fences are peeled one at a time until none is left. The inside runs from the
    opening line to the last ``` (after it only whitespace), less one line break and the
    spaces or tabs before that ```.
    """
    lang = None
    start, end = 0, len(text)
    while m := _FENCE_OPEN.match(text, start, end):
        close = _closing_fence(text, m.end(), end)
        if close is None:
            break
        start, end, lang = m.end(), close, m.group(1) or (lang or "")
    return (text[start:end] if lang is not None else text), lang


def _closing_fence(text: str, lo: int, hi: int) -> int | None:
    """Where the inside of a fence opened at ``lo`` ends: before an optional CR, LF, then
    spaces or tabs, then the ``` that ``text[lo:hi]`` ends with (whitespace after it
    allowed); None when it does not end with ```."""
    k = hi
    while k > lo and text[k - 1].isspace():
        k -= 1
    if k - 3 < lo or text[k - 3:k] != "```":
        return None
    j = k - 3
    while j > lo and text[j - 1] in " \t":
        j -= 1
    for ch in "\n\r":
        if j > lo and text[j - 1] == ch:
            j -= 1
    return j


# --- SQL -------------------------------------------------------------------------------------

_SQL_PUNCT = set("(),;=<>!+-*/%|.&~^:[]{}?@$#`\\")


def strip_sql(text: str) -> str:
    """A predicted query without a surrounding fence, whitespace and trailing ``;``."""
    def one_pass(t: str) -> str:
        t, _ = strip_code_fence(t)
        return t.strip().rstrip(";").strip()

    return _fixpoint(one_pass, text)


def _read_literal(text: str, i: int) -> tuple[str, int, bool]:
    """Read a quoted literal starting at ``text[i]`` (a quote): (content, next index, closed).

    ``''`` inside a literal is an escaped quote. A quote followed by a letter, digit or
    another quote character does not close the literal: WikiSQL writes values such as
    ``'St. John's'`` and ``'"Ambush"'`` without escaping.
    """
    quote = text[i]
    j = i + 1
    out = []
    n = len(text)
    while j < n:
        ch = text[j]
        if ch == quote:
            nxt = text[j + 1] if j + 1 < n else ""
            if nxt == quote:
                out.append(quote)
                j += 2
                continue
            if nxt == "" or not (nxt.isalnum() or nxt in "'\""):
                return "".join(out), j + 1, True
        out.append(ch)
        j += 1
    return "".join(out), n, False


def sql_tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) tokens of a query: ``lit`` / ``dq`` (a single- / double-quoted string,
    content byte-exact), ``open_lit`` (unterminated), ``punct`` or ``word`` (case-folded).

    Backticks and brackets are punctuation (they quote identifiers).
    """
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "'\"":
            kind = "lit" if ch == "'" else "dq"
            content, i, closed = _read_literal(text, i)
            tokens.append((kind if closed else "open_lit", content))
        elif ch in _SQL_PUNCT or not (ch.isalnum() or ch == "_"):
            tokens.append(("punct", ch))
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "'\"" and (
                text[j].isalnum() or text[j] == "_"):
                j += 1
            tokens.append(("word", fold(text[i:j])))
            i = j
    return tokens


def _render_literal(content: str, closed: bool) -> str:
    body = "'" + content.replace("'", "''")
    return body + "'" if closed else body


def normalize_sql(text: str, identifiers: frozenset[str] = frozenset()) -> str:
    """The comparison form of a query for ``sql_exact``.

    Strips a fence, whitespace and trailing ``;``; keeps string literals byte-exact
    (re-quoted with single quotes); case-folds everything else; one space between
    words and none around punctuation. Identifier quotes go: backticks and brackets
    always, double quotes around a known identifier (``identifiers``, folded), so
    ``"School/Club Team"`` compares equal to ``School/Club Team`` while ``"Butler"``
    stays the literal ``'Butler'``.
    """
    def one_pass(t: str) -> str:
        tokens: list[tuple[str, str]] = []
        for kind, tok in sql_tokens(strip_sql(t)):
            if kind == "punct" and tok in "`[]":
                continue
            if kind == "dq" and fold(tok) in identifiers:
                tokens += [x for x in sql_tokens(tok) if x[0] in ("word", "punct") and x[1] not in "`[]"]
                continue
            tokens.append((kind, tok))
        parts: list[str] = []
        prev_kind = None
        for kind, tok in tokens:
            literal = kind in ("lit", "dq", "open_lit")
            piece = _render_literal(tok, kind != "open_lit") if literal else tok
            if parts and kind != "punct" and prev_kind not in (None, "punct"):
                parts.append(" ")
            parts.append(piece)
            prev_kind = kind
        return "".join(parts)

    return _fixpoint(one_pass, text)
