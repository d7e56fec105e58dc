"""The integrity check passes the real engine and catches a loop that drops context."""

from __future__ import annotations

import mlx.core as mx
import pytest

from harness import integrity
from harness.generation import generate
from harness.prompts import encode_prompt
from harness.generation import GenerationConfig


def engine_greedy(model, tokenizer, prompts, max_tokens):
    out = generate(model, tokenizer, prompts, GenerationConfig(max_tokens=max_tokens))
    eos = tokenizer.eos_token_id
    return [c.output_token_ids + ([eos] if c.stopped_by == "eos" else []) for c in out]


def context_dropping_greedy(model, tokenizer, prompts, max_tokens):
    """The planted bug: after the prompt, feed only the newest token, without its cache."""
    results = []
    for prompt in prompts:
        logits = model(mx.array([prompt]))[0, -1]
        tokens = []
        for _ in range(max_tokens):
            token = int(mx.argmax(logits).item())
            tokens.append(token)
            if token in tokenizer.eos_token_ids:
                break
            logits = model(mx.array([[token]]))[0, -1]  # no cache: the context is gone
        results.append(tokens)
    return results


@pytest.fixture(params=["fixture", "stories"])
def base_and_prompts(request, fixture_base, stories_base):
    if request.param == "fixture":
        base = fixture_base
        prompts = [encode_prompt(base.tokenizer, q, "chat") for q in
                   ("What port does the gateway use?", "SELECT name FROM people WHERE id = 3")]
    else:
        base = stories_base
        prompts = [encode_prompt(base.tokenizer, q, "raw") for q in
                   ("Once upon a time, there was a dog", "Tom and Sue went to the park")]
    return base, prompts


def test_engine_passes(base_and_prompts):
    base, prompts = base_and_prompts
    result = integrity.check_generator(base.model, base.tokenizer, prompts, 24, engine_greedy)
    assert result.passed, result.detail
    assert result.checked == 2


def test_planted_context_dropping_loop_is_caught(base_and_prompts):
    base, prompts = base_and_prompts
    result = integrity.check_generator(base.model, base.tokenizer, prompts, 24, context_dropping_greedy)
    assert not result.passed
    assert "full-context recomputation" in result.detail


def test_sample_indices_spread_and_bounded():
    assert integrity.sample_indices(10, 3) == [0, 3, 6]
    assert integrity.sample_indices(2, 5) == [0, 1]
    assert integrity.sample_indices(10, 0) == []
