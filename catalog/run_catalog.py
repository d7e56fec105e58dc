"""The field-failure catalog: each failure users meet in the field, reproduced on the fixture
world, then caught by the harness run as a user runs it (the `harness` CLI in a subprocess).

Each row makes the mistake the way a user would (trains a tiny adapter with `harness train`,
writes a generation loop, copies a suite and edits it, stores completions), runs the CLI,
and records what was done, which gate or check caught it, the exit code and the key
numbers. The table is printed; the exit code is 1 when any row is not caught.

    python catalog/run_catalog.py              # every row (nox -s catalog)
    python catalog/run_catalog.py --fast       # rows that train nothing (CI: tests/test_catalog.py)
    python catalog/run_catalog.py --only a,f   # some rows
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

ROOT = Path(__file__).resolve().parents[1]
MODEL = "fixtures/model"
ADAPTERS = ROOT / "fixtures" / "adapters"
TRAIN_CONFIG = "fixtures/train_configs/wikisql.yaml"


@dataclass
class Row:
    key: str
    failure: str
    done: str = ""
    caught_by: str = ""
    exit_code: int | None = None
    numbers: str = ""
    caught: bool = False
    seconds: float = 0.0


@dataclass
class Context:
    work: Path
    env: dict
    log: list[str] = field(default_factory=list)

    def harness(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        """`harness ARGS` as a user types it (from the project root)."""
        cmd = [sys.executable, "-m", "harness.cli", *args]
        done = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        self.log.append(f"$ harness {' '.join(args)}\n-> exit {done.returncode}\n{done.stdout[-1500:]}{done.stderr[-3000:]}")
        return done

    def path(self, *parts: str) -> Path:
        return self.work.joinpath(*parts)

    def train(self, name: str, data: Path, *overrides: str, allow_lint: bool = False) -> subprocess.CompletedProcess:
        """A tiny adapter, trained with `harness train` on the fixture base."""
        args = ["train", TRAIN_CONFIG, "--data", str(data), "--adapter_path", str(self.path("adapters", name)),
                "--save_every", "1000", "--report_every", "1000", *overrides]
        return self.harness(*(args + (["--allow-lint-errors"] if allow_lint else [])))

    def eval(self, suite: str | Path, out: str, *adapters: str, extra: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess, dict | None]:
        args = ["eval", str(suite), "--model", MODEL, "--out", str(self.path(out)), "--quiet", *extra]
        for spec in adapters:
            args += ["--adapter", spec]
        done = self.harness(*args)
        results = self.path(out, "results.json")
        return done, (json.loads(results.read_text()) if results.is_file() else None)


def last_line(done: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def failed_gates(results: dict | None, metric_prefix: str = "") -> list[dict]:
    return [g for s in (results or {}).get("suites", []) for g in s.get("gates", [])
            if not g["passed"] and g["metric"].startswith(metric_prefix)]


def all_warnings(results: dict | None) -> list[str]:
    r = results or {}
    return list(r.get("warnings") or []) + [w for s in r.get("suites", []) for w in s.get("warnings") or []]


def metric(results: dict | None, suite: str, model: str, name: str) -> float | None:
    for s in (results or {}).get("suites", []):
        if s["name"] == suite:
            info = ((s.get("models") or {}).get(model) or {}).get("metrics", {}).get(name)
            return None if info is None else info.get("value")
    return None


def num(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f}"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def suite_variant(ctx: Context, shipped: str, name: str, **changes) -> Path:
    """A user's copy of a shipped suite with some edits. The suites folder is copied
    whole into the work folder, so the copy's data and schema paths stay valid."""
    folder = ctx.path("suites")
    if not folder.is_dir():
        shutil.copytree(ROOT / "suites", folder)
    data = yaml.safe_load((folder / shipped).read_text())
    data.update(changes)
    data["name"] = name
    out = folder / f"{name}.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    ctx.log.append(f"(suite {out}: {shipped} with {changes})")
    return out


def fixture_adapter(name: str) -> Path | None:
    path = ADAPTERS / name
    return path if (path / "adapters.safetensors").is_file() else None


def sql_rows(split: str, n: int) -> list[dict]:
    rows = []
    for line in (ROOT / "fixtures" / "data" / "wikisql" / f"{split}.jsonl").read_text().splitlines()[:n]:
        prompt, answer = json.loads(line)["text"].split("\nA: ", 1)
        rows.append({"prompt": prompt + "\nA: ", "completion": answer})
    return rows


# --- the rows ----------------------------------------------------------------------

USER_PROCESS = """
import json, sys
sys.path.insert(0, "catalog")
from mlx_lm import load
from harness.generator_check import check_generator
from harness.prompts import encode_prompt
from user_generators import lost_context_loop

model, tokenizer = load("{model}")
prompts = ["Explain how a hash map works.", "What is a database index?"]
# the Python API, as a user's test would call it
report = check_generator(lambda ids, n: lost_context_loop(model, tokenizer, ids, n), model="{model}",
                         prompts=prompts, max_tokens=16, template="chat")
print("report.passed:", report.passed)
# what the loop wrote, with token ids, for `harness check-generator --completions`
with open("{out}", "w") as fh:
    for text in prompts:
        ids = encode_prompt(tokenizer, text, "chat")
        fh.write(json.dumps({{"prompt_token_ids": ids, "output_token_ids": lost_context_loop(model, tokenizer, ids, 16)}}) + "\\n")
"""


