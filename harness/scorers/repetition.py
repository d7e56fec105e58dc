"""Repetition: does the output degenerate into repeats or a loop?

Token accuracy and keyword scores can stay high while a model's generations collapse
into ``the the the`` or a repeated sentence, so this is measured on the generated text
itself. **The unit is the character** of the normalised text (NFKC, case-folded, every
run of whitespace one space), not the model's tokens and not words:

- it is the same in ``harness eval`` and ``harness score`` (stored completions have no
  tokenizer), and the same for every model, so numbers compare across tokenizers;
- it sees loops inside a word (``helhelhel…``) and in text without spaces (Chinese,
  Japanese, minified code), which a word unit cannot;
- what it costs: one scale for all scripts, where a CJK character carries more than a
  Latin one. The defaults below leave a wide margin on both (measured: ordinary English
  prose of 300-800 characters has ``seq_rep`` at most 0.08; loops 0.6 and up).

Per item:

- ``seq_rep``: the share of repeated character n-grams, 1 - unique / all
  (``ngram_chars``, default 16): the character form of Welleck et al.'s seq-rep-n (2019);
  0 for varied text, near 1 for a loop;
- ``loop``: 1 when the output ends in a block of 1..``max_period`` characters repeated
  at least ``min_repeats`` times back to back (the last copy may be cut short), over at
  least ``min_loop_chars`` characters: ``success success success …``, ``helhelhel…``,
  ``你好你好你好…``, a sentence said over and over; also when the block repeats only
  *apart from its numbers* (every run of digits read as one ``0``) and holds a letter:
  a counting loop, ``Step 1: check the logs. Step 2: check the logs. Step 3: …``, in
  which no block repeats exactly and the changing numbers keep ``seq_rep`` low (0.33 on
  that one). A run of numbers alone (``1, 2, 3, …``, a list of primes) is not a loop.

An item fails (``collapsed``) when it loops or its ``seq_rep`` is above ``max_seq_rep``;
with ``min_chars`` set, also when its normalised text is shorter (too short to show
whether it loops: an adapter that stopped at once passed a repetition suite as never
looping, 32 of 32).
The metric ``repetition`` is the share of items that did **not** collapse (higher is
better); ``repetition.seq_rep`` and ``repetition.loop`` are lower-is-better.
"""

from __future__ import annotations

import re
import unicodedata

from .base import Item, Score, Scorer
from .normalize import stream_safe

# Longer outputs are measured on their last MAX_CHARS characters (where a loop shows), so
# a hostile stored completion costs bounded time and memory (n-gram sets grow with it).
MAX_CHARS = 100_000
_DIGIT_RUN = re.compile(r"\d+")


def numbers_masked(text: str) -> str:
    """The text with every run of digits (any script) as one ``0``: a counting loop
    (``day 1: …. day 2: ….``) repeats exactly in it."""
    return _DIGIT_RUN.sub("0", text)


def normalize(text: str) -> str:
    """The text repetition is measured on: NFKC, casefolded, whitespace runs as one space
    (stream-safe first: NFKC is quadratic in a long run of combining marks)."""
    return " ".join(unicodedata.normalize("NFKC", stream_safe(text)).casefold().split())


def ngrams(units, n: int) -> list:
    return [tuple(units[i:i + n]) if not isinstance(units, str) else units[i:i + n]
            for i in range(len(units) - n + 1)]


def seq_rep(units, n: int) -> float:
    """1 - unique n-grams / n-grams (0 when there are none)."""
    grams = ngrams(units, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def trailing_loop(units, max_period: int, min_repeats: int,
                  min_units: int) -> tuple[int, float] | None:
    """(period, repeats) of the shortest block the sequence ends by repeating, or None.

    The periodic tail may stop part-way through a block (generation hit its limit
    mid-loop), so repeats can be fractional; one final unit may be a stray fragment.
    """
    for body in (units, units[:-1]):
        n = len(body)
        for period in range(1, min(max_period, n) + 1):
            j = n - 1
            while j - period >= 0 and body[j] == body[j - period]:
                j -= 1
            tail = (n - 1 - j) + period  # units in the periodic tail
            if tail >= min_repeats * period and tail >= min_units:
                return period, tail / period
    return None


class Repetition(Scorer):
    name = "repetition"
    # 2: measured on characters (was model tokens in eval, words in score); 3: a block that
    # repeats apart from its numbers (a counting loop) is a loop
    version = "3"
    reads_reasoning = True  # a loop inside a reasoning block is a loop
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "ngram_chars": {"type": "integer", "minimum": 2, "maximum": 64, "default": 16,
                            "description": "n of the character n-grams of seq_rep"},
            "max_seq_rep": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
                            "description": "an item with a larger share of repeated n-grams fails"},
            "min_repeats": {"type": "integer", "minimum": 2, "default": 3,
                            "description": "copies of a block at the end that make a loop"},
            "min_loop_chars": {"type": "integer", "minimum": 1, "default": 24,
                               "description": "characters a loop must cover"},
            "max_period": {"type": "integer", "minimum": 1, "maximum": 2000, "default": 256,
                           "description": "longest repeated block looked for, in characters"},
            "min_chars": {"type": "integer", "minimum": 0, "default": 0,
                          "description": "an output with fewer characters (normalised) fails: too short "
                                         "to show whether it loops (1: an empty answer fails)"},
        },
    }
    lower_is_better = frozenset({"seq_rep", "loop"})
    metric_keys = frozenset({"seq_rep", "loop"})
    unbounded = frozenset()  # a share not collapsed, a share of repeated n-grams, a loop 0/1

    def score(self, item: Item) -> Score:
        o = self.options
        n = o.get("ngram_chars", 16)
        text = normalize(item.output)
        full = len(text)
        text = text[-MAX_CHARS:]
        rep = seq_rep(text, n)
        loop_args = (o.get("max_period", 256), o.get("min_repeats", 3), o.get("min_loop_chars", 24))
        loop, looped = trailing_loop(text, *loop_args), text
        counting = False
        if not loop:
            masked = numbers_masked(text)
            found = trailing_loop(masked, *loop_args) if masked != text else None
            if found and any(ch.isalpha() for ch in masked[-found[0]:]):
                loop, looped, counting = found, masked, True
        limit = o.get("max_seq_rep", 0.5)
        too_repetitive = rep > limit
        too_short = full < o.get("min_chars", 0)
        collapsed = bool(loop) or too_repetitive or too_short
        if loop:
            period, repeats = loop
            block = looped[-period:]  # the repeated block (a rotation of it, if cut mid-copy)
            shown = repr(block[:40] + ("…" if len(block) > 40 else ""))
            detail = (f"loops: a block of {period} character{'s' if period > 1 else ''} ({shown}) "
                      f"repeated {repeats:.3g} times at the end"
                      + (" apart from its numbers (digits shown as 0)" if counting else ""))
        elif too_repetitive:
            detail = f"repetitive: {rep:.0%} of its {n}-character n-grams are repeats (limit {limit:.0%})"
        elif too_short:
            detail = f"too short to judge: fewer than min_chars = {o['min_chars']} characters"
        else:
            detail = f"no loop; {rep:.0%} of its {n}-character n-grams are repeats"
        detail += (f" ({full} characters)" if full == len(text)
                   else f" (the last {len(text)} of {full} characters)")
        return Score(0.0 if collapsed else 1.0, not collapsed, detail,
                     metrics={"seq_rep": rep, "loop": float(bool(loop))},
                     extra={"unit": "characters", "characters": full})
