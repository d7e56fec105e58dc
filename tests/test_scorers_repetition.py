"""repetition: character seq-rep and loop detection on hand-checked outputs, the same with
or without a tokenizer, sub-word loops and text without spaces."""

from __future__ import annotations

import pytest

from harness.scorers import REGISTRY, Item
from harness.scorers.repetition import normalize, seq_rep, trailing_loop
from harness.case import Case

ORDINARY = ("The gateway service listens on port 8443 and forwards each request to the ledger, "
            "which stores balances in Postgres. Health checks run every fifteen seconds.")


def score(output: str, tokenizer=None, options=None, stats=None, finish="length"):
    case = Case(id="r", index=0, category=None, record={}, prompt="p", target=None)
    return REGISTRY["repetition"](options or {}).score(
        Item(case=case, output=output, finish_reason=finish, stats=stats or {}, tokenizer=tokenizer))


def test_the_success_loop_is_flagged():
    s = score("success " * 30)
    assert (s.value, s.passed) == (0.0, False)
    assert s.metrics["loop"] == 1.0
    assert s.detail.startswith("loops: a block of 8 characters")
    assert s.metrics["seq_rep"] > 0.9


def test_an_ordinary_answer_is_not_flagged():
    s = score(ORDINARY)
    assert (s.value, s.passed) == (1.0, True)
    assert s.metrics["loop"] == 0.0 and s.metrics["seq_rep"] == 0.0
    assert s.detail.startswith("no loop")


@pytest.mark.parametrize("output", [
    "The answer is hel" + "hel" * 40,  # a loop inside a word
    "我们今天去公园" + "你好" * 30,  # Chinese has no spaces
    "x = [" + "0," * 40,  # code without spaces
    "ありがとうございます。" * 8,  # a Japanese sentence over and over
])
def test_sub_word_loops_and_text_without_spaces_are_loops(output):
    s = score(output)
    assert s.passed is False and s.metrics["loop"] == 1.0, s.detail


@pytest.mark.parametrize("output", [
    "这是一个普通的句子，没有任何重复的内容，只是描述了一个简单的事实。",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "hahaha, that is funny",
    "no no no, that is wrong",
])
def test_varied_text_without_spaces_and_short_stutters_pass(output):
    s = score(output)
    assert s.passed is True and s.metrics["loop"] == 0.0, s.detail


def test_same_with_and_without_a_tokenizer(fixture_base):
    """eval (tokenizer loaded, token ids recorded) and score (neither) give one number."""
    tok = fixture_base.tokenizer
    for text in ["success " * 30, ORDINARY, "helhelhel" * 5]:
        ids = tok.encode(text, add_special_tokens=False)
        a = score(text)
        b = score(text, tokenizer=tok, stats={"output_token_ids": ids})
        assert (a.value, a.metrics, a.detail) == (b.value, b.metrics, b.detail)


def test_a_repeated_sentence_cut_mid_way_is_a_loop():
    out = "I will check the logs. " * 6 + "I will che"
    s = score(out)
    assert s.metrics["loop"] == 1.0 and "a block of 23 characters" in s.detail


def test_heavy_repetition_not_at_the_end_fails_on_seq_rep():
    text = "the build failed because the cache was stale. " * 5 + "Then I fixed it by hand today."
    s = score(text)
    assert s.metrics["loop"] == 0.0  # the end is not periodic
    assert s.metrics["seq_rep"] > 0.5 and s.passed is False
    assert s.detail.startswith("repetitive:")
    assert score(text, options={"max_seq_rep": 0.9}).passed is True


def test_measures():
    assert normalize("  Hello\n\tWORLD  ") == "hello world"
    assert normalize("ＡＢＣ") == "abc"  # NFKC: full-width letters
    assert seq_rep("abcabc", 3) == pytest.approx(1 - 3 / 4)
    assert seq_rep("ab", 4) == 0.0
    assert trailing_loop("xyzababab", 8, 3, 6) == (2, 3.0)
    assert trailing_loop("xyzabab", 8, 3, 6) is None
    assert trailing_loop("xyzababababQ", 8, 3, 6) == (2, 4.0)  # a final fragment


def test_directions_and_the_old_option_is_refused_at_load():
    from harness.errors import HarnessError
    from harness.scorers import validate_scorer_options
    from harness.suite import ScorerSpec

    assert REGISTRY["repetition"].lower_is_better == {"seq_rep", "loop"}
    with pytest.raises(HarnessError, match="'n' was unexpected"):
        validate_scorer_options(ScorerSpec("repetition", {"n": 4}, "scorers[0].repetition"), None, 3)


def test_a_huge_output_is_measured_on_its_tail():
    from harness.scorers.repetition import MAX_CHARS

    varied = " ".join(f"w{i}" for i in range(400_000))  # ~2.9M characters, no loop
    s = score(varied + " " + "ab" * 40)
    assert s.metrics["loop"] == 1.0 and f"the last {MAX_CHARS} of" in s.detail
    assert s.extra["characters"] > 2_000_000


@pytest.mark.parametrize("output", [
    "First you look. " + " ".join(f"Step {n}: check the logs." for n in range(1, 15)),
    " ".join(f"Day {n}: we walked to the lake and back." for n in range(1, 12)),
    " ".join(f"{n}. It is good." for n in range(1, 30)),
    "Rooms: " + ", ".join(f"room {n}" for n in range(101, 140)),
])
def test_a_counting_loop_is_a_loop(output):
    """No block repeats exactly and the changing numbers keep seq_rep low (0.31 on the first),
    so 'Step 1: ... Step 2: ...' to max_tokens passed as no collapse."""
    s = score(output)
    assert s.passed is False and s.metrics["loop"] == 1.0, s.detail
    assert "apart from its numbers" in s.detail


@pytest.mark.parametrize("output", [
    ", ".join(str(p) for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71)),
    "Version 1.2.3.4.5.6.7.8.9.10.11.12.13.14 and then 2024-01-01, 2024-01-02, 2024-01-03, 2024-01-04",
    "1. Pack water. 2. Pack a map. 3. Check the weather. 4. Tell someone your route.",
])
def test_numbers_alone_and_a_varied_numbered_list_are_not_loops(output):
    s = score(output)
    assert s.passed is True and s.metrics["loop"] == 0.0, s.detail


def test_min_chars_fails_an_output_too_short_to_judge():
    """An empty answer cannot show a loop; with min_chars it fails instead of passing."""
    assert score("").passed is True  # the default: nothing repeats in nothing
    for output in ("", "   \n "):
        s = score(output, options={"min_chars": 1})
        assert s.passed is False and s.metrics["loop"] == 0.0 and s.detail.startswith("too short to judge")
    assert score("OK", options={"min_chars": 1}).passed is True