def row_a(ctx: Context, row: Row) -> None:
    loops = "catalog/user_generators.py"
    args = ["check-generator", "--model", MODEL, "--suite", "suites/smoke.yaml", "--limit", "4", "--max-tokens", "16"]
    good = ctx.harness(*args, "--generator", f"{loops}:cached_loop")
    bad = ctx.harness(*args, "--generator", f"{loops}:lost_context_loop")
    mism = bad.stdout.count("MISMATCH")
    # the same loop through the Python API, and what it wrote (token ids) checked from a file
    stored = ctx.path("a-outputs.jsonl")
    api = subprocess.run([sys.executable, "-c", USER_PROCESS.format(model=MODEL, out=stored)], cwd=ROOT, env=ctx.env,
                         capture_output=True, text=True, timeout=600)
    ctx.log.append(f"$ python -c <user process>\n-> exit {api.returncode}\n{api.stdout[-500:]}{api.stderr[-1500:]}")
    from_file = ctx.harness("check-generator", "--model", MODEL, "--completions", str(stored), "--max-tokens", "16")
    row.done = ("hand-written greedy loop feeding one token without its KV cache, checked with `harness "
                "check-generator --generator`, with the Python API `check_generator`, and from the token ids it "
                "wrote (`--completions`)")
    row.caught_by = "check-generator: full-context recomputation disagrees (gate)"
    row.exit_code = bad.returncode
    row.numbers = (f"{mism}/4 prompts mismatch; the KV-cached loop: exit {good.returncode}; Python API "
                   f"{api.stdout.strip().splitlines()[-1] if api.stdout.strip() else 'no output'}; "
                   f"from the stored token ids: exit {from_file.returncode}")
    row.caught = (bad.returncode == 1 and mism >= 1 and good.returncode == 0 and api.returncode == 0
                  and "report.passed: False" in api.stdout and from_file.returncode == 1)


def row_b(ctx: Context, row: Row) -> None:
    data = ROOT / "fixtures" / "data" / "wikisql"
    trained = ctx.train("b-scale0", data, "--steps", "3", "--eval_every", "3", "--lora_parameters.scale", "0")
    zero_b = ctx.path("adapters", "b-zero-b")  # the committed sql adapter with every lora_b zeroed
    shutil.copytree(ADAPTERS / "sql", zero_b)
    import mlx.core as mx

    weights = mx.load(str(zero_b / "adapters.safetensors"))
    mx.save_safetensors(str(zero_b / "adapters.safetensors"),
                        {k: (mx.zeros_like(v) if k.endswith("lora_b") else v) for k, v in weights.items()})
    suite = suite_variant(ctx, "smoke.yaml", "smoke-effect", checks={"adapter_effect": True})
    plain, results0 = ctx.eval("suites/smoke.yaml", "b-plain", f"noop={ctx.path('adapters', 'b-scale0')}", extra=("--no-cache",))
    done, results = ctx.eval(suite, "b-gated", f"noop={ctx.path('adapters', 'b-scale0')}", f"zero_b={zero_b}",
                             extra=("--no-cache",))
    warned = [w for w in all_warnings(results0) if "has no effect" in w]
    gates = failed_gates(results, "adapter_effect")
    effect = ((results or {}).get("models", {}).get("noop") or {}).get("logit_effect")
    # the other way to an adapter that changes nothing: keys naming modules the model lacks
    renamed = ctx.path("adapters", "b-renamed")
    shutil.copytree(ADAPTERS / "sql", renamed)
    cfg = json.loads((renamed / "adapter_config.json").read_text())
    cfg["lora_parameters"]["keys"] = [k.replace("self_attn.", "attn.") for k in cfg["lora_parameters"]["keys"]]
    (renamed / "adapter_config.json").write_text(json.dumps(cfg))
    wrong, _ = ctx.eval("suites/smoke.yaml", "b-renamed", f"renamed={renamed}")
    row.done = ("`harness train ... --lora_parameters.scale 0` (3 steps), evaluated on smoke; the `sql` adapter "
                "with lora_b all zero; and an adapter whose keys name `attn.*` where the model has `self_attn.*`")
    row.caught_by = ("adapter_effect: warning by default, failed gate with `checks: {adapter_effect: true}`; "
                     "wrong module path: refused as not fitting the base")
    row.exit_code = done.returncode
    row.numbers = (f"train exit {trained.returncode}; max |logit diff| {effect}; default run exit "
                   f"{plain.returncode} + warning; wrong keys exit {wrong.returncode}")
    row.numbers += f"; adapter_effect gate failed for {', '.join(sorted(g['model'] for g in gates)) or 'none'}"
    row.caught = (trained.returncode == 0 and bool(warned) and {g["model"] for g in gates} == {"noop", "zero_b"}
                  and done.returncode == 1 and wrong.returncode == 2)


