"""`harness eval` against raw `mlx_lm.batch_generate` on a model big enough to speak for real ones.

A llama of ~26M parameters (8 layers, width 512, the fixture tokenizer, seeded random
weights) is built at bench time in a temporary folder (nothing large is committed). Whole
processes are timed side by side, interleaved, best of ``repeats``:

  prefix  48 prompts x 48 new tokens behind a ~900-token shared system prompt
          (target: harness >= 5x batch_generate, same outputs on >= 80% of items)
  short   the same 48 questions without it (target: harness >= 0.95x batch_generate)
  cached  the prefix-heavy suite's generation path uncached vs from a warm cache,
          in-process (target >= 20x), and the whole cached process for reference
          (per repeat back to back; median of the per-repeat ratios)
  adapters base alone vs base + 1 and + 2 random LoRA adapters: cost per extra adapter
          against the cost of the base alone (in-process ``run_eval``, short prompts,
          order rotated per repeat; median over repeats)

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
    "vocab_size": 1536, "max_position_embeddings": 4096, "rms_norm_eps": 1e-05,
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
            parts: tuple[str, ...] = PARTS, with_copied: bool = False, steady_repeats: int = 3) -> dict:
    """Build the model and suites, run the comparisons in ``parts``, return the numbers.

    ``repeats``: whole-process side-by-side pairs (prefix, short); ``steady_repeats``: the
    cached and adapter parts, reported as medians of per-repeat ratios."""
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
            results["cached"] = _cached(work, model, base, env, steady_repeats)
        if "adapters" in parts:
            results["adapters"] = _adapters(work, model, steady_repeats)
        return results
    finally:
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds since ``t`` (CPU: this process, all its threads)."""
    return time.perf_counter() - t[0], time.process_time() - t[1]


def _median_ratio(pairs: list[tuple[float, float]]) -> float:
    """Median of per-repeat ratios a / b: each pair ran back to back, under the same load."""
    return statistics.median(a / b for a, b in pairs)


def _cached(work: Path, model: Path, base, env: dict, repeats: int) -> dict:
    """Cached re-run vs uncached, on the prefix-heavy suite; per repeat, back to back:

    - the generation path in-process (``generate_suite``: prompts encoded, keys, cache
      lookup; what a cache hit saves): uncached into a fresh cache, then from it (median
      of 3 calls);
    - whole processes: ``harness eval`` into a fresh ``--cache-dir``, then again from it
      (imports, model load, scoring and reports included).
    Ratios are per repeat, then the median over repeats (wall and CPU)."""
    from harness.cache import CompletionCache
    from harness.runner import generate_suite
    from harness.suite import load_suite

    suite = load_suite(work / "prefix.yaml")
    inproc, proc = [], []
    for r in range(repeats):
        cache = CompletionCache(work / f"incache{r}")
        t = _clock()
        generate_suite(suite, base, base.fingerprint, None, cache, live=False)
        uncached = _since(t)
        again = []
        for _ in range(3):
            t = _clock()
            out, _ = generate_suite(suite, base, base.fingerprint, None, cache, live=False)
            again.append(_since(t))
            assert all(c.cached for c in out)
        cache.close()
        cached = (statistics.median(a[0] for a in again), statistics.median(a[1] for a in again))
        inproc.append((uncached, cached))
        cmd = [sys.executable, "-m", "harness.cli", "eval", str(work / "prefix.yaml"), "--model", str(model),
               "--out", str(work / "cached-out"), "--quiet", "--cache-dir", str(work / f"pcache{r}")]
        cpu: list[float] = []
        first = _timed(cmd, env, cpu)
        second = _timed(cmd, env, cpu)
        proc.append(((first, cpu[0]), (second, cpu[1])))
    med = statistics.median
    return {"repeats": repeats,
            "uncached_s": med(u[0] for u, _ in inproc), "cached_s": med(c[0] for _, c in inproc),
            "ratio": _median_ratio([(u[0], c[0]) for u, c in inproc]),
            "cpu_ratio": _median_ratio([(u[1], c[1]) for u, c in inproc]),
            "process_uncached_s": med(u[0] for u, _ in proc), "process_cached_s": med(c[0] for _, c in proc),
            "process_ratio": _median_ratio([(u[0], c[0]) for u, c in proc]),
            "process_uncached_cpu_s": med(u[1] for u, _ in proc), "process_cached_cpu_s": med(c[1] for _, c in proc),
            "process_cpu_ratio": _median_ratio([(u[1], c[1]) for u, c in proc])}


