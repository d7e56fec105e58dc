"""The generation engine: batching changes nothing, stops and lengths are honoured,
sampling is seeded, and it works on a real third-party checkpoint."""

from __future__ import annotations

import pytest

from harness.generation import generate
from harness.prompts import encode_prompt
from harness.generation import GenerationConfig


def chat_prompts(base, n):
    return [encode_prompt(base.tokenizer, f"Question number {i}: what is {i} plus {i}?", "chat")
            for i in range(n)]


def test_batched_greedy_equals_one_at_a_time(fixture_base):
    prompts = chat_prompts(fixture_base, 6)
    cfg = GenerationConfig(max_tokens=12)
    batched = generate(fixture_base.model, fixture_base.tokenizer, prompts, cfg)
    single = generate(fixture_base.model, fixture_base.tokenizer, prompts,
                      GenerationConfig(max_tokens=12, batch_size=1))
    assert [c.output_token_ids for c in batched] == [c.output_token_ids for c in single]
    # each row ran to the limit or stopped at EOS before it; all decoded beside each other for
    # at least 8 steps, so the comparison above is not of empty answers
    assert all((c.finish_reason == "length" and c.output_tokens == 12)
               or (c.finish_reason == "stop" and c.output_tokens < 12) for c in batched)
    assert min(c.output_tokens for c in batched) >= 8
    assert all(c.prompt_tokens == len(p) for c, p in zip(batched, prompts))


def test_reference_continuation_of_stories260k(stories_base):
    # The continuation published with the original llama2.c model.
    prompt = [stories_base.tokenizer.bos_token_id]
    out = generate(stories_base.model, stories_base.tokenizer, [prompt], GenerationConfig(max_tokens=40))[0]
    assert out.output.startswith("Once upon a time, there was a little girl named Lily. "
                                 "She loved to play outside in the park.")


def test_stop_string_cuts_output_and_reports_stop(stories_base):
    prompt = encode_prompt(stories_base.tokenizer, "Once upon a time", "raw")
    out = generate(stories_base.model, stories_base.tokenizer, [prompt],
                   GenerationConfig(max_tokens=60, stop=(".",)))[0]
    assert out.finish_reason == "stop" and out.stopped_by == "stop_string"
    assert "." not in out.output and out.output.startswith(",")


def test_eos_gives_stop_and_is_not_in_the_text(stories_base):
    # stories260K separates stories with BOS and rarely emits EOS, so declare the token it
    # writes third to be an EOS and check the engine stops there and drops it from the text.
    import copy

    free = generate(stories_base.model, stories_base.tokenizer, [[1]], GenerationConfig(max_tokens=8))[0]
    tokenizer = copy.copy(stories_base.tokenizer)
    tokenizer._eos_token_ids = {free.output_token_ids[2]}
    out = generate(stories_base.model, tokenizer, [[1]], GenerationConfig(max_tokens=8))[0]
    assert out.finish_reason == "stop" and out.stopped_by == "eos"
    assert out.output_token_ids == free.output_token_ids[:2]
    assert out.output == stories_base.tokenizer.decode(free.output_token_ids[:2])


def test_sampling_is_seeded(stories_base):
    prompts = [encode_prompt(stories_base.tokenizer, "Once upon a time", "raw")] * 3
    a = generate(stories_base.model, stories_base.tokenizer, prompts,
                 GenerationConfig(max_tokens=20, temperature=1.0, seed=7))
    b = generate(stories_base.model, stories_base.tokenizer, prompts,
                 GenerationConfig(max_tokens=20, temperature=1.0, seed=7))
    c = generate(stories_base.model, stories_base.tokenizer, prompts,
                 GenerationConfig(max_tokens=20, temperature=1.0, seed=8))
    assert [x.output for x in a] == [x.output for x in b]
    assert [x.output for x in a] != [x.output for x in c]


def test_timings_recorded(fixture_base):
    out = generate(fixture_base.model, fixture_base.tokenizer, chat_prompts(fixture_base, 2),
                   GenerationConfig(max_tokens=8, batch_size=1))
    for c in out:
        assert c.ttft_s is not None and c.ttft_s > 0
        assert c.decode_tps is not None and c.decode_tps > 0
        assert c.peak_memory_gb is not None and c.peak_memory_gb > 0


def test_chat_template_required_for_chat(stories_base):
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="no chat template"):
        encode_prompt(stories_base.tokenizer, "hi", "chat")