FLUENT = ["A hash map stores each key in a bucket chosen by its hash, so a lookup checks one bucket "
          "instead of every entry; collisions share a bucket and the table grows when it fills.",
          "Sunlight scatters off air molecules, and short blue wavelengths scatter far more than red "
          "ones, so blue light reaches the eye from every part of the sky.",
          # text without spaces that is not a loop: Chinese prose, minified code
          "\u54c8\u5e0c\u8868\u6309\u952e\u7684\u54c8\u5e0c\u503c\u9009\u62e9\u6876\uff0c"
          "\u67e5\u627e\u65f6\u53ea\u9700\u68c0\u67e5\u4e00\u4e2a\u6876\uff1b\u51b2\u7a81"
          "\u7684\u952e\u5171\u7528\u4e00\u4e2a\u6876\uff0c\u8868\u6ee1\u65f6\u4f1a\u6269"
          "\u5bb9\u3002",
          "function total(xs){let s=0;for(const x of xs){if(x>0)s+=x;}return s/Math.max(1,xs.length);}"]
# loops that a word-level detector misses: inside a word, and in text without spaces
SUBWORD_LOOPS = {"subword": "hel" * 50, "cjk": "\u7684\u662f" * 60, "code": "for(;;){}" * 20}


def _stored(ctx: Context, shipped: str, good: list[str], bad: dict[str, str], tag: str
            ) -> tuple[subprocess.CompletedProcess, dict | None]:
    """`harness score` of stored completions with a shipped suite: `base` writes `good` (in
    turn), each model of `bad` writes its one output on every item."""
    suite = yaml.safe_load((ROOT / "suites" / shipped).read_text())
    if "cases" in suite:
        ids = [str(c.get("id", i)) for i, c in enumerate(suite["cases"])]
    else:
        lines = (ROOT / "suites" / suite["data"]).read_text().splitlines()
        ids = [str(json.loads(r).get("id", i)) for i, r in enumerate(lines) if r.strip()]
    rows = [{"id": i, "output": good[k % len(good)]} for k, i in enumerate(ids)]
    rows += [{"id": i, "model": model, "output": text, "finish_reason": "length"}
             for model, text in bad.items() for i in ids]
    path = write_jsonl(ctx.path(f"{tag}-stored.jsonl"), rows)
    done = ctx.harness("score", f"suites/{shipped}", "--completions", str(path), "--out", str(ctx.path(f"{tag}-score")))
    results = ctx.path(f"{tag}-score", "results.json")
    return done, (json.loads(results.read_text()) if results.is_file() else None)


def row_c(ctx: Context, row: Row) -> None:
    adapter = fixture_adapter("looping")
    row.done = "the committed `looping` adapter (trained on repeated phrases) on the shipped repetition suite"
    if adapter is None:
        row.numbers = "fixtures/adapters/looping is missing (nox -s fixtures)"
        return
    done, results = ctx.eval("suites/repetition.yaml", "c-eval", f"looping={adapter}")
    gates = [g for g in failed_gates(results, "repetition") if g["model"] == "looping"]
    base_v, cand_v = (metric(results, "repetition", m, "repetition") for m in ("base", "looping"))
    # loops the adapter does not happen to write: stored, against fluent answers that include
    # Chinese prose and minified code (no spaces, no loop)
    stored, sresults = _stored(ctx, "repetition.yaml", FLUENT, SUBWORD_LOOPS, "c")
    caught = {g["model"] for g in failed_gates(sresults, "repetition")}
    fluent = metric(sresults, "repetition", "base", "repetition")
    row.done += ("; and `harness score` of stored loops inside a word ('helhel…'), in CJK and in code "
                 "(no spaces) against fluent answers (English, Chinese, minified code)")
    row.caught_by = (", ".join(sorted({f"{g['metric']} {g['kind']}" for g in gates})) or "nothing") + \
        f"; stored loops: repetition gate failed for {', '.join(sorted(caught)) or 'none'}"
    row.exit_code = done.returncode
    row.numbers = (f"not-collapsed rate base {num(base_v)} vs looping {num(cand_v)}; stored: fluent {num(fluent)}, "
                   + ", ".join(f"{m} {num(metric(sresults, 'repetition', m, 'repetition'))}" for m in SUBWORD_LOOPS)
                   + f" (score exit {stored.returncode})")
    row.caught = (done.returncode == 1 and bool(gates) and stored.returncode == 1
                  and caught >= set(SUBWORD_LOOPS) and fluent == 1.0)


