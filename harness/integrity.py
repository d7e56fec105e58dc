"""Generation integrity: does the engine's KV-cached decoding see the whole context?

A generation loop that feeds only the newest token without its cache (or reuses a stale
cache) writes plausible-looking text that ignores the prompt. To catch it, the tokens
the engine produced greedily are compared with a reference that recomputes the full
context from scratch at every step (no cache at all): the two must agree token for token.
Near-ties between the top two logits are tolerated, since cached and uncached attention
round differently: by how much depends on the weights' precision (``tie_tolerance``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .prefix import SharedPrefixes

TIE_TOLERANCE = 1e-3  # the allowance's floor (a float32 model's rounding is far below it)
# The allowance in units of the weights' rounding (their lowest-precision float dtype's
# machine epsilon) times the step's largest |logit|. Measured through the eval on bfloat16
# copies of the fixture model, 24 sampled items x 48 tokens per suite on four suites: the
# engine and the recomputation disagreed at margins of at most 1.5 (bf16 + adapter) and 3.5
# (4-bit with bf16 scales + adapter) such units; a loop that drops the context disagrees by
# at least 85 on every prompt (median 121-142). 16 leaves 4x room on both sides.
TIE_ROUNDING_UNITS = 16


@dataclass
class IntegrityResult:
    checked: int
    passed: bool
    detail: str

    def to_json(self) -> dict:
        return {"checked": self.checked, "passed": self.passed, "detail": self.detail}


def reference_logits(model: Any, prompt_ids: list[int], tokens: list[int],
                     prefix: tuple[int, list] | None = None) -> Any:
    """Logits for each generated position, from the full context, with no KV cache.

    Causal attention makes position t of one uncached forward pass over prompt + tokens
    exactly the recomputation of the whole context at step t, so one pass checks every step.
    ``prefix`` = (n, cache): start from a copy of the first n prompt tokens' shared-prefix
    cache (computed once, outside the engine's batches) and recompute everything after it.
    """
    import mlx.core as mx

    sequence = list(prompt_ids) + list(tokens[:-1])
    start, cache = prefix if prefix else (0, None)
    logits = model(mx.array([sequence[start:]]), cache=cache)[0, len(prompt_ids) - 1 - start:]
    logits = logits.astype(mx.float32)
    mx.eval(logits)
    return logits


def rounding_unit(model: Any) -> tuple[float, str]:
    """Machine epsilon of the lowest-precision float dtype among the model's parameters,
    and its name: bfloat16 2^-7 (a bf16 model, or 4-bit weights with bf16 scales, even with
    a float32 adapter on top), float16 2^-10, float32 2^-23."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    dtypes = {v.dtype for _, v in tree_flatten(model.parameters())
              if isinstance(v, mx.array) and mx.issubdtype(v.dtype, mx.floating)}
    if not dtypes:
        return float(mx.finfo(mx.float32).eps), "float32"
    coarsest = max(dtypes, key=lambda d: mx.finfo(d).eps)
    return float(mx.finfo(coarsest).eps), str(coarsest).rsplit(".", 1)[-1]


def tie_tolerance(largest_logit: float, unit: float, units: float | None = None) -> float:
    """How far apart two logits may be and still count as a near-tie at a step whose
    largest |logit| is ``largest_logit``, for weights whose rounding unit is ``unit``
    (``units`` of it: a caller that must be stricter, such as --parity, passes fewer)."""
    return max(TIE_TOLERANCE, (TIE_ROUNDING_UNITS if units is None else units) * unit * largest_logit)


def compare(model: Any, prompt_ids: list[int], engine_tokens: list[int],
            prefix: tuple[int, list] | None = None,
            rounding: tuple[float, str] | None = None, units: float | None = None) -> str | None:
    """None if the engine's greedy tokens match the full-context reference, else why not.

    Every step is checked: the reference is computed on the engine's own tokens, so a
    near-tie at one step (both choices right) says nothing about the next ones.
    ``rounding``: ``rounding_unit(model)``, when the caller has it already; ``units``: the
    allowance in those units (``tie_tolerance``; default ``TIE_ROUNDING_UNITS``)."""
    if not engine_tokens:
        return None
    import mlx.core as mx

    unit, dtype = rounding or rounding_unit(model)
    logits = reference_logits(model, prompt_ids, engine_tokens, prefix)
    choices = mx.argmax(logits, axis=-1).tolist()
    largest = mx.max(mx.abs(logits), axis=-1).tolist()
    for step, (ref_token, got) in enumerate(zip(choices, engine_tokens)):
        if ref_token == got:
            continue
        margin = float(logits[step, ref_token].item() - logits[step, got].item())
        allowed = tie_tolerance(largest[step], unit, units)
        if margin <= allowed:
            continue  # a near-tie: both continuations are correct greedy choices
        return (f"step {step}: cached decoding chose token {got}, full-context recomputation "
                f"chose {ref_token} (logit margin {margin:.4f}; a {dtype} model's rounding allows "
                f"{allowed:.4g} here)")
    return None


GreedyFn = Callable[[Any, Any, list[list[int]], int], list[list[int]]]


def check(model: Any, tokenizer: Any, prompts: list[list[int]], engine_tokens: list[list[int]],
          max_tokens: int, prefixes: "SharedPrefixes | None" = None) -> IntegrityResult:
    """Compare the engine's greedy outputs (token ids, EOS appended where it stopped on one).

    With the engine's ``prefixes`` (for these prompts), the first item under each shared
    prefix is recomputed in full, which checks that prefix's cache itself; the others
    start from a copy of it, so a long shared system prompt is not recomputed for every
    sampled item.
    """
    seen: set[int] = set()
    rounding = rounding_unit(model)
    for i, (prompt, tokens) in enumerate(zip(prompts, engine_tokens)):
        prefix = None
        shared = prefixes.length(i) if prefixes is not None else 0
        if shared in seen:
            prefix = (shared, prefixes.cache(i))
        elif shared:
            seen.add(shared)
        problem = compare(model, prompt, tokens[:max_tokens], prefix, rounding)
        if problem:
            return IntegrityResult(len(prompts), False,
                                   f"sample {i}: {problem}; the generation loop is dropping or corrupting context")
    return IntegrityResult(len(prompts), True,
                           f"{len(prompts)} prompts: cached greedy decoding matches full recomputation")


def check_generator(model: Any, tokenizer: Any, prompts: list[list[int]], max_tokens: int,
                    greedy: GreedyFn) -> IntegrityResult:
    """Run ``greedy(model, tokenizer, prompts, max_tokens)`` and check what it produced."""
    return check(model, tokenizer, prompts, greedy(model, tokenizer, prompts, max_tokens), max_tokens)


def sample_indices(n_items: int, samples: int) -> list[int]:
    """Evenly spread items (deterministic), so short and long prompts both get checked."""
    if samples <= 0 or n_items == 0:
        return []
    samples = min(samples, n_items)
    step = n_items / samples
    return sorted({int(i * step) for i in range(samples)})
