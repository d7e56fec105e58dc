"""Cascade attention (harness.cascade): the shared prefix read once per step for all rows.

The split attention equals one softmax over prefix + suffix (left padding, grouped-query
heads, several query positions); greedy outputs equal the path that copies the prefix into
every row, for one group, several groups, nested groups, rows without a prefix, and a
batch that mixes them; a model whose attention does not go through the cascade path is
refused by the probe and falls back.
"""

from __future__ import annotations

import mlx.core as mx
import pytest

from harness import cascade
from harness.generation import GenerationConfig, _generate_batch, generate
from harness.prefix import SharedPrefixes
from harness.prompts import encode_prompt

SYSTEM = "You are a careful assistant for the platform team. Answer in one short sentence. " * 5
OTHER = "Completely different instructions for the support desk: be terse and polite. " * 5
SHOTS = (" Example: port 8001 is the gateway. Example: port 8002 is billing." * 3,
         " Example: the queue pages data. Example: the cache pages platform." * 3)


def _reference(queries, pk, pv, sk, sv, left_padding, scale):
    """One softmax over [prefix, suffix]: prefix visible to all, suffix causal after the padding."""
    B, L, S, P = queries.shape[0], queries.shape[2], sk.shape[2], pk.shape[2]
    keys = mx.concatenate([mx.broadcast_to(pk, (B, *pk.shape[1:])), sk], axis=2)
    values = mx.concatenate([mx.broadcast_to(pv, (B, *pv.shape[1:])), sv], axis=2)
    j = mx.arange(S)[None, None, :]
    i = mx.arange(S - L, S)[None, :, None]
    suffix_mask = (j <= i) & (j >= mx.array(left_padding)[:, None, None])  # (B, L, S)
    mask = mx.concatenate([mx.ones((B, L, P), dtype=mx.bool_), suffix_mask], axis=2)[:, None]
    return mx.fast.scaled_dot_product_attention(queries, keys, values, scale=scale, mask=mask)


@pytest.mark.parametrize("L", [1, 3])
def test_split_attention_equals_one_softmax_over_prefix_and_suffix(L):
    from mlx_lm.models.cache import BatchKVCache

    mx.random.seed(0)
    B, Hq, Hkv, D, P, S = 3, 4, 2, 8, 5, 6
    left_padding = [0, 2, 1]
    pk, pv = mx.random.normal((1, Hkv, P, D)), mx.random.normal((1, Hkv, P, D))
    sk, sv = mx.random.normal((B, Hkv, S, D)), mx.random.normal((B, Hkv, S, D))
    queries = mx.random.normal((B, Hq, L, D))
    suffix = BatchKVCache(left_padding)
    suffix.update_and_fetch(sk[..., :S - L, :], sv[..., :S - L, :])
    cache = cascade.CascadeKVCache((7, pk, pv, mx.contiguous(pk.swapaxes(-1, -2))), suffix)
    k, v = cache.update_and_fetch(sk[..., S - L:, :], sv[..., S - L:, :])
    got = cascade.attention(queries, k, v, cache, scale=0.3)
    want = _reference(queries, pk, pv, sk, sv, left_padding, 0.3)
    assert got.shape == want.shape
    assert mx.allclose(got, want, atol=1e-5, rtol=1e-5).item()
    assert mx.array_equal(cache.offset, P + mx.array([S, S, S]) - mx.array(left_padding)).item()  # RoPE positions


def test_polynomial_exp_is_within_a_few_ulps():
    x = mx.linspace(-87.0, 0.0, 100_001)
    got, want = cascade._exp_nonpositive(x), mx.exp(x)
    assert (mx.abs(got - want) / want).max().item() < 2e-6
    assert cascade._exp_nonpositive(mx.array([-1e30])).item() < 1e-37  # masked-out scores weigh nothing


def _prompts(tokenizer):
    q = [f"Question {i}: which service listens on port {8000 + 7 * i}?" + " Please." * (i % 3) for i in range(6)]
    return ([encode_prompt(tokenizer, x, "chat", SYSTEM) for x in q[:4]]
            + [encode_prompt(tokenizer, x, "chat", OTHER) for x in q[:3]]
            + [encode_prompt(tokenizer, SHOTS[i % 2] + x, "chat", SYSTEM) for i, x in enumerate(q)]
            + [encode_prompt(tokenizer, "hello there", "chat", None)])