def row_d(ctx: Context, row: Row) -> None:
    adapter = fixture_adapter("domain")
    done, results = ctx.eval("suites/domain_qa.yaml", "d-eval", f"domain={adapter}")
    out = "d-eval"
    row.done = "the `domain` adapter on the shipped domain_qa suite (token_accuracy beside keywords)"
    if not [w for w in all_warnings(results) if "teacher-forced token_accuracy" in w]:
        # a trained world answers well on the shipped suite; the same gap from a decoding
        # setting a user gets wrong: answers cut at 4 tokens, teacher forcing unchanged
        suite = suite_variant(ctx, "domain_qa.yaml", "domain-short", generation={"max_tokens": 4})
        done, results = ctx.eval(suite, "d-short", f"domain={adapter}")
        out = "d-short"
        row.done += ("; no gap there, so also with a copy of the suite whose generation stops at "
                     "max_tokens: 4 (a decoding setting gone wrong)")
    warned = [w for w in all_warnings(results) if "teacher-forced token_accuracy" in w]
    shown = all(ctx.path(out, f).is_file() and "teacher-forced token_accuracy" in ctx.path(out, f).read_text()
                for f in ("summary.md", "index.html"))
    row.caught_by = "warning in the suite's warnings (scorecard and summary.md)"
    row.exit_code = done.returncode
    suite_name = "domain_qa" if out == "d-eval" else "domain-short"
    warned.sort(key=lambda w: not w.startswith("domain:"))  # the adapter's own gap first
    row.numbers = (warned[0].split(": the model")[0][:110] if warned else
                   f"token_accuracy {metric(results, suite_name, 'domain', 'token_accuracy')} vs "
                   f"keywords {metric(results, suite_name, 'domain', 'keywords')}: no gap")
    row.caught = bool(warned) and shown


def row_e(ctx: Context, row: Row) -> None:
    data = ctx.path("e-data")
    write_jsonl(data / "train.jsonl", sql_rows("train", 2))
    write_jsonl(data / "valid.jsonl", sql_rows("valid", 4))
    trained = ctx.train("e-stalled", data, "--steps", "32", "--eval_every", "32", "--batch_size", "2",
                        "--lr_schedule", "{name: cosine_decay, arguments: [1.0e-12, 32, 1.0e-13], warmup: 40}")
    log_path = ctx.path("adapters", "e-stalled", "train_log.jsonl")
    logged = [w for line in (log_path.read_text().splitlines() if log_path.is_file() else [])
              for w in json.loads(line).get("warnings", [])]
    done, results = ctx.eval("suites/smoke.yaml", "e-eval", f"stalled={ctx.path('adapters', 'e-stalled')}")
    shown = [w for w in all_warnings(results) if "its training log warns" in w]
    html = ctx.path("e-eval", "index.html")
    row.done = "`harness train` with peak lr 1e-12, warmup 40 > 32 steps, 2 rows x 32 steps, then eval"
    row.caught_by = "train-time warnings, recorded in train_log.jsonl, shown as scorecard warnings"
    row.exit_code = trained.returncode
    row.numbers = (f"{trained.stderr.count('harness train: warning')} warnings at train time, "
                   f"{len(logged)} in train_log.jsonl, {len(shown)} in the eval report")
    row.caught = (trained.stderr.count("harness train: warning") >= 3 and len(logged) == 3 and len(shown) == 3
                  and html.is_file()
                  and "did not move" in html.read_text())


def row_f(ctx: Context, row: Row) -> None:
    mlx = ctx.path("adapters", "f-mlx-lm")  # the same adapter as mlx_lm.lora writes it (no fingerprint)
    shutil.copytree(ADAPTERS / "sql", mlx)
    cfg = json.loads((mlx / "adapter_config.json").read_text())
    (mlx / "adapter_config.json").write_text(json.dumps(
        {k: v for k, v in cfg.items() if k in ("fine_tune_type", "num_layers", "lora_parameters")}))
    codes, lines = [], []
    for name, adapter in (("harness", ADAPTERS / "sql"), ("mlx-lm", mlx)):
        done = ctx.harness("eval", "suites/smoke.yaml", "--model", "fixtures/stories260K", "--adapter",
                           f"sql={adapter}", "--out", str(ctx.path(f"f-{name}")), "--quiet")
        codes.append(done.returncode)
        lines.append(last_line(done))
        if "[base]" in done.stderr or ctx.path(f"f-{name}").exists():
            codes[-1] = -1  # something was generated or written: not refused early
    sizes = [json.loads((ROOT / m / "config.json").read_text()) for m in (MODEL, "fixtures/stories260K")]
    desc = [f"{c.get('num_hidden_layers')} layers, hidden {c.get('hidden_size')}" for c in sizes]
    row.done = (f"the `sql` adapter (fixture base: {desc[0]}) on stories260K ({desc[1]}), as harness and "
                f"as mlx-lm wrote it")
    row.caught_by = "refused before any generation: " + ", ".join(
        "base fingerprint" if "trained on" in ln else "shape check" if "does not fit" in ln else "?" for ln in lines)
    row.exit_code = codes[1]
    row.numbers = f"exit {codes[0]} / {codes[1]}; " + lines[1].replace(str(ROOT) + "/", "").replace(str(ctx.work) + "/", "")[:100]
    # refused for the right reason: another refusal (a suite the base cannot run) proves nothing here
    row.caught = codes == [2, 2] and all(ln.startswith("harness: error:") and ("trained on" in ln or "does not fit" in ln)
                                         for ln in lines)


