"""Generation loops as users write them, for `harness check-generator` (the catalog's row a).

Each is ``fn(model, tokenizer, prompt_ids, max_tokens) -> token ids`` (greedy).
"""

from __future__ import annotations

import mlx.core as mx


def cached_loop(model, tokenizer, prompt_ids, max_tokens):
    """Right: prefill the prompt into a KV cache, then feed one token at a time with it."""
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    logits = model(mx.array([prompt_ids]), cache=cache)[0, -1]
    out = []
    for _ in range(max_tokens):
        token = int(mx.argmax(logits).item())
        out.append(token)
        if token in tokenizer.eos_token_ids:
            break
        logits = model(mx.array([[token]]), cache=cache)[0, -1]
    return out


def lost_context_loop(model, tokenizer, prompt_ids, max_tokens):
    """The bug: after the prompt, feed only the newest token, without its cache."""
    logits = model(mx.array([prompt_ids]))[0, -1]
    out = []
    for _ in range(max_tokens):
        token = int(mx.argmax(logits).item())
        out.append(token)
        if token in tokenizer.eos_token_ids:
            break
        logits = model(mx.array([[token]]))[0, -1]  # no cache: the prompt is gone
    return out
