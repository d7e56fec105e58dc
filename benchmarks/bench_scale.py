"""`harness eval` against raw `mlx_lm.batch_generate` on a model big enough to speak for real ones.

A llama of ~26M parameters (8 layers, width 512, the fixture tokenizer, seeded random
weights) is built at bench time in a temporary folder (nothing large is committed). Whole
processes are timed side by side, interleaved, best of ``repeats``:

  prefix  48 prompts x 48 new tokens behind a ~900-token shared system prompt
          (target: harness >= 5x batch_generate, same outputs on >= 80% of items)
  short   the same 48 questions without it (target: harness >= 0.95x batch_generate)
  cached  the prefix-heavy suite's generation path uncached vs from a warm cache,
          in-process (target >= 20x), and the whole cached process for reference
  adapters base alone vs base + 1 and + 2 random LoRA adapters: cost per extra adapter
          against the cost of the base alone (in-process ``run_eval``, short prompts)

``measure(...)`` returns every number as a dict (for pytest-benchmark wrappers);
``python benchmarks/bench_scale.py`` prints them as a table of ratios.
Absolute numbers on shared machines are noise; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = 20261203
N_PROMPTS = 48
MAX_TOKENS = 48
SYSTEM_TOKENS = 900
MODEL_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 8,
    "num_attention_heads": 8, "num_key_value_heads": 8, "head_dim": 64,
    "vocab_size": 1024, "max_position_embeddings": 4096, "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": True,
    "attention_bias": False, "mlp_bias": False, "bos_token_id": 1, "eos_token_id": 2,
    "pad_token_id": 0, "torch_dtype": "float32",
}

PEER = """\
import json, sys
from mlx_lm import batch_generate, load
model, tokenizer = load(sys.argv[1])
prompts = json.load(open(sys.argv[2]))
r = batch_generate(model, tokenizer, prompts, max_tokens=int(sys.argv[3]))
json.dump(r.texts, open(sys.argv[4], "w"))
"""


def build_model(out: Path, seed: int = SEED) -> int:
    """A seeded random-weight llama with the fixture tokenizer in ``out``; returns its parameter count."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    out.mkdir(parents=True, exist_ok=True)
    for f in (ROOT / "fixtures" / "model").iterdir():
        if f.name not in ("model.safetensors", "config.json"):
            shutil.copy(f, out / f.name)
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(MODEL_CONFIG))
    weights = dict(tree_flatten(model.parameters()))
    mx.eval(weights)
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out / "config.json").write_text(json.dumps(MODEL_CONFIG, indent=2))
    return sum(v.size for v in weights.values())