def row_g(ctx: Context, row: Row) -> None:
    instruct = ctx.path("models", "fixture-instruct")
    fused = ctx.harness("fuse", "--model", MODEL, "--adapter", str(ADAPTERS / "domain"), "--out", str(instruct))
    ours = ctx.harness("eval", "suites/smoke.yaml", "--model", str(instruct), "--adapter", f"sql={ADAPTERS / 'sql'}",
                       "--out", str(ctx.path("g-ours")), "--quiet")
    mlx = ctx.path("adapters", "g-mlx-lm")  # trained by mlx_lm.lora: no harness fields, `model` names its base
    lora_cfg = ctx.path("g-lora.yaml")
    lora_cfg.write_text(yaml.safe_dump({
        "model": MODEL, "train": True, "data": "fixtures/data/wikisql", "adapter_path": str(mlx),
        "num_layers": 2, "batch_size": 2, "iters": 2, "val_batches": 1, "steps_per_eval": 100,
        "steps_per_report": 2, "learning_rate": 1e-3, "max_seq_length": 256,
        "lora_parameters": {"rank": 4, "scale": 10.0, "dropout": 0.0}}))
    lora = subprocess.run([sys.executable, "-m", "mlx_lm", "lora", "-c", str(lora_cfg)], cwd=ROOT, env=ctx.env,
                          capture_output=True, text=True, timeout=600)
    ctx.log.append(f"$ python -m mlx_lm lora -c {lora_cfg}\n-> exit {lora.returncode}\n{lora.stderr[-1500:]}")
    theirs = ctx.harness("eval", "suites/smoke.yaml", "--model", str(instruct), "--adapter", f"sql={mlx}",
                         "--out", str(ctx.path("g-mlx")), "--quiet")
    # where the base cannot be checked (its name only, or nothing recorded): a warning, not a refusal
    unchecked = []
    for name, model in (("named", "some-org/llama-base-v2"), ("unnamed", None)):
        path = ctx.path("adapters", f"g-{name}")
        shutil.copytree(mlx, path)
        cfg = json.loads((path / "adapter_config.json").read_text())
        cfg.pop("model", None)
        (path / "adapter_config.json").write_text(json.dumps(cfg | ({"model": model} if model else {})))
        unchecked.append(f"{name}={path}")
    warn_run, warn_results = ctx.eval("suites/smoke.yaml", "g-warn", *unchecked, extra=("--limit", "1"))
    warned = [w for w in all_warnings(warn_results) if "only tensor shapes were checked" in w
              or "only its tensor shapes were checked" in w]
    row.done = ("fixture base + domain fused (`harness fuse`: same shapes, other weights); on it the `sql` "
                "adapter and one trained by `mlx_lm.lora` (2 iterations) on the fixture base; that mlx-lm "
                "adapter naming a base that is not here, and naming none, on the fixture base")
    row.caught_by = ("base fingerprint (harness) / mlx-lm `model` resolved and fingerprinted, before generation; "
                     "a warning where only the name or nothing is recorded")
    row.exit_code = theirs.returncode
    row.numbers = (f"fuse exit {fused.returncode}, mlx_lm.lora exit {lora.returncode}; harness adapter exit "
                   f"{ours.returncode}, mlx-lm adapter exit {theirs.returncode}; unresolvable / no base: "
                   f"exit {warn_run.returncode}, {len(warned)} warnings")
    row.caught = (fused.returncode == 0 and lora.returncode == 0 and ours.returncode == 2 and theirs.returncode == 2
                  and "other weights" in last_line(ours) and "other weights" in last_line(theirs)
                  and warn_run.returncode in (0, 1) and len(warned) == 2)


def row_h(ctx: Context, row: Row) -> None:
    adapter = fixture_adapter("forgetful")
    row.done = ("the committed `forgetful` adapter (a chat fine-tune on SQL only, no replay) on the shipped "
                "json_schema suite")
    if adapter is None:
        row.numbers = "fixtures/adapters/forgetful is missing (nox -s fixtures)"
        return
    done, results = ctx.eval("suites/json_schema.yaml", "h-eval", f"forgetful={adapter}")
    gates = [g for g in failed_gates(results, "json_schema") if g["model"] == "forgetful"]
    base_v, cand_v = (metric(results, "json_schema", m, "json_schema") for m in ("base", "forgetful"))
    row.caught_by = ", ".join(sorted({f"{g['metric']} {g['kind']}" for g in gates})) or "nothing"
    row.exit_code = done.returncode
    row.numbers = f"json_schema strict: base {num(base_v)} vs forgetful {num(cand_v)}"
    row.caught = done.returncode == 1 and any(g["metric"] == "json_schema" and g["kind"] == "max_drop_vs_base"
                                              for g in gates)


