"""Reasoning models: the scorers see the answer after the thinking block, not the thinking."""

from __future__ import annotations

import json

import pytest

from conftest import score_stored
from harness.reasoning import answer, answer_of, markers, opened_in_prompt

PAIR = ("<think>", "</think>")


@pytest.mark.parametrize("output,opened,text,chars,unfinished", [
    ("<think>2+2 is 4, not 5</think>\n\n4", False, "4", len("<think>2+2 is 4, not 5</think>\n\n"), False),
    ("4", False, "4", 0, False),                                    # no block
    ("<think>\n\n</think>\n\n4", False, "4", len("<think>\n\n</think>\n\n"), False),  # Qwen3 /no_think
    ("<think>let me count: 1, 2, 3", False, "", len("<think>let me count: 1, 2, 3"), True),  # cut at max_tokens
    ("counting...</think>7", True, "7", len("counting...</think>"), False),  # the template opened it
    ("counting...</think>7", False, "7", len("counting...</think>"), False),  # the same, prompt unknown
    ("still counting", True, "", len("still counting"), True),    # opened by the prompt, never closed
    ("<think>a</think>b<think>c</think>d", False, "d", len("<think>a</think>b<think>c</think>"), False),
    ("</think> x <think> y", False, "", len("</think> x <think> y"), True),  # the last block never closed
])
def test_answer_splits_with_the_models_markers(output, opened, text, chars, unfinished):
    got = answer(output, PAIR, opened)
    assert (got.text, got.reasoning_chars, got.unfinished) == (text, chars, unfinished)


def test_without_a_tokenizer_only_an_output_that_begins_with_think_is_split():
    assert answer("  <think>hm</think> 4", None).text == "4"
    mention = "Use a <think> tag, then </think>, to wrap reasoning."
    assert answer(mention, None).text == mention  # a non-reasoning model writing about the tags


class ThinkingTokenizer:
    """What mlx-lm's TokenizerWrapper exposes for a Qwen3-style vocabulary."""

    has_thinking, think_start, think_end = True, "<think>", "</think>"
    START, END = 151667, 151668

    def rfind_think_start(self, ids):
        return max((i for i, t in enumerate(ids) if t == self.START), default=-1)

    def rfind_think_end(self, ids):
        return max((i for i, t in enumerate(ids) if t == self.END), default=-1)


def test_markers_and_a_prompt_that_opens_the_block():
    tok = ThinkingTokenizer()
    assert markers(tok) == PAIR
    assert markers(type("Plain", (), {"has_thinking": False})()) is None
    assert markers(None) is None
    assert opened_in_prompt(tok, [1, 2, tok.START, 9])            # DeepSeek-R1's template ends with <think>
    assert not opened_in_prompt(tok, [1, tok.START, 5, tok.END, 9])  # an earlier turn's closed block
    # opened by the prompt and cut before it closed: no answer, whatever the text says
    cut = answer_of({"output": "The answer is 7 I think", "prompt_token_ids": [1, tok.START]}, tok)
    assert (cut.text, cut.unfinished) == ("", True)
    assert answer_of({"output": "The answer is 7", "prompt_token_ids": [1, 2]}, tok).text == "The answer is 7"


def test_score_sees_the_answer_not_the_thinking(tmp_path):
    """Stored completions of a reasoning model on the smoke suite: an answer right only in
    the thinking fails, a right answer after it passes, a block cut at max_tokens scores
    nothing and is warned about; results.json keeps the whole output."""
    rows = [
        {"id": "add-1", "output": "<think>2 + 2 is 4.</think>\n\n4"},                   # right after thinking
        {"id": "add-2", "output": "<think>15? yes, 15</think>\n\n15"},
        {"id": "mul-1", "output": "<think>3 times 4 is 12</think>\n\n13"},               # right only in thinking
        {"id": "cap-1", "output": "<think>The capital is Paris", "finish_reason": "length"},  # never answered
        {"id": "col-1", "output": "blue"},                                               # no block
        {"id": "day-1", "output": "<think>\n\n</think>\n\n7"},                           # empty block (/no_think)
    ]
    proc, results = score_stored(tmp_path, "suites/smoke.yaml", rows)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    suite = results["suites"][0]
    items = {i["id"]: i for i in suite["models"]["base"]["items"]}
    passed = {k: items[k]["scores"]["exact_match"]["passed"] for k in items}
    assert passed == {"add-1": True, "add-2": True, "mul-1": False, "cap-1": False, "col-1": True, "day-1": True}
    assert items["mul-1"]["output"] == rows[2]["output"]  # kept whole
    assert items["mul-1"]["reasoning"] == {"chars": len("<think>3 times 4 is 12</think>\n\n"), "unfinished": False}
    assert items["cap-1"]["reasoning"]["unfinished"] is True
    assert "reasoning" not in items["col-1"]
    warned = [w for w in suite["warnings"] if "reasoning block" in w]
    assert len(warned) == 1 and "1 of 6" in warned[0] and "cap-1" in warned[0]


def test_repetition_reads_the_thinking_too(tmp_path):
    """A model that loops inside its reasoning until max_tokens has no answer, and it loops:
    repetition must say so (it reads the whole output), while exact_match sees no answer."""
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: think\nprompt: '{{ q }}'\ntarget: '{{ a }}'\ntemplate: raw\n"
        "scorers:\n  - exact_match: {}\n  - repetition: {}\n"
        "cases:\n  - {id: loop, q: 'What is 2 + 2?', a: '4'}\n  - {id: fine, q: 'What is 3 + 3?', a: '6'}\n")
    loop = "<think>" + "wait, let me recount the numbers. " * 12
    proc, results = score_stored(tmp_path, suite, [{"id": "loop", "output": loop, "finish_reason": "length"},
                                                   {"id": "fine", "output": "<think>3 + 3 = 6</think>6"}])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    items = {i["id"]: i for i in results["suites"][0]["models"]["base"]["items"]}
    assert items["loop"]["scores"]["repetition"]["passed"] is False
    assert items["loop"]["scores"]["exact_match"]["passed"] is False
    assert items["fine"]["scores"]["exact_match"]["passed"] is True
    assert items["fine"]["scores"]["repetition"]["passed"] is True


def test_scorecard_shows_the_answer_and_that_the_model_thought(tmp_path):
    rows = [{"id": "add-1", "output": "<think>" + "carry the one. " * 40 + "</think>\n\n4"},
            {"id": "add-2", "output": "<think>15? " + "<b>hmm</b> " * 30, "finish_reason": "length"}]
    rows += [{"id": i, "output": "x"} for i in ("mul-1", "cap-1", "col-1", "day-1")]
    proc, _ = score_stored(tmp_path, "suites/smoke.yaml", rows)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = (tmp_path / "out" / "index.html").read_text()
    assert f"[reasoning: {len(rows[0]['output']) - 1} chars] 4" in page  # the answer, not the thinking's start
    assert "[still reasoning at the token limit:" in page
    assert "<b>hmm</b>" not in page  # still escaped wherever it shows