def test_greedy_outputs_equal_the_copied_prefix_path(fixture_base, monkeypatch):
    model, tokenizer = fixture_base.model, fixture_base.tokenizer
    prompts = _prompts(tokenizer)
    shared = SharedPrefixes(model, prompts)
    assert shared.cascade and len(shared.root_groups()) == 3  # SYSTEM (with nested shots), OTHER, none
    assert any(n is not None and n.parent is not None for n in shared._node_of)  # nested groups
    # 40 tokens: some rows stop (EOS) while others decode, so later rows join batches already
    # decoding (at 12 tokens the fixture base of 2026-12-03 ran every row to the limit)
    cfg = GenerationConfig(max_tokens=40, batch_size=4)
    full = generate(model, tokenizer, prompts, cfg, prefixes=False)
    assert len({len(c.output_token_ids) for c in full}) > 1, "precondition: rows that stop at different steps"

    calls = {"attention": 0, "demoted": 0}
    attention, demote = cascade.attention, cascade.CascadeKVCache._demote

    def counting_attention(*args, **kwargs):
        calls["attention"] += 1
        return attention(*args, **kwargs)

    def counting_demote(self):
        calls["demoted"] += self.prefix is not None
        return demote(self)

    monkeypatch.setattr(cascade, "attention", counting_attention)
    monkeypatch.setattr(cascade.CascadeKVCache, "_demote", counting_demote)
    grouped = generate(model, tokenizer, prompts, cfg, prefixes=shared)
    assert calls["attention"] > 0 and calls["demoted"] == 0  # one prefix group per batch
    assert [c.output_token_ids for c in grouped] == [c.output_token_ids for c in full]
    assert [c.prompt_tokens for c in grouped] == [len(p) for p in prompts]

    # All groups in one generator: batches that mix prefixes move them into the rows.
    mixed = _generate_batch(model, tokenizer, prompts, cfg, batch_size=4, prefixes=shared, cascade=True)
    assert calls["demoted"] > 0
    assert [c.output_token_ids for c in mixed] == [c.output_token_ids for c in full]


def test_probe_refuses_attention_that_ignores_the_shared_prefix(fixture_base, monkeypatch):
    model, tokenizer = fixture_base.model, fixture_base.tokenizer
    monkeypatch.setattr(cascade, "_PROBED", {})
    assert cascade.why_not(model) is None

    def suffix_only(queries, keys, values, cache, scale):  # the bug: the prefix is never read
        return mx.fast.scaled_dot_product_attention(queries, keys, values, scale=scale,
                                                    mask=cache.make_mask(queries.shape[2]))

    monkeypatch.setattr(cascade, "attention", suffix_only)
    monkeypatch.setattr(cascade, "_PROBED", {})
    assert "does not give the same logits" in cascade.why_not(model)
    prompts = _prompts(tokenizer)[:4]
    cfg = GenerationConfig(max_tokens=8, batch_size=4)
    fallback = generate(model, tokenizer, prompts, cfg, prefixes=SharedPrefixes(model, prompts))
    assert [c.output_token_ids for c in fallback] == \
        [c.output_token_ids for c in generate(model, tokenizer, prompts, cfg, prefixes=False)]

    monkeypatch.setattr(cascade, "_PROBED", {})
    monkeypatch.setenv("HARNESS_CASCADE", "0")
    assert cascade.why_not(model) == "HARNESS_CASCADE=0"


def test_the_log_says_once_why_cascade_attention_is_off(fixture_base, monkeypatch, capsys):
    from harness import runner

    monkeypatch.setenv("HARNESS_CASCADE", "0")
    monkeypatch.setattr(runner, "_CASCADE_TOLD", set())
    runner._say_cascade_fallback_once(fixture_base.model)
    runner._say_cascade_fallback_once(fixture_base.model)
    lines = [line for line in capsys.readouterr().err.splitlines() if "cascade attention off" in line]
    assert len(lines) == 1 and "HARNESS_CASCADE=0" in lines[0]