CRITIQUE = {"image_description": "A dog runs along a beach at sunset.",
            "dimensions": [{"name": "composition", "score": 7, "comment": "Subject on a third."},
                           {"name": "lighting", "score": 8, "comment": "Warm low sun."},
                           {"name": "focus", "score": 6, "comment": "Slight motion blur."}],
            "overall_score": 7}


def _json_cases() -> list[str]:
    suite = yaml.safe_load((ROOT / "suites" / "json_schema.yaml").read_text())
    rows = (ROOT / "suites" / suite["data"]).read_text().splitlines()
    return [str(json.loads(r).get("id", i)) for i, r in enumerate(rows) if r.strip()]


def _class_shares(results: dict | None, model: str) -> dict[str, float]:
    for s in (results or {}).get("suites", []):
        m = ((s.get("models") or {}).get(model) or {}).get("metrics", {})
        return {k.split(".class.", 1)[1]: v["value"] for k, v in m.items() if ".class." in k and v.get("value")}
    return {}


def _score(ctx: Context, out: str, rows: list[dict]) -> tuple[subprocess.CompletedProcess, dict | None]:
    path = write_jsonl(ctx.path(f"{out}.jsonl"), rows)
    done = ctx.harness("score", "suites/json_schema.yaml", "--completions", str(path), "--out", str(ctx.path(out)))
    results = ctx.path(out, "results.json")
    return done, (json.loads(results.read_text()) if results.is_file() else None)


def row_i(ctx: Context, row: Row) -> None:
    ids = _json_cases()
    good = json.dumps(CRITIQUE)
    rows = [{"id": i, "output": good} for i in ids]
    rows += [{"id": i, "model": "fenced", "output": f"```json\n{good}\n```"} for i in ids]
    rows += [{"id": i, "model": "chatty", "output": good + "\n\nLet me know if you want more detail!"} for i in ids]
    done, results = _score(ctx, "i-score", rows)
    fenced, chatty = _class_shares(results, "fenced"), _class_shares(results, "chatty")
    html = ctx.path("i-score", "index.html").read_text() if ctx.path("i-score", "index.html").is_file() else ""
    row.done = "stored completions: the same valid JSON, bare / in ```json fences / followed by prose; `harness score`"
    row.caught_by = "json_schema output classes (json_schema.class.*) in results and report; the strict json_schema drop gate"
    row.exit_code = done.returncode
    row.numbers = f"fenced: {fenced}; chatty: {chatty}"
    row.caught = fenced.get("fenced") == 1.0 and chatty.get("trailing_text") == 1.0 and "fenced" in html


def row_j(ctx: Context, row: Row) -> None:
    ids = _json_cases()
    good = json.dumps(CRITIQUE)
    rows = [{"id": i, "output": good} for i in ids]
    rows += [{"id": i, "model": "cut", "output": good[:70], "finish_reason": "length"} for i in ids]
    rows += [{"id": i, "model": "rambling", "output": "Well, this photo is lovely and I think that the",
              "finish_reason": "length"} for i in ids]
    rows += [{"id": i, "model": "stopped", "output": good[:70], "finish_reason": "stop"} for i in ids]
    done, results = _score(ctx, "j-score", rows)
    cut, ramble = _class_shares(results, "cut"), _class_shares(results, "rambling")
    stopped = _class_shares(results, "stopped")
    row.done = ("stored completions cut at max_tokens (finish_reason length): unfinished JSON, and prose; "
                "and JSON cut off by a stop (finish_reason stop)")
    row.caught_by = "json_schema classes: `truncated` for JSON unfinished at the limit only"
    row.exit_code = done.returncode
    row.numbers = f"cut JSON: {cut}; prose at the limit: {ramble}; cut by a stop: {stopped}"
    # and the advice for prose at the limit is not "raise max_tokens"
    advice = {m: {(i["scores"]["json_schema"].get("detail") or "").split(":")[0] + (
                  " (raise max_tokens)" if "raise max_tokens" in (i["scores"]["json_schema"].get("detail") or "") else "")
                  for i in ((results or {}).get("suites") or [{}])[0].get("models", {}).get(m, {}).get("items", [])}
              for m in ("cut", "rambling", "stopped")}
    row.numbers += f"; advice: {', '.join(f'{m}: {sorted(a)[0] if a else None}' for m, a in advice.items())}"
    row.caught = (cut.get("truncated") == 1.0 and not ramble.get("truncated")
                  and not stopped.get("truncated") and not stopped.get("prefix_text")
                  and advice["cut"] == {"truncated (raise max_tokens)"}
                  and not any("raise max_tokens" in a for m in ("rambling", "stopped") for a in advice[m]))


