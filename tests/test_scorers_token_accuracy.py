"""token_accuracy on the fixture model: agrees with a direct teacher-forced computation,
does not depend on how items are batched, and scores the model's own greedy continuation
as (almost) fully predicted."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest

from harness.metrics import scorer_metrics
from harness.prompts import encode_completion, encode_prompt
from harness.scorers import REGISTRY, Item
from harness.case import Case

PROMPTS = [("What port does the gateway use?", "The gateway listens on port 8443."),
           ("hi", "hello"),
           ("Describe the deploy pipeline in one long sentence please.", "Build, test, canary, then promote.")]


def items_for(base, pairs) -> list[Item]:
    out = []
    for i, (prompt, target) in enumerate(pairs):
        case = Case(id=str(i), index=i, category=None, record={}, prompt=prompt, target=target)
        ids = encode_prompt(base.tokenizer, prompt, "chat")
        out.append(Item(case=case, output="", finish_reason="stop", stats={"prompt_token_ids": ids},
                        tokenizer=base.tokenizer))
    return out


def direct(base, item: Item) -> tuple[float, float]:
    context = item.stats["prompt_token_ids"]
    target = encode_completion(base.tokenizer, item.case.target)
    logits = base.model(mx.array([context + target])[:, :-1]).astype(mx.float32)
    logp = np.array(logits - mx.logsumexp(logits, axis=-1, keepdims=True))[0]
    pos = np.arange(len(context) - 1, len(context) - 1 + len(target))
    step = logp[pos]
    return float((step.argmax(-1) == np.array(target)).mean()), float(-step[np.arange(len(target)), target].mean())


def test_matches_direct_computation_and_batching_does_not_matter(fixture_base):
    scorer = REGISTRY["token_accuracy"]({})
    items = items_for(fixture_base, PROMPTS)
    together = scorer.score_all(items, fixture_base)
    for item, s in zip(items, together):
        acc, nll = direct(fixture_base, item)
        assert s.value == pytest.approx(acc)
        assert s.metrics["nll"] == pytest.approx(nll, rel=1e-4)
        alone = scorer.score_all([item], fixture_base)[0]
        assert alone.metrics["nll"] == pytest.approx(s.metrics["nll"], rel=1e-4)
        assert s.passed is None and "target tokens predicted" in s.detail
    metrics = scorer_metrics(scorer, together)
    agg = metrics["token_accuracy.perplexity"]
    tokens = sum(s.extra["target_tokens"] for s in together)
    total = sum(s.extra["nll_sum"] for s in together) / tokens
    assert agg["value"] == pytest.approx(math.exp(total))
    assert agg["ci_low"] <= agg["value"] <= agg["ci_high"] and agg["higher_is_better"] is False
    # pooled over tokens: exp(nll) is the perplexity, accuracy is hits / tokens
    nll = metrics["token_accuracy.nll"]
    assert math.exp(nll["value"]) == pytest.approx(agg["value"], rel=1e-12)
    assert math.exp(nll["ci_low"]) == pytest.approx(agg["ci_low"], rel=1e-12)
    assert metrics["token_accuracy"]["value"] == pytest.approx(sum(s.extra["hits"] for s in together) / tokens)
    assert {m["kind"] for m in (agg, nll, metrics["token_accuracy"])} == {"pooled"}
    assert metrics["token_accuracy"]["higher_is_better"] is True and nll["higher_is_better"] is False
    # the items differ in length, so the pooled values are not the means of item values
    mean_nll = sum(s.metrics["nll"] for s in together) / len(together)
    assert nll["value"] != pytest.approx(mean_nll, rel=1e-6)


def test_the_models_own_greedy_continuation_is_predicted(fixture_base):
    tok = fixture_base.tokenizer
    context = encode_prompt(tok, "Tell me about the platform.", "chat")
    ids = list(context)
    for _ in range(12):
        ids.append(int(mx.argmax(fixture_base.model(mx.array([ids]))[0, -1]).item()))
    text = tok.decode(ids[len(context):])
    if tok.encode(text, add_special_tokens=False) != ids[len(context):]:
        pytest.fail("the greedy continuation does not re-encode to itself; pick another prompt")
    item = items_for(fixture_base, [("Tell me about the platform.", text)])[0]
    s = REGISTRY["token_accuracy"]({}).score_all([item], fixture_base)[0]
    n = len(encode_completion(tok, text))
    assert s.value >= (n - 1) / n  # every token but (maybe) the final EOS


def test_items_without_target_or_prompt_tokens_get_no_value(fixture_base):
    case = Case(id="x", index=0, category=None, record={}, prompt="p", target=None)
    no_target = Item(case=case, output="", finish_reason="stop", stats={"prompt_token_ids": [1, 2]})
    case2 = Case(id="y", index=1, category=None, record={}, prompt="p", target="t")
    no_prompt = Item(case=case2, output="", finish_reason="stop", stats={})
    a, b = REGISTRY["token_accuracy"]({}).score_all([no_target, no_prompt], fixture_base)
    assert a.value is None and "no target" in a.detail
    assert b.value is None and "no prompt tokens" in b.detail
    assert REGISTRY["token_accuracy"].needs_model is True
