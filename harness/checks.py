"""Checks of a run beyond metric gates, on what the metrics cannot see:

- **adapter effect**: an adapter whose logits equal the base's (``lora_b`` all zero,
  ``scale: 0``, keys naming no module of the model) changes nothing; with DoRA layers,
  whose logits equal those of the same layers with a zero update (they compute the base's
  function by another path, which rounds otherwise on bfloat16 and quantized weights); a warning always,
  a failed gate where a suite sets ``checks: {adapter_effect: true}``;
- **prompt format**: the format an adapter was trained with (``prompt_format`` in
  adapter_config.json: template, system message, rendered layout, raw wrapper, and each
  distinct format of mixed data with its share in ``formats``; inferred from mlx-lm's
  ``data`` where it can be, else unknown) against each suite's; a warning,
  a failed gate where a suite sets ``checks: {prompt_format: true}``;
- **teacher-forced vs generated**: ``token_accuracy`` far above the suite's generation
  metric means the model predicts the reference token by token but fails when it writes
  on its own (decoding, stopping, exposure bias); a warning in the scorecard and summary.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

NO_EFFECT_TOLERANCE = 1e-6  # max |logit difference| below which an adapter changed nothing
TOKEN_ACCURACY_GAP = 0.25  # token_accuracy minus a generation pass rate that gets a warning
CHECKS = ("adapter_effect", "prompt_format")


def enabled(suite: Any, name: str) -> bool:
    return bool(((getattr(suite, "raw", None) or {}).get("checks") or {}).get(name))


# --- adapter effect --------------------------------------------------------------

def probe_logits(base: Any, prompt_ids: list[int]) -> Any:
    import mlx.core as mx

    logits = base.model(mx.array([prompt_ids]))[0].astype(mx.float32)
    mx.eval(logits)
    return logits


def logit_effect(base: Any, prompt_ids: list[int], base_logits: Any) -> float:
    """Max |logit difference| the adapter's weights make: between the model as it is now
    (adapter on) and the base, or, where it has DoRA layers, the same layers with a zero
    update (``_zero_update``).

    A DoRA layer computes its base weight another way than the base does (a quantized weight
    dequantized, then multiplied; the magnitude ``m`` over the weight's norm): on 4-bit
    weights with bfloat16 scales an untrained DoRA adapter (``lora_b`` all zero) moved the
    base's logits by 0.47 through rounding alone and was reported as changing them."""
    import mlx.core as mx

    logits = probe_logits(base, prompt_ids)
    reference = base_logits
    if _dora_layers(base.model):
        with _zero_update(base.model):
            reference = probe_logits(base, prompt_ids)
    return float(mx.abs(logits - reference).max().item())


def _dora_layers(model: Any) -> list:
    from mlx_lm.tuner.dora import DoRAEmbedding, DoRALinear

    return [m for m in model.modules() if isinstance(m, (DoRALinear, DoRAEmbedding))]


@contextmanager
def _zero_update(model: Any) -> Iterator[None]:
    """The adapter's layers as mlx-lm makes them before training, for the block: every
    ``lora_b`` zero and each DoRA magnitude the weight's own norm (``set_linear`` /
    ``set_embedding`` compute it), so the layers compute the base's function by their own
    path. The adapter's weights are put back afterwards."""
    import mlx.core as mx
    from mlx_lm.tuner.dora import DoRAEmbedding, DoRALinear

    layers = [m for m in model.modules() if "lora_b" in m]
    saved = [(m, m["lora_b"], m.get("m")) for m in layers]
    try:
        for layer in layers:
            layer.lora_b = mx.zeros_like(layer.lora_b)
            if isinstance(layer, DoRALinear):
                layer.set_linear(layer.linear)
            elif isinstance(layer, DoRAEmbedding):
                layer.set_embedding(layer.embedding)
        yield
    finally:
        for layer, lora_b, magnitude in saved:
            layer.lora_b = lora_b
            if magnitude is not None:
                layer.m = magnitude


# --- prompt format -----------------------------------------------------------------

def adapter_prompt_format(config: dict, tokenizer: Any) -> dict | None:
    """The prompt format an adapter was trained with: recorded by ``harness train``, or
    inferred from the data folder an mlx-lm config names (when it is here); None: unknown.

    A record made before ``formats`` (each distinct format of mixed data) was recorded gets
    them from its training data when that file is here with the hash the record names."""
    from .prompts import has_chat_template, prompt_format, prompt_formats
    from .train.data import row_format, row_prompt_pairs, row_prompts

    recorded = config.get("prompt_format")
    if isinstance(recorded, dict) and recorded.get("template"):
        found = dict(recorded, source="recorded")
        if "formats" not in recorded and config.get("data_format") in ("completions", "chat"):
            train = _recorded_train_file(config)
            if train is not None:
                system = (config.get("train_config") or {}).get("system")
                found["formats"] = prompt_formats(tokenizer, recorded["template"],
                                                  row_prompt_pairs(train, config["data_format"], system))
                found["source"] = f"recorded; formats from its training data {train} (hash matches)"
        return found
    data = config.get("data")
    train = Path(data) / "train.jsonl" if isinstance(data, str) else None
    if train is None or not train.is_file():
        return None
    try:
        first = json.loads(next(line for line in train.read_text(encoding="utf-8").splitlines() if line.strip()))
    except (StopIteration, ValueError, OSError):
        return None
    fmt = row_format(first)
    if fmt is None:
        return None
    if fmt == "text":
        return {"template": "raw", "source": f"inferred from mlx-lm's data {data} (text rows)"}
    # mlx-lm renders prompt/completion and chat rows with the tokenizer's chat template
    template = "chat" if has_chat_template(tokenizer) else "raw"
    prompts, system = row_prompts(train, fmt)
    found = prompt_format(tokenizer, template, system, prompts)
    found["formats"] = prompt_formats(tokenizer, template, row_prompt_pairs(train, fmt))
    return dict(found, source=f"inferred from mlx-lm's data {data} ({fmt} rows)")


def _recorded_train_file(config: dict) -> Path | None:
    """The training split a harness adapter was trained on, if it is here unchanged (its
    sha256 is the one recorded)."""
    from .files import file_digest

    data = (config.get("train_config") or {}).get("data")
    digest = (config.get("data_hashes") or {}).get("train")
    train = Path(data) / "train.jsonl" if isinstance(data, str) and isinstance(digest, str) else None
    try:
        if train is not None and train.is_file() and "sha256:" + file_digest(train) == digest:
            return train
    except OSError:
        pass
    return None


def suite_prompt_format(suite: Any, tokenizer: Any) -> dict:
    from .prompts import prompt_format

    return prompt_format(tokenizer, suite.template, suite.system, [c.prompt for c in suite.cases],
                         suite.chat_template_kwargs)


# --- after scoring, per suite --------------------------------------------------------

def _gate(suite: str, model: str, metric: str, passed: bool, reason: str, details: dict) -> dict:
    return {"suite": suite, "model": model, "metric": metric, "kind": "check", "passed": passed,
            "reason": reason, "details": dict(details, policy="suite")}


def suite_checks(suite: Any, header: dict, models: dict) -> tuple[list[dict], list[str]]:
    """(gates, warnings) of the checks above for one suite of a finished run.

    ``models`` is results.json's ``models``: adapters carry ``logit_effect`` and
    ``prompt_format`` (with the suite's differences in ``prompt_format_differences``).
    """
    gates: list[dict] = []
    warnings: list[str] = []
    results = header.get("models") or {}
    base_items = {str(i["id"]): i.get("output") for i in (results.get("base") or {}).get("items") or []}
    for name, result in results.items():
        info = models.get(name) or {}
        if name != "base" and "logit_effect" in info and enabled(suite, "adapter_effect"):
            effect = info["logit_effect"]
            same = sum(1 for i in result.get("items") or [] if base_items.get(str(i["id"])) == i.get("output"))
            n = len(result.get("items") or [])
            none = effect is not None and effect <= NO_EFFECT_TOLERANCE
            reason = (f"adapter {name} has no effect: its weights change no logit (max |difference| {effect:.2g}) "
                      f"and {same} of {n} outputs are the base's" if none else
                      f"adapter {name} changes the logits (max |difference| {effect:.3g}); "
                      f"{same} of {n} outputs equal the base's")
            gates.append(_gate(suite.name, name, "adapter_effect", not none, reason,
                               {"max_abs_logit_diff": effect, "same_outputs": same, "n": n}))
        if name != "base" and "prompt_format" in info and enabled(suite, "prompt_format"):
            diffs = (info.get("prompt_format_differences") or {}).get(suite.name)
            trained = info["prompt_format"]
            if trained is None:
                reason = (f"adapter {name}: the prompt format it was trained with is unknown (no "
                          f"prompt_format recorded, no mlx-lm data folder here to infer it from)")
                passed = False
            elif diffs:
                reason = format_warning(name, suite.name, diffs)
                passed = False
            else:
                reason = f"adapter {name}: suite {suite.name} uses the prompt format it was trained with"
                passed = True
            gates.append(_gate(suite.name, name, "prompt_format", passed, reason,
                               {"differences": diffs or [], "trained": trained}))
    warnings += token_accuracy_gaps(header)
    return gates, warnings


def format_warning(name: str, suite: str, diffs: list[str]) -> str:
    return (f"adapter {name} on suite {suite}: {'; '.join(diffs)}: its scores there say "
            f"little about the adapter (train and evaluate with one prompt format)")


def no_effect_warning(name: str, effect: float, suites: list[dict]) -> str | None:
    """The run-level warning for an adapter whose weights change no logit."""
    if effect is None or effect > NO_EFFECT_TOLERANCE:
        return None
    same = n = 0
    for header in suites:
        base = {str(i["id"]): i.get("output") for i in ((header.get("models") or {}).get("base") or {}).get("items") or []}
        for item in ((header.get("models") or {}).get(name) or {}).get("items") or []:
            n += 1
            same += base.get(str(item["id"])) == item.get("output")
    return (f"adapter {name} has no effect: its weights change no logit (max |difference| {effect:.2g}) "
            f"and {same} of {n} outputs are the base's; check lora_b (all zero?), lora_parameters.scale "
            f"(0?) and that its keys name modules of this model")


def token_accuracy_gaps(header: dict) -> list[str]:
    """Teacher-forced token accuracy far above what the model gets right when it generates:
    one warning per model, naming every generated metric it outruns."""
    out = []
    for name, result in (header.get("models") or {}).items():
        metrics = result.get("metrics") or {}
        tacc = (metrics.get("token_accuracy") or {}).get("value")
        if tacc is None:
            continue
        gaps = []
        for metric, info in metrics.items():
            if "." in metric or metric == "token_accuracy" or info.get("kind") != "proportion":
                continue
            value = info.get("value")
            if value is not None and tacc - value >= TOKEN_ACCURACY_GAP:
                gaps.append(f"{metric} {value:.3f} (gap {tacc - value:.3f})")
        if gaps:
            out.append(f"{name}: teacher-forced token_accuracy {tacc:.3f} but generated {', '.join(gaps)}: "
                       f"the model predicts the reference token by token yet fails when it writes on its "
                       f"own (decoding, stopping, exposure bias); do not read token_accuracy as answer quality")
    return out