def _adapters(work: Path, model: Path, repeats: int) -> dict:
    """What each extra adapter costs against the base alone: in-process ``run_eval`` of the
    short suite (no cache) with 0, 1 and 2 random LoRA adapters, the order rotated each
    repeat (0,1,2 / 1,2,0 / 2,0,1) so a load swing does not always land on the same one.
    Per repeat: per extra adapter = (t2 - t0) / 2, against t0; then the median over repeats."""
    from harness.runner import ModelSpec, run_eval

    adapters = [ModelSpec(f"a{k}", make_adapter(model, work / f"adapter{k}", SEED + k)) for k in (1, 2)]
    short = [work / "short.yaml"]
    rows = []
    for r in range(repeats):
        row: dict[int, tuple[float, float]] = {}
        for k in [(r + j) % 3 for j in range(3)]:
            t = _clock()
            run_eval(short, str(model), adapters[:k], use_cache=False, quiet=True)
            row[k] = _since(t)
        rows.append(row)
    med = statistics.median

    def extra(row: dict, i: int) -> float:
        return (row[2][i] - row[0][i]) / 2

    return {"repeats": repeats,
            "base_s": med(row[0][0] for row in rows), "one_s": med(row[1][0] for row in rows),
            "two_s": med(row[2][0] for row in rows),
            "per_extra_adapter_s": med(extra(row, 0) for row in rows),
            "per_extra_vs_base": med(extra(row, 0) / row[0][0] for row in rows),
            "per_extra_adapter_cpu_s": med(extra(row, 1) for row in rows),
            "per_extra_vs_base_cpu": med(extra(row, 1) / row[0][1] for row in rows),
            "spread_vs_base": [round(extra(row, 0) / row[0][0], 3) for row in rows]}


def report(r: dict) -> str:
    """Every number of the run in one table: what was timed, the harness side, the
    reference side, the ratio on wall and on CPU seconds, and the target."""
    head = (f"\nscale benchmark: llama {r['parameters'] / 1e6:.1f}M parameters (8 x 512), {r['prompts']} prompts x "
            f"{r['max_tokens']} new tokens; whole processes side by side unless marked in-process")
    rows = [("measure", "harness", "reference", "wall", "CPU", "target")]
    p, s, c, a = (r.get(k) for k in PARTS)

    def x(v: float) -> str:
        return f"{v:.2f}x"

    if p:
        rows.append((f"prefix-heavy ({p['prompt_tokens']} prompt tokens) vs batch_generate",
                     f"{p['harness_s']:.2f} s", f"{p['batch_generate_s']:.2f} s", x(p["ratio"]), x(p["cpu_ratio"]),
                     f">= 5x; same outputs {100 * p['same_outputs']:.0f}% (>= 80%)"))
        if "copied_s" in p:
            rows.append(("  cascade attention off (HARNESS_CASCADE=0)", f"{p['copied_s']:.2f} s",
                         f"{p['batch_generate_s']:.2f} s", x(p["copied_ratio"]), x(p["copied_cpu_ratio"]),
                         f"same outputs {100 * p['copied_same_outputs']:.0f}%"))
    if s:
        rows.append((f"short prompts ({s['prompt_tokens']} prompt tokens) vs batch_generate",
                     f"{s['harness_s']:.2f} s", f"{s['batch_generate_s']:.2f} s", x(s["ratio"]), x(s["cpu_ratio"]),
                     f">= 0.95x; same outputs {100 * s['same_outputs']:.0f}%"))
        rows.append(("  short prompts: harness slower by", "", "", x(1 / s["ratio"]), x(1 / s["cpu_ratio"]),
                     "<= 1.15x (issue 11's check)"))
    if c:
        rows.append(("cached re-run, generation path (in-process)", f"{c['cached_s']:.4f} s",
                     f"{c['uncached_s']:.2f} s", f"{c['ratio']:.0f}x", f"{c['cpu_ratio']:.0f}x", ">= 20x"))
        rows.append(("cached re-run, whole process", f"{c['process_cached_s']:.2f} s",
                     f"{c['process_uncached_s']:.2f} s", f"{c['process_ratio']:.1f}x",
                     f"{c['process_cpu_ratio']:.1f}x", "for reference (imports, load)"))
    if a:
        rows.append(("per extra adapter vs base alone (in-process)", f"{a['per_extra_adapter_s']:.2f} s",
                     f"{a['base_s']:.2f} s", x(a["per_extra_vs_base"]), x(a["per_extra_vs_base_cpu"]),
                     f"cost shown; repeats {a['spread_vs_base']}"))
    reps = next((v["repeats"] for v in (c, a) if v and "repeats" in v), None)
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = [head + (f"; cached and adapter rows: medians of {reps} interleaved repeats" if reps else "")]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) if i in (0, 5) else cell.rjust(w)
                                      for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steady-repeats", type=int, default=3,
                        help="repeats of the cached and adapter parts (medians of per-repeat ratios)")
    parser.add_argument("--prompts", type=int, default=N_PROMPTS)
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="run only these parts")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--with-copied", action="store_true",
                        help="prefix part: also time harness eval with cascade attention off")
    args = parser.parse_args()
    r = measure(args.repeats, args.prompts, args.max_tokens, parts=tuple(args.only), with_copied=args.with_copied,
                steady_repeats=args.steady_repeats)
    print(report(r))
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
