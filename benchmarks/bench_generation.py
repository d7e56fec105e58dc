"""Generation throughput of `harness eval` against mlx-lm, side by side in one run.

On the fixture model with N prompts (default 64), the same token ids and max_tokens:
  (a) a plain loop of ``mlx_lm.generate``, one prompt at a time;
  (b) raw ``mlx_lm.batch_generate``;
  (h) the harness's eval path (``runner.generate_suite``: render, generate, integrity check), uncached;
  (c) the same, re-run from a warm completion cache.
Prints tokens/s of each and the ratios the project targets:
  h/a >= 5x, h/b >= 0.9x (at most 10% slower), uncached/cached time >= 20x.
Absolute numbers on shared machines are noise; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from mlx_lm import batch_generate, generate as mlx_generate

    from harness.blas import blas_in_use
    from harness.cache import CompletionCache
    from harness.models import load_base
    from harness.runner import generate_suite
    from harness.case import Case
    from harness.generation import GenerationConfig
    from harness.suite import Suite

    base = load_base(str(ROOT / "fixtures" / "model"))
    questions = [f"Question {i}: which service listens on port {8000 + i} and why?" for i in range(args.prompts)]
    cases = [Case(id=str(i), index=i, category=None, record={}, prompt=q, target=None) for i, q in enumerate(questions)]
    gen = GenerationConfig(max_tokens=args.max_tokens)
    suite = Suite(name="bench", description="", path=ROOT / "suites" / "bench.yaml", template="chat", system=None,
                  generation=gen, scorers=[], gates={}, cases=cases, fingerprint="bench", data_fingerprint="bench")
    from harness.prompts import encode_prompt

    prompts = [encode_prompt(base.tokenizer, q, "chat") for q in questions]
    tokens_out = {}

    def plain_loop():
        n = 0
        for p in prompts:
            text = mlx_generate(base.model, base.tokenizer, p, max_tokens=args.max_tokens)
            n += len(base.tokenizer.encode(text, add_special_tokens=False))
        tokens_out["a"] = n

    def raw_batch():
        r = batch_generate(base.model, base.tokenizer, prompts, max_tokens=args.max_tokens, return_token_ids=True)
        tokens_out["b"] = sum(len(t) for t in r.token_ids)

    def harness_uncached():
        completions, _ = generate_suite(suite, base, base.fingerprint, None, None, live=False)
        tokens_out["h"] = sum(c.output_tokens for c in completions)

    with tempfile.TemporaryDirectory() as tmp:
        cache = CompletionCache(tmp)

        def harness_cached():
            generate_suite(suite, base, base.fingerprint, None, cache, live=False)

        harness_cached()  # fill the cache
        raw_batch()  # warm-up (compile, allocate)
        t_a = best_of(plain_loop, 1)
        t_b, t_h = float("inf"), float("inf")
        for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits both
            t_b = min(t_b, best_of(raw_batch, 1))
            t_h = min(t_h, best_of(harness_uncached, 1))
        # The integrity check still runs on a cached re-run (it checks the engine, not the cache).
        t_c = statistics.median([best_of(harness_cached, 1) for _ in range(args.repeats)])
        cache.close()

    tps = {k: tokens_out[k] / t for k, t in (("a", t_a), ("b", t_b), ("h", t_h))}
    print(f"\ngeneration benchmark: fixture model, {args.prompts} prompts, max_tokens={args.max_tokens}, "
          f"BLAS: {blas_in_use()}")
    print(f"  (a) mlx_lm.generate loop     {tps['a']:9.0f} tok/s  ({t_a:.3f} s)")
    print(f"  (b) mlx_lm.batch_generate    {tps['b']:9.0f} tok/s  ({t_b:.3f} s)")
    print(f"  (h) harness eval, uncached   {tps['h']:9.0f} tok/s  ({t_h:.3f} s)")
    print(f"  (c) harness eval, cached                     ({t_c:.3f} s)")
    print(f"  ratio harness / plain loop      {tps['h'] / tps['a']:6.2f}x   (target >= 5x)")
    print(f"  ratio harness / batch_generate  {tps['h'] / tps['b']:6.2f}x   (target >= 0.90x)")
    print(f"  ratio uncached / cached time    {t_h / t_c:6.1f}x   (target >= 20x)")


if __name__ == "__main__":
    main()