def row_k(ctx: Context, row: Row) -> None:
    data = ctx.path("k-data")
    rows = [{"prompt": f"Critique this photo: a dog on a beach, shot {i}.", "completion": json.dumps(dict(CRITIQUE, overall_score=i % 10))}
            for i in range(12)]
    rows[5]["completion"] = "Sure! Here is my critique: nice light, good framing, 7/10."
    rows[9]["completion"] = "```json\n" + rows[9]["completion"] + "\n```"
    write_jsonl(data / "train.jsonl", rows)
    write_jsonl(data / "valid.jsonl", [{"prompt": f"Critique this photo: a cat on a wall, shot {i}.", "completion": json.dumps(CRITIQUE)}
                                              for i in range(3)])
    lint = ctx.harness("lint-data", str(data))
    train = ctx.train("k-refused", data, "--steps", "2")
    allowed = ctx.train("k-allowed", data, "--steps", "1", "--eval_every", "1", "--batch_size", "2", allow_lint=True)
    flagged = [ln for ln in lint.stdout.splitlines() if "not valid JSON" in ln]
    row.done = "training data with JSON answers, one in prose and one in code fences; lint-data, then train"
    row.caught_by = ("lint-data errors (exit 1); `harness train` refuses on lint errors (exit 2; "
                     "`--allow-lint-errors` trains)")
    row.exit_code = train.returncode
    row.numbers = f"lint exit {lint.returncode}, {len(flagged)} answers flagged (lines " + \
        ", ".join(re.findall(r"train\.jsonl:(\d+)", "\n".join(flagged))) + f"); with --allow-lint-errors exit {allowed.returncode}"
    row.caught = (lint.returncode == 1 and len(flagged) == 2 and train.returncode == 2
                  and "train.jsonl:6" in last_line(train) and not ctx.path("adapters", "k-refused").exists()
                  and allowed.returncode == 0 and ctx.path("adapters", "k-allowed", "adapters.safetensors").is_file())


def row_l(ctx: Context, row: Row) -> None:
    adapter = fixture_adapter("regress")
    suite = suite_variant(ctx, "domain_qa.yaml", "domain-by-category",
                          gates={"keywords": {"max_drop_vs_base": 0.05,
                                              "categories": {"architecture": {"max_drop_vs_base": 0.0}}}})
    done, results = ctx.eval(suite, "l-eval", f"regress={adapter}")
    per_cat = [g for g in failed_gates(results) if "[" in g["metric"]]
    junit = ctx.path("l-eval", "junit.xml").read_text() if ctx.path("l-eval", "junit.xml").is_file() else ""
    summary = ctx.path("l-eval", "summary.md").read_text() if ctx.path("l-eval", "summary.md").is_file() else ""
    row.done = "domain_qa with a per-category gate (`keywords` in `architecture` must not drop); the regress adapter"
    row.caught_by = ", ".join(sorted({g["metric"] for g in per_cat})) or "nothing"
    row.exit_code = done.returncode
    row.numbers = (per_cat[0]["reason"].split(";")[0][:110] if per_cat else "no per-category gate failed")
    row.caught = (done.returncode == 1 and bool(per_cat) and "keywords[architecture]" in junit
                  and "architecture" in summary)


def row_m(ctx: Context, row: Row) -> None:
    data = ctx.path("m-data")
    write_jsonl(data / "train.jsonl", [dict(r, prompt="### Question:\n" + r["prompt"]) for r in sql_rows("train", 16)])
    write_jsonl(data / "valid.jsonl", sql_rows("valid", 8))
    done = ctx.train("m-refused", data, "--steps", "2")
    line = last_line(done)
    row.done = "train split with a `### Question:` prefix, valid split without; `harness train`"
    row.caught_by = "lint check run by `harness train`: prompt wrapper in one split only"
    row.exit_code = done.returncode
    row.numbers = re.sub(r"\(run `harness lint-data.*", "", line.replace(str(ctx.work) + "/", ""))[:130]
    row.caught = (done.returncode == 2 and re.search(r"(train|valid)\.jsonl:1: ", line) is not None
                  and "formatted differently" in line and "'### Question:" in line)


