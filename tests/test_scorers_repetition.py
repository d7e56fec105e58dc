"""repetition: seq-rep-n, distinct-n and loop detection on hand-checked outputs, in words
and in the fixture model's tokens."""

from __future__ import annotations

import pytest

from harness.scorers import REGISTRY, Item
from harness.scorers.repetition import distinct, seq_rep, trailing_loop, word_tokens
from harness.suite import Case

ORDINARY = ("The gateway service listens on port 8443 and forwards each request to the ledger, "
            "which stores balances in Postgres. Health checks run every fifteen seconds.")


def score(output: str, tokenizer=None, options=None, stats=None):
    case = Case(id="r", index=0, category=None, record={}, prompt="p", target=None)
    return REGISTRY["repetition"](options or {}).score(
        Item(case=case, output=output, finish_reason="length", stats=stats or {}, tokenizer=tokenizer))


def test_the_success_loop_is_flagged_in_words():
    s = score("success " * 30)
    assert (s.value, s.passed) == (0.0, False)
    assert s.metrics["loop"] == 1.0
    assert s.detail.startswith("loops: a block of 1 word repeated 30 times")
    assert s.metrics["seq_rep_4"] == pytest.approx(1 - 1 / 27)


def test_an_ordinary_answer_is_not_flagged():
    s = score(ORDINARY)
    assert (s.value, s.passed) == (1.0, True)
    assert s.metrics["loop"] == 0.0 and s.metrics["seq_rep_4"] == 0.0
    assert s.detail.startswith("no loop")


def test_with_the_model_tokenizer(fixture_base):
    tok = fixture_base.tokenizer
    looped = score("success " * 30, tokenizer=tok)
    assert looped.passed is False and looped.metrics["loop"] == 1.0
    assert looped.extra["unit"] == "model tokens"
    assert score(ORDINARY, tokenizer=tok).passed is True
    # recorded generated ids are used as they are (EOS dropped)
    ids = tok.encode(("yes no " * 10).strip(), add_special_tokens=False) + [tok.eos_token_id]
    s = score("ignored", tokenizer=tok, stats={"output_token_ids": ids})
    assert s.extra["tokens"] == len(ids) - 1 and s.metrics["loop"] == 1.0


def test_a_repeated_sentence_cut_mid_way_is_a_loop():
    out = "I will check the logs. " * 6 + "I will che"
    s = score(out)
    assert s.metrics["loop"] == 1.0 and "a block of 6 words" in s.detail


def test_short_stutter_is_not_a_loop_but_heavy_repetition_fails():
    assert score("no no no, that is wrong").metrics["loop"] == 0.0
    s = score("a b c d a b c d a b c d x y")  # repeated 4-grams, not at the end
    assert s.metrics["loop"] == 0.0
    assert s.metrics["seq_rep_4"] == pytest.approx(1 - 6 / 11)
    assert s.passed is True
    assert score("a b c d a b c d a b c d x y", options={"max_seq_rep": 0.3}).passed is False


def test_measures():
    toks = word_tokens("the cat the cat the dog")
    assert toks == ["the", "cat", "the", "cat", "the", "dog"]
    assert seq_rep(toks, 2) == pytest.approx(1 - 3 / 5)
    assert distinct(toks, 1) == pytest.approx(3 / 6)
    assert distinct(toks, 2) == pytest.approx(3 / 5)
    assert seq_rep(["a"], 4) == 0.0 and distinct([], 2) == 1.0
    assert trailing_loop(list("xyzababab"), 8, 3, 6) == (2, 3.0)
    assert trailing_loop(list("xyzabab"), 8, 3, 6) is None
    assert trailing_loop(list("xyzababababQ"), 8, 3, 6) == (2, 4.0)  # a final fragment


def test_n_option_names_the_metric_and_lower_is_better():
    scorer = REGISTRY["repetition"]({"n": 2})
    assert "seq_rep_2" in scorer.lower_is_better and "loop" in scorer.lower_is_better
    s = score("the cat the cat", options={"n": 2})
    assert "seq_rep_2" in s.metrics
