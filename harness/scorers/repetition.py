"""Repetition: does the output degenerate into repeats or a loop?

Token accuracy and keyword scores can stay high while a model's generations collapse
into ``the the the`` or a repeated sentence, so this is measured on the generated text
itself, per item:

- ``seq_rep_n`` (Welleck et al., 2019): the share of repeated n-grams,
  1 - unique n-grams / n-grams (n=4 by default); 0 for varied text;
- ``distinct_1`` / ``distinct_2``: unique unigrams (bigrams) over all of them;
- ``loop``: the output ends in a block of 1..``max_period`` tokens repeated at least
  ``min_repeats`` times back to back (the last copy may be cut short), covering at
  least ``min_loop_tokens`` tokens (``success success success ...``, or a sentence
  said over and over).

An item fails (``collapsed``) when it loops or its ``seq_rep_n`` is above
``max_seq_rep``. Tokens are the model's tokens when a tokenizer is loaded (the ids it
generated, where recorded), else words and punctuation marks of the text.
"""

from __future__ import annotations

import re
from typing import Any

from .base import Item, Score, Scorer
from .normalize import fold

_WORD = re.compile(r"\w+|[^\w\s]")


def word_tokens(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def ngrams(tokens: list, n: int) -> list[tuple]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def seq_rep(tokens: list, n: int) -> float:
    grams = ngrams(tokens, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def distinct(tokens: list, n: int) -> float:
    grams = ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else 1.0


def trailing_loop(tokens: list, max_period: int, min_repeats: int,
                  min_tokens: int) -> tuple[int, float] | None:
    """(period, repeats) of the shortest block the output ends by repeating, or None.

    The periodic tail may stop part-way through a block (generation hit its limit
    mid-loop), so repeats can be fractional, and one final token may be a fragment
    (``che`` for ``check``).
    """
    for body in (tokens, tokens[:-1]):
        n = len(body)
        for period in range(1, min(max_period, n) + 1):
            j = n - 1
            while j - period >= 0 and body[j] == body[j - period]:
                j -= 1
            tail = (n - 1 - j) + period  # tokens in the periodic tail
            if tail >= min_repeats * period and tail >= min_tokens:
                return period, tail / period
    return None


class Repetition(Scorer):
    name = "repetition"
    version = "1"
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 16, "default": 4},
            "max_seq_rep": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
                            "description": "an item with more repeated n-grams than this fails"},
            "min_repeats": {"type": "integer", "minimum": 2, "default": 3},
            "min_loop_tokens": {"type": "integer", "minimum": 1, "default": 8},
            "max_period": {"type": "integer", "minimum": 1, "default": 32},
        },
    }

    @property
    def n(self) -> int:
        return self.options.get("n", 4)

    @property
    def lower_is_better(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({f"seq_rep_{self.n}", "loop"})

    def tokens(self, item: Item) -> tuple[list[Any], str]:
        """The output's tokens and what they are ("model tokens" or "words")."""
        tok = item.tokenizer
        if tok is None:
            return word_tokens(item.output), "words"
        ids = item.stats.get("output_token_ids")
        if ids is None:
            ids = list(tok.encode(item.output.rstrip(), add_special_tokens=False))
        eos = set(getattr(tok, "eos_token_ids", None) or [])
        return [t for t in ids if t not in eos], "model tokens"

    def score(self, item: Item) -> Score:
        o = self.options
        tokens, unit = self.tokens(item)
        rep = seq_rep(tokens, self.n)
        loop = trailing_loop(tokens, o.get("max_period", 32), o.get("min_repeats", 3),
                             o.get("min_loop_tokens", 8))
        too_repetitive = rep > o.get("max_seq_rep", 0.5)
        collapsed = bool(loop) or too_repetitive
        metrics = {f"seq_rep_{self.n}": rep, "distinct_1": distinct(tokens, 1),
                   "distinct_2": distinct(tokens, 2), "loop": float(bool(loop))}
        if loop:
            period, repeats = loop
            detail = (f"loops: a block of {period} {unit[:-1] if period == 1 else unit} repeated "
                      f"{repeats:.3g} times at the end")
        elif too_repetitive:
            detail = f"repetitive: seq-rep-{self.n} {rep:.2f} > {o.get('max_seq_rep', 0.5):g}"
        else:
            detail = f"no loop; seq-rep-{self.n} {rep:.2f}, distinct-2 {metrics['distinct_2']:.2f}"
        detail += f" ({len(tokens)} {unit})"
        return Score(0.0 if collapsed else 1.0, not collapsed, detail, metrics=metrics,
                     extra={"unit": unit, "tokens": len(tokens)})
