"""Shared-prefix reuse: the grouping, outputs equal to full prefill, and the integrity
check catching a corrupted shared prefix."""

from __future__ import annotations

from harness import integrity
from harness.generation import generate
from harness.prefix import SharedPrefixes, plan
from harness.prompts import encode_prompt
from harness.generation import GenerationConfig

SYSTEM = "You are a careful assistant for the platform team. Answer in one short sentence. " * 5


def test_plan_nests_groups_and_leaves_unrelated_prompts_alone():
    system, shot_a, shot_b = list(range(100, 150)), list(range(200, 240)), list(range(300, 340))
    prompts = [system + shot_a + [1, 2], system + shot_b + [3], system + shot_a + [4, 5, 6],
               system + shot_b + [7], list(range(500, 600)), system + [9]]
    nodes = plan(prompts, min_tokens=32)
    lengths = [n.length if n else 0 for n in nodes]
    assert lengths == [90, 90, 90, 90, 0, 50]
    assert nodes[0] is nodes[2] and nodes[1] is nodes[3] and nodes[0] is not nodes[1]
    assert nodes[0].parent is nodes[5] and nodes[1].parent is nodes[5]  # blocks extend the system prompt
    assert nodes[0].tokens == system + shot_a


def test_plan_keeps_one_token_per_row_and_skips_short_prefixes():
    same = list(range(40))
    nodes = plan([same, same, same + [7]], min_tokens=32)
    assert [n.length for n in nodes] == [39, 39, 39]  # every row still feeds its last token
    assert plan([list(range(10)) + [1], list(range(10)) + [2]], min_tokens=32) == [None, None]
    assert plan([same], min_tokens=32) == [None]


def _prompts(base, n=8, template="chat"):
    return [encode_prompt(base.tokenizer, f"Question {i}: which service listens on port {8000 + 7 * i}?",
                          template, SYSTEM if template == "chat" else None)
            if template == "chat" else
            encode_prompt(base.tokenizer, SYSTEM + f"Q: port {8000 + 7 * i}?\nA:", "raw")
            for i in range(n)]


def test_outputs_equal_full_prefill(fixture_base):
    for template in ("chat", "raw"):
        prompts = _prompts(fixture_base, template=template)
        shared = SharedPrefixes(fixture_base.model, prompts)
        assert min(shared.length(i) for i in range(len(prompts))) > 100
        cfg = GenerationConfig(max_tokens=16, batch_size=4)  # rows join batches already decoding
        full = generate(fixture_base.model, fixture_base.tokenizer, prompts, cfg, prefixes=False)
        reused = generate(fixture_base.model, fixture_base.tokenizer, prompts, cfg, prefixes=shared)
        assert [c.output_token_ids for c in reused] == [c.output_token_ids for c in full]
        assert [c.prompt_tokens for c in reused] == [len(p) for p in prompts]
        assert shared.prefilled_tokens == shared.length(0)  # computed once for all rows


def test_integrity_check_catches_a_corrupted_shared_prefix(fixture_base):
    model, tokenizer = fixture_base.model, fixture_base.tokenizer
    prompts = _prompts(fixture_base, n=4)
    shared = SharedPrefixes(model, prompts)
    cfg = GenerationConfig(max_tokens=16)
    good = generate(model, tokenizer, prompts, cfg, prefixes=shared)
    assert integrity.check(model, tokenizer, prompts, [c.output_token_ids for c in good], 16, shared).passed

    # Plant the bug: the shared cache holds another context (the prefix's tokens reversed).
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    node = shared._node_of[0]
    node.cache = make_prompt_cache(model)
    model(mx.array([node.tokens[::-1]]), cache=node.cache)
    node.shared = None  # cascade attention (harness.cascade) reads the prefix from the rebuilt cache too
    bad = generate(model, tokenizer, prompts, cfg, prefixes=shared)
    assert [c.output_token_ids for c in bad] != [c.output_token_ids for c in good]
    result = integrity.check(model, tokenizer, prompts, [c.output_token_ids for c in bad], 16, shared)
    assert not result.passed and "sample 0" in result.detail
