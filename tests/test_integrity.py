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


# --- near-ties and the weights' precision ---------------------------------------------------

@pytest.fixture(scope="module")
def bf16_with_adapter():
    """The fixture model in bfloat16 (as real MLX models ship) with the fixture `sql` adapter
    (float32 LoRA weights on top, as a QLoRA or bf16 fine-tune has), and 32 WikiSQL prompts."""
    import json

    from mlx_lm.tuner.utils import load_adapters

    from conftest import FIXTURE_MODEL, ROOT
    from harness.models import load_base

    base = load_base(str(FIXTURE_MODEL))  # its own copy: the session's fixture_base stays float32
    base.model.set_dtype(mx.bfloat16)
    load_adapters(base.model, str(ROOT / "fixtures" / "adapters" / "sql"))
    lines = (ROOT / "suites" / "data" / "wikisql_valid.jsonl").read_text().splitlines()[:32]
    prompts = [encode_prompt(base.tokenizer, json.loads(line)["text"].rsplit("A:", 1)[0] + "A:", "raw")
               for line in lines]
    return base, prompts


def test_rounding_unit_is_the_coarsest_float_dtype(bf16_with_adapter, fixture_base):
    base, _ = bf16_with_adapter
    assert integrity.rounding_unit(base.model) == (2 ** -7, "bfloat16")  # float32 LoRA on bf16 weights
    assert integrity.rounding_unit(fixture_base.model) == (2 ** -23, "float32")


def test_bf16_engine_passes_on_one_ulp_ties(bf16_with_adapter, monkeypatch):
    """The real engine on a bf16 model disagrees with the recomputation on 1-ulp ties
    (margin 0.125 at a largest logit near 10): not a context bug, and not a failed gate."""
    base, prompts = bf16_with_adapter
    result = integrity.check_generator(base.model, base.tokenizer, prompts, 48, engine_greedy)
    assert result.passed, result.detail
    # the prompts do hit such ties: with float32's allowance alone the same check fails
    monkeypatch.setattr(integrity, "TIE_ROUNDING_UNITS", 0)
    result = integrity.check_generator(base.model, base.tokenizer, prompts, 48, engine_greedy)
    assert not result.passed and "bfloat16" in result.detail


def test_bf16_context_dropping_loop_is_still_caught(bf16_with_adapter):
    base, prompts = bf16_with_adapter
    result = integrity.check_generator(base.model, base.tokenizer, prompts[:4], 16, context_dropping_greedy)
    assert not result.passed
    assert "full-context recomputation" in result.detail


class FixedLogits:
    """A stand-in model: the given logits at the generated positions, weights of ``dtype``."""

    def __init__(self, steps: list[list[float]], dtype):
        self.steps, self.dtype = steps, dtype

    def parameters(self):
        return {"w": mx.zeros((2,), dtype=self.dtype)}

    def __call__(self, x, cache=None):
        n, vocab = x.shape[1], len(self.steps[0])
        rows = [[0.0] * vocab] * (n - len(self.steps)) + self.steps
        return mx.array([rows]).astype(self.dtype)


@pytest.mark.parametrize("dtype,margin,passes", [
    (mx.bfloat16, 0.0625, True),    # 1 ulp at 12.875: a tie
    (mx.float32, 0.0625, False),    # the same gap in float32 is a real disagreement
    (mx.bfloat16, 3.0, False),      # beyond 16 * 2^-7 * 12.875 = 1.61
    (mx.float16, 0.125, True),      # float16 allows 16 * 2^-10 * 12.875 = 0.20
    (mx.float16, 0.5, False),
])
def test_allowance_scales_with_the_weights_precision(dtype, margin, passes):
    model = FixedLogits([[12.875, 12.875 - margin, 0.0, 0.0]], dtype)
    problem = integrity.compare(model, [5, 6, 7], [1])  # the engine chose the runner-up
    assert (problem is None) == passes, problem


def test_a_near_tie_does_not_end_the_check():
    """The recomputation runs on the engine's own tokens, so every later step is checked."""
    model = FixedLogits([[12.875, 12.8125, 0.0, 0.0],      # step 0: a 1-ulp tie, engine took 1
                         [0.0, 0.0, 12.0, 0.0],             # step 1: agree (token 2)
                         [12.0, 0.0, 0.0, 1.0]], mx.bfloat16)  # step 2: engine took 3, 11 below
    problem = integrity.compare(model, [5, 6], [1, 2, 3])
    assert problem is not None and problem.startswith("step 2:"), problem