def row_n(ctx: Context, row: Row) -> None:
    # only the check gates here, and short answers: the format is checked before anything is generated
    checked = {"checks": {"prompt_format": True}, "gates": False, "generation": {"max_tokens": 4, "temperature": 0.0}}
    shipped_sql = yaml.safe_load((ROOT / "suites" / "sql.yaml").read_text())["prompt"]
    suites = {
        "sql-same": suite_variant(ctx, "sql.yaml", "sql-same", **checked),  # the adapter's own format
        "sql-chat": suite_variant(ctx, "sql.yaml", "sql-chat", template="chat", **checked),
        "sql-wrapper": suite_variant(ctx, "sql.yaml", "sql-wrapper", **checked,
                                     prompt=shipped_sql[:shipped_sql.rindex("A: ")] + "Answer: "),
        "json-system": suite_variant(ctx, "json_schema.yaml", "json-system", **checked,
                                     system="You review photographs in a few friendly sentences."),
    }
    mlx = ctx.path("adapters", "n-mlx-lm")  # as mlx_lm.lora writes it, its data folder not here
    shutil.copytree(ADAPTERS / "sql", mlx)
    cfg = json.loads((mlx / "adapter_config.json").read_text())
    (mlx / "adapter_config.json").write_text(json.dumps(
        {k: v for k, v in cfg.items() if k in ("fine_tune_type", "num_layers", "lora_parameters", "model")}
        | {"data": str(ctx.path("n-gone"))}))
    done = ctx.harness("eval", *map(str, suites.values()), "--model", MODEL, "--adapter", f"sql={ADAPTERS / 'sql'}",
                       "--adapter", f"domain={ADAPTERS / 'domain'}", "--adapter", f"mlx={mlx}",
                       "--limit", "2", "--out", str(ctx.path("n-eval")), "--quiet")
    results_file = ctx.path("n-eval", "results.json")
    results = json.loads(results_file.read_text()) if results_file.is_file() else None
    verdict = {(g["suite"], g["model"]): g for s in (results or {}).get("suites", []) for g in s.get("gates", [])
               if g["metric"] == "prompt_format"}
    expect = {("sql-same", "sql"): True, ("sql-chat", "sql"): False, ("sql-wrapper", "sql"): False,
              ("json-system", "domain"): False, ("sql-same", "mlx"): False}
    got = {k: (verdict[k]["passed"] if k in verdict else None) for k in expect}
    unknown = "unknown" in (verdict.get(("sql-same", "mlx")) or {}).get("reason", "")
    warned = [w for w in all_warnings(results) if w.startswith(("adapter sql on suite sql-chat", "adapter sql on suite sql-wrapper",
                                                                 "adapter domain on suite json-system"))]
    row.done = ("the committed `sql` adapter (raw table:/A: rows plus chat replay) on copies of sql.yaml: "
                "unchanged, switched to `template: chat`, with `Answer:` for `A:`; the `domain` adapter on "
                "json_schema with another system message; an mlx-lm adapter whose data is not here")
    row.caught_by = "prompt_format check (a warning by default; a failed gate with `checks: {prompt_format: true}`)"
    row.exit_code = done.returncode
    row.numbers = ", ".join(f"{s}/{m} {'pass' if ok else 'FAIL' if ok is False else 'none'}"
                            for (s, m), ok in got.items()) + f"; mlx-lm adapter format unknown: {unknown}"
    row.caught = done.returncode == 1 and got == expect and unknown and len(warned) == 3


# key, failure, function, fast: trains nothing and needs no more than the fixture model
# (CI's subset, tests/test_catalog.py); the others train adapters or rely on what the committed
# fixture adapters write (the looping one loops, the forgetful one writes no JSON).
ROWS: list[tuple[str, str, Callable[[Context, Row], None], bool]] = [
    ("a", "generation loop loses the prompt's context", row_a, True),
    ("b", "adapter with no effect", row_b, False),
    ("c", "repetition collapse", row_c, False),
    ("d", "high token accuracy, poor generation", row_d, False),
    ("e", "training that did not train", row_e, False),
    ("f", "adapter on a base of another size", row_f, True),
    ("g", "adapter on a same-shape base with other weights", row_g, True),
    ("h", "adapter forgot the JSON format", row_h, False),
    ("i", "JSON in code fences or followed by prose", row_i, True),
    ("j", "truncation at max_tokens", row_j, True),
    ("k", "non-JSON answers in the training data", row_k, True),
    ("l", "regression in one category only", row_l, False),
    ("m", "train/valid format drift", row_m, True),
    ("n", "prompt format differs from training", row_n, True),
]


def table(rows: list[Row]) -> str:
    out = ["| | failure | what was done | caught by | exit | key numbers | caught |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r.key, r.failure, r.done, r.caught_by, "" if r.exit_code is None else str(r.exit_code),
                 r.numbers, "yes" if r.caught else "**NO**"]
        out.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true",
                        help="only the rows that train nothing and need only the fixture model (CI)")
    parser.add_argument("--only", help="comma-separated row keys (a,b,...)")
    parser.add_argument("--work", type=Path, help="keep the work folder here (default: a temporary one)")
    parser.add_argument("--log", type=Path, help="write every command and its output here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else None
    work = args.work or Path(tempfile.mkdtemp(prefix="harness-catalog-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("HARNESS_CACHE_DIR", str(work / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    ctx = Context(work=work, env=env)
    rows = []
    try:
        for key, failure, fn, fast in ROWS:
            if (wanted and key not in wanted) or (args.fast and not fast and not wanted):
                continue
            row = Row(key, failure)
            t0 = time.perf_counter()
            try:
                fn(ctx, row)
            except Exception as exc:  # a row that breaks is a row not caught, not a crash of the table
                row.numbers = f"catalog error: {type(exc).__name__}: {exc}"[:200]
            row.seconds = time.perf_counter() - t0
            rows.append(row)
            print(f"  {key}: {'caught' if row.caught else 'NOT CAUGHT'} ({row.seconds:.0f} s)", file=sys.stderr, flush=True)
    finally:
        if args.log:
            args.log.write_text("\n\n".join(ctx.log))
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    text = table(rows)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")
    missed = [r.key for r in rows if not r.caught]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} failures caught" + (f"; NOT caught: {', '.join(missed)}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