def make_adapter(model_dir: Path, out: Path, seed: int) -> Path:
    """A random rank-8 LoRA adapter on every layer's q/v projections (mlx-lm format)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load

    model, _ = load(str(model_dir))
    params = {"rank": 8, "scale": 2.0, "dropout": 0.0, "keys": ["self_attn.q_proj", "self_attn.v_proj"]}
    layers = MODEL_CONFIG["num_hidden_layers"]
    linear_to_lora_layers(model, layers, params)
    mx.random.seed(seed)
    weights = {k: mx.random.normal(v.shape) * 0.02 for k, v in tree_flatten(model.trainable_parameters())
               if k.endswith(("lora_a", "lora_b"))}
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    (out / "adapter_config.json").write_text(json.dumps(
        {"fine_tune_type": "lora", "num_layers": layers, "lora_parameters": params}))
    return out


def system_prompt(tokenizer, n_tokens: int = SYSTEM_TOKENS) -> str:
    """Deterministic operating instructions of about ``n_tokens`` tokens."""
    facts = [f"Rule {i}: service {name} on port {8000 + 11 * i} restarts after {i % 7 + 1} failed checks, "
             f"logs to /var/log/{name}.log and pages the {team} team."
             for i, (name, team) in enumerate((n, t) for n in ("gateway", "billing", "search", "auth", "queue",
                                                              "cache", "mailer", "scheduler", "reports", "export")
                                              for t in ("platform", "data", "payments"))]
    text = "You are the on-call assistant for the platform team. Answer in one short sentence.\n"
    for fact in facts:
        if len(tokenizer.encode(text + fact + "\n", add_special_tokens=False)) > n_tokens:
            break
        text += fact + "\n"
    return text


def questions(n: int = N_PROMPTS) -> list[str]:
    return [f"Question {i}: which team is paged when the service on port {8000 + 11 * i} fails?" for i in range(n)]


def write_suite(path: Path, name: str, system: str | None, max_tokens: int = MAX_TOKENS,
                n_prompts: int = N_PROMPTS) -> Path:
    import yaml

    suite = {"name": name, "prompt": "{{ question }}", "template": "chat",
             "generation": {"max_tokens": max_tokens, "temperature": 0.0},
             "scorers": [{"repetition": {}}], "gates": {},
             "cases": [{"id": f"q{i}", "question": q} for i, q in enumerate(questions(n_prompts))]}
    if system:
        suite["system"] = system
    path.write_text(yaml.safe_dump(suite, sort_keys=False, width=10_000))
    return path


def _cpu_children() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(cmd: list[str], env: dict, cpu: list[float] | None = None) -> float:
    """Wall seconds of one whole process; its CPU seconds (user + system) go to ``cpu``."""
    c0, t0 = _cpu_children(), time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(_cpu_children() - c0)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed


def _side_by_side(model: Path, suite: Path, prompts: list[list[int]], work: Path, env: dict,
                  repeats: int, max_tokens: int, copied: bool = False) -> dict:
    """Whole processes: raw batch_generate vs harness eval (no cache), interleaved.

    ``copied``: also time harness eval with cascade attention off (``HARNESS_CASCADE=0``:
    each row reads its own copy of the shared prefix), the engine before cascade attention.
    Wall and CPU seconds (user + system of the process) are both kept: on a loaded
    machine the CPU ratio is the steadier reading."""
    (work / "prompts.json").write_text(json.dumps(prompts))
    (work / "peer.py").write_text(PEER)
    peer = [sys.executable, str(work / "peer.py"), str(model), str(work / "prompts.json"), str(max_tokens),
            str(work / "peer.json")]
    harness = [sys.executable, "-m", "harness.cli", "eval", str(suite), "--model", str(model),
               "--out", str(work / "out"), "--no-cache", "--quiet"]
    t_peer, t_harness, t_copied = [], [], []
    c_peer: list[float] = []
    c_harness: list[float] = []
    c_copied: list[float] = []
    for _ in range(repeats):
        t_peer.append(_timed(peer, env, c_peer))
        t_harness.append(_timed(harness, env, c_harness))
        if copied:
            t_copied.append(_timed(harness[:-3] + [str(work / "out-copied")] + harness[-2:],
                                   dict(env, HARNESS_CASCADE="0"), c_copied))
    theirs = json.loads((work / "peer.json").read_text())

    def outputs(out: str) -> list[str]:
        return [i["output"] for i in json.loads((work / out / "results.json").read_text())["suites"][0]
                ["models"]["base"]["items"]]

    ours = outputs("out")
    same = sum(a == b for a, b in zip(theirs, ours)) / len(ours)
    r = {"batch_generate_s": min(t_peer), "harness_s": min(t_harness),
         "ratio": min(t_peer) / min(t_harness), "same_outputs": same,
         "batch_generate_cpu_s": min(c_peer), "harness_cpu_s": min(c_harness),
         "cpu_ratio": min(c_peer) / min(c_harness)}
    if copied:
        r.update({"copied_s": min(t_copied), "copied_ratio": min(t_peer) / min(t_copied),
                  "copied_cpu_s": min(c_copied), "copied_cpu_ratio": min(c_peer) / min(c_copied),
                  "copied_same_outputs": sum(a == b for a, b in zip(theirs, outputs("out-copied"))) / len(ours)})
    return r


PARTS = ("prefix", "short", "cached", "adapters")


def measure(repeats: int = 2, n_prompts: int = N_PROMPTS, max_tokens: int = MAX_TOKENS,
            system_tokens: int = SYSTEM_TOKENS, work: Path | None = None,
            parts: tuple[str, ...] = PARTS, with_copied: bool = False) -> dict:
    """Build the model and suites, run the comparisons in ``parts``, return the numbers."""
    from harness.blas import preload_env
    from harness.models import load_base
    from harness.prompts import encode_prompt

    own_tmp = work is None
    work = Path(tempfile.mkdtemp(prefix="bench-scale-")) if own_tmp else work
    try:
        model = work / "model"
        params = build_model(model)
        base = load_base(str(model))
        system = system_prompt(base.tokenizer, system_tokens)
        env = preload_env(dict(os.environ, HARNESS_CACHE_DIR=str(work / "cache")))
        results: dict = {"parameters": params, "prompts": n_prompts, "max_tokens": max_tokens}
        for name, sys_text in (("prefix", system), ("short", None)):
            suite = write_suite(work / f"{name}.yaml", name, sys_text, max_tokens, n_prompts)
            if name not in parts:
                continue
            prompts = [encode_prompt(base.tokenizer, q, "chat", sys_text) for q in questions(n_prompts)]
            (work / name).mkdir()
            results[name] = _side_by_side(model, suite, prompts, work / name, env, repeats, max_tokens,
                                          copied=name == "prefix" and with_copied)
            results[name]["prompt_tokens"] = round(statistics.mean(len(p) for p in prompts))

        if "cached" in parts:
            results["cached"] = _cached(work, model, base, env, repeats)
        if "adapters" in parts:
            results["adapters"] = _adapters(work, model, repeats)
        return results
    finally:
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)


def _cached(work: Path, model: Path, base, env: dict, repeats: int) -> dict:
    from harness.cache import CompletionCache
    from harness.runner import generate_suite
    from harness.suite import load_suite

    # Cached re-run: the generation path in-process (what a cache hit saves) ...
    suite = load_suite(work / "prefix.yaml")
    cache = CompletionCache(work / "incache")
    t0 = time.perf_counter()
    generate_suite(suite, base, base.fingerprint, None, cache, live=False)
    uncached = time.perf_counter() - t0
    cached = []
    for _ in range(5):
        t0 = time.perf_counter()
        out, _ = generate_suite(suite, base, base.fingerprint, None, cache, live=False)
        cached.append(time.perf_counter() - t0)
        assert all(c.cached for c in out)
    cache.close()
    # ... and whole processes, for reference (imports and model load included).
    cmd = [sys.executable, "-m", "harness.cli", "eval", str(work / "prefix.yaml"), "--model", str(model),
           "--out", str(work / "cached-out"), "--quiet", "--cache-dir", str(work / "pcache")]
    first = _timed(cmd, env)
    again = min(_timed(cmd, env) for _ in range(repeats))
    return {"uncached_s": uncached, "cached_s": statistics.median(cached),
            "ratio": uncached / statistics.median(cached),
            "process_uncached_s": first, "process_cached_s": again, "process_ratio": first / again}


def _adapters(work: Path, model: Path, repeats: int) -> dict:
    """What each extra adapter costs against the base alone (in-process, interleaved, best of)."""
    from harness.runner import ModelSpec, run_eval

    adapters = [ModelSpec(f"a{k}", make_adapter(model, work / f"adapter{k}", SEED + k)) for k in (1, 2)]
    short = [work / "short.yaml"]
    times: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for _ in range(repeats):
        for k in (0, 1, 2):
            t0 = time.perf_counter()
            run_eval(short, str(model), adapters[:k], use_cache=False, quiet=True)
            times[k].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    return {"base_s": best[0], "one_s": best[1], "two_s": best[2],
            "per_extra_adapter_s": (best[2] - best[0]) / 2,
            "per_extra_vs_base": (best[2] - best[0]) / 2 / best[0]}


def report(r: dict) -> str:
    lines = [f"\nscale benchmark: llama {r['parameters'] / 1e6:.1f}M parameters (8 x 512), {r['prompts']} prompts x "
             f"{r['max_tokens']} new tokens, whole processes side by side"]
    p, s, c, a = (r.get(k) for k in PARTS)
    if p:
        lines.append(
        f"  prefix-heavy ({p['prompt_tokens']} prompt tokens): batch_generate {p['batch_generate_s']:7.2f} s   "
        f"harness eval {p['harness_s']:7.2f} s   ratio {p['ratio']:5.2f}x (target >= 5x), "
        f"same outputs {100 * p['same_outputs']:.0f}% (>= 80%); CPU {p['batch_generate_cpu_s']:.1f} s vs "
        f"{p['harness_cpu_s']:.1f} s: {p['cpu_ratio']:.2f}x")
        if "copied_s" in p:
            lines.append(
            f"    cascade attention off (HARNESS_CASCADE=0): harness eval {p['copied_s']:7.2f} s   ratio "
            f"{p['copied_ratio']:5.2f}x, same outputs {100 * p['copied_same_outputs']:.0f}%; CPU "
            f"{p['copied_cpu_s']:.1f} s: {p['copied_cpu_ratio']:.2f}x")
    if s:
        lines.append(
        f"  short prompts ({s['prompt_tokens']} prompt tokens): batch_generate {s['batch_generate_s']:7.2f} s   "
        f"harness eval {s['harness_s']:7.2f} s   ratio {s['ratio']:5.2f}x (target >= 0.95x), "
        f"same outputs {100 * s['same_outputs']:.0f}%; CPU {s['cpu_ratio']:.2f}x")
    if c:
        lines.append(
        f"  cached re-run (generation path): {c['uncached_s']:.3f} s uncached, {c['cached_s']:.4f} s cached: "
        f"{c['ratio']:.0f}x (target >= 20x); whole process {c['process_uncached_s']:.2f} s -> "
        f"{c['process_cached_s']:.2f} s ({c['process_ratio']:.1f}x)")
    if a:
        lines.append(
        f"  adapters (short suite, in-process): base alone {a['base_s']:.2f} s, +1 {a['one_s']:.2f} s, "
        f"+2 {a['two_s']:.2f} s: {a['per_extra_adapter_s']:.2f} s per extra adapter "
        f"({a['per_extra_vs_base']:.2f}x the base alone)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=N_PROMPTS)
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="run only these parts")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--with-copied", action="store_true",
                        help="prefix part: also time harness eval with cascade attention off")
    args = parser.parse_args()
    r = measure(args.repeats, args.prompts, args.max_tokens, parts=tuple(args.only), with_copied=args.with_copied)
    print(report(r))
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
