"""``harness fuse``: an adapter merged into a copy of its base (W + scale * (A B)^T).

The base is refused if it is not the one the adapter was trained on (the same check as
``harness eval``); the fused folder is a plain mlx-lm model folder, and the adapter it
came from is recorded in its ``config.json`` under ``fused_adapter``. The folder appears
whole or not at all (written beside it, then renamed).

On a quantized base (QLoRA: a 4-bit mlx-community model) mlx-lm's ``fuse`` dequantizes
each adapted layer, adds the update and quantizes it again, as ``mlx_lm.fuse`` does by
default: the fused model is as small as the base, but it is not base + adapter, the model
that was evaluated. So every fuse measures how far its output is from base + adapter
(``fuse_agreement``: next-token agreement on the adapter's validation rows, or on a fixed
text where those are not here), records it in ``fused_adapter``, and warns with the numbers
when the layers were quantized again; ``dequantize=True`` (``--dequantize``) writes the
fused model unquantized instead, equal to base + adapter up to float rounding (with
bfloat16 weights, as mlx-community's, that rounding alone moves near-tied next tokens, as
it does in the eval: a fuse whose next tokens differ beyond the integrity check's near-tie
allowance warns too).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

from ..errors import HarnessError
from ..integrity import rounding_unit
from ..models import adapter_applied, check_adapter_base, load_base
from ..preflight import read_adapter_config

# Probe when the adapter's validation rows are not here (an mlx-lm adapter, a moved folder):
# plain text, teacher-forced; what it measures is named in the record and the warning.
PROBE_TEXT = ("The quick brown fox jumps over the lazy dog. Once upon a time, there was a little girl "
              "named Lily. She liked to play outside in the park with her friends. "
              "SELECT name FROM table WHERE age > 30. "
              "Q: What is the capital of France?\nA: Paris.")
PROBE_ROWS = 16          # validation rows read, in file order
PROBE_MAX_TOKENS = 512   # per row
TOP_K = 32               # logits compared per position: base + adapter's likeliest tokens


def fuse(model_path: str, adapter_path: str | Path, out: str | Path,
         allow_base_mismatch: bool = False, dequantize: bool = False) -> Path:
    from ..preflight import check_out_dir

    out = check_out_dir(out)
    if out.exists() and any(out.iterdir()):
        raise HarnessError("output folder is not empty", path=out, hint="choose a new --out folder")
    base = load_base(model_path)
    if not base.local:
        raise HarnessError("fuse needs a local base folder", path=model_path,
                           hint="download the model and pass its folder")
    adapter_config = read_adapter_config(Path(adapter_path))
    # Saved inside the block: leaving it puts the base's own weights back.
    with adapter_applied(base, "fuse", adapter_path, allow_base_mismatch) as adapter_fp:
        # what eval records in results.json: a base that could only be checked by shapes
        for text in check_adapter_base(base, Path(adapter_path), adapter_config, allow_base_mismatch):
            print(f"harness fuse: warning: {text}", file=sys.stderr)
        wrapped = [(name, m) for name, m in base.model.named_modules() if hasattr(m, "fuse")]
        # The modules fusing replaces, to put back before the block takes the adapter off
        # (it restores the base's weights into the base's own module tree)
        inside = tuple(name + "." for name, _ in wrapped)
        replaced = wrapped + [(name, m) for name, m in base.model.named_modules()
                              if _is_quantized(m) and not name.startswith(inside)]
        try:
            _fuse_and_save(base, model_path, adapter_path, adapter_fp, adapter_config, out, wrapped, dequantize)
        finally:
            base.model.update_modules(tree_unflatten(replaced))
    return out


def _fuse_and_save(base: Any, model_path: str, adapter_path: str | Path, adapter_fp: str, adapter_config: dict,
                   out: Path, wrapped: list, dequantize: bool) -> None:
    from mlx_lm.utils import dequantize_model, save

    probe, probe_source = probe_rows(base, adapter_config)
    reference = reference_logits(base.model, probe)  # base + adapter, as eval runs it
    rounding, dtype = rounding_unit(base.model)
    was_quantized = any(_is_quantized(m) for _, m in base.model.named_modules())
    requantized = sorted(name for name, m in wrapped if _quantized(m) and not dequantize)
    base.model.update_modules(tree_unflatten([(name, m.fuse(dequantize=dequantize)) for name, m in wrapped]))
    config = dict(base.config)
    if dequantize:  # as mlx_lm.fuse --dequantize: every layer, and config.json says so
        dequantize_model(base.model)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    bad = [name for name, w in tree_flatten(base.model.parameters())
           if mx.issubdtype(w.dtype, mx.floating) and not bool(mx.all(mx.isfinite(w)).item())]
    if bad:  # never write a NaN model (a finite adapter on a finite base cannot get here)
        raise HarnessError(f"the fused weight {bad[0]} has NaN or infinite values; nothing written",
                           path=adapter_path, hint="check the base and the adapter weights")
    agreement = fuse_agreement(reference, base.model, probe, probe_source, rounding)
    config["fused_adapter"] = {"path": str(adapter_path), "fingerprint": adapter_fp,
                               "base_fingerprint": base.fingerprint,
                               "requantized": bool(requantized), "dequantized": dequantize and was_quantized,
                               "agreement": agreement}
    if requantized:
        q = base.config.get("quantization") or {}
        how = ", ".join(f"{k} {q[k]}" for k in ("bits", "group_size", "mode") if k in q)
        print(f"harness fuse: warning: the base is quantized ({how or 'quantized layers'}), so the "
              f"{len(requantized)} fused layers were quantized again: {out} is not the model evaluated as "
              f"base + adapter. {describe(agreement)}. Evaluate {out} itself before shipping it "
              f"(harness eval SUITES --model {out}), or fuse with --dequantize for base + adapter up to float "
              f"rounding (unquantized layers, a larger model)", file=sys.stderr)
    elif agreement["differ_beyond_near_ties"]:  # near-ties alone: as the eval's own rounding moves them
        print(f"harness fuse: warning: {out} is base + adapter up to {dtype} rounding (the fused weights compute "
              f"in another order), but {agreement['differ_beyond_near_ties']} next tokens differ by more than "
              f"that rounding explains. {describe(agreement)}. Evaluate {out} itself before shipping it "
              f"(harness eval SUITES --model {out})", file=sys.stderr)
    _save_whole(out, lambda folder: save(folder, model_path, base.model, base.tokenizer, config,
                                         donate_model=False))


def _is_quantized(module: Any) -> bool:
    import mlx.nn as nn
    from mlx_lm.models.switch_layers import QuantizedSwitchLinear

    return isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding, QuantizedSwitchLinear))


def _quantized(wrapper: Any) -> bool:
    """Whether a LoRA/DoRA layer wraps a quantized one (which its ``fuse`` quantizes again)."""
    inner = getattr(wrapper, "linear", None)
    return _is_quantized(getattr(wrapper, "embedding", None) if inner is None else inner)


def _logits(model: Any, ids: list[int]) -> mx.array:
    logits = model(mx.array(ids)[None])[0].astype(mx.float32)
    mx.eval(logits)
    return logits


def probe_rows(base: Any, adapter_config: dict) -> tuple[list[tuple[list[int], int]], str]:
    """Token ids to compare the fused model with base + adapter on, each with the first
    position whose next token counts: the answers of the first ``PROBE_ROWS`` rows of the
    adapter's recorded ``valid.jsonl``, encoded as it was trained; else ``PROBE_TEXT``."""
    from ..train.data import encode_row, read_rows, row_format

    data = (adapter_config.get("train_config") or {}).get("data") or adapter_config.get("data")
    valid = Path(data) / "valid.jsonl" if isinstance(data, str) and data else None
    if valid is not None and valid.is_file():
        template = (adapter_config.get("prompt_format") or {}).get("template")
        system = (adapter_config.get("train_config") or {}).get("system")
        if template not in ("chat", "raw"):
            from ..prompts import has_chat_template
            template = "chat" if has_chat_template(base.tokenizer) else "raw"
        rows = []
        try:
            for line, row in read_rows(valid)[:PROBE_ROWS]:
                fmt = row_format(row)
                if fmt is None:
                    continue
                ids, start = encode_row(base.tokenizer, row, fmt, "raw" if fmt == "text" else template,
                                        system, mask_prompt=True, path=valid, line=line)
                ids = ids[:PROBE_MAX_TOKENS]
                if len(ids) >= 2 and max(start - 1, 0) < len(ids) - 1:
                    rows.append((ids, max(start - 1, 0)))
        except (HarnessError, OSError, ValueError, KeyError, TypeError):
            rows = []  # a probe only: what cannot be read or encoded falls back to the fixed text
        if rows:
            what = "answers" if any(start > 0 for _, start in rows) else "text"
            return rows, f"the {what} of {len(rows)} rows of {valid}"
    ids = list(base.tokenizer.encode(PROBE_TEXT))[:PROBE_MAX_TOKENS]
    return [(ids, 0)], "a fixed text (the adapter's valid.jsonl is not here)"


def reference_logits(model: Any, probe: list[tuple[list[int], int]]) -> list[tuple[mx.array, ...]]:
    """What the comparison keeps of base + adapter's logits on each probe row, from its start:
    the argmax, the ids and logits of its ``TOP_K`` likeliest tokens, and each position's
    largest |logit| (all of a row's logits, 16 rows x 512 positions x a 150k vocabulary,
    would be gigabytes)."""
    kept = []
    for ids, start in probe:
        logits = _logits(model, ids)[start:-1]
        top = mx.argpartition(-logits, kth=min(TOP_K, logits.shape[-1]) - 1, axis=-1)[:, :TOP_K]
        kept.append((mx.argmax(logits, axis=-1), top, mx.take_along_axis(logits, top, axis=-1),
                     mx.abs(logits).max(axis=-1)))
        mx.eval(kept[-1])
    return kept


def fuse_agreement(reference: list[tuple[mx.array, ...]], model: Any, probe: list[tuple[list[int], int]],
                   source: str, rounding: float) -> dict:
    """How far ``model`` (the fused one) is from base + adapter's ``reference`` on the probe:
    the positions (from each row's start) whose argmax next token is the same, the rows where
    every one is, the largest absolute difference of the logits of base + adapter's ``TOP_K``
    likeliest tokens, and of the positions that differ, those that are not near-ties of base
    + adapter (its logit for the fused model's token is below its best by more than
    ``integrity.tie_tolerance`` allows for weights whose rounding unit is ``rounding``, as
    the generation integrity check counts them; a token outside its top ``TOP_K`` is not a
    near-tie)."""
    from ..integrity import tie_tolerance

    same = total = rows_same = beyond = 0
    diff = 0.0
    for (ids, start), (argmax, top, top_logits, largest) in zip(probe, reference):
        logits = _logits(model, ids)[start:-1]
        chosen = mx.argmax(logits, axis=-1)
        match = argmax == chosen
        n, k = int(match.size), int(match.sum().item())
        same, total, rows_same = same + k, total + n, rows_same + (k == n)
        diff = max(diff, float(mx.abs(mx.take_along_axis(logits, top, axis=-1) - top_logits).max().item()))
        in_top = top == chosen[:, None]
        margin = mx.where(in_top.any(axis=-1), top_logits.max(axis=-1) - mx.where(in_top, top_logits, -mx.inf).max(axis=-1),
                          mx.inf)
        for m, big, ok in zip(margin.tolist(), largest.tolist(), match.tolist()):
            beyond += (not ok) and m > tie_tolerance(big, rounding)
    return {"probe": source, "tokens": total, "same_next_token": same,
            "next_token_agreement": round(same / total, 4) if total else None,
            "differ_beyond_near_ties": beyond,
            "rows": len(probe), "rows_all_same": rows_same, "max_logit_difference": float(f"{diff:.3g}")}


def describe(agreement: dict) -> str:
    share = agreement.get("next_token_agreement")
    pct = f"{100 * share:.1f}%" if share is not None else "n/a"
    differ = agreement["tokens"] - agreement["same_next_token"]
    ties = (f", {differ - agreement['differ_beyond_near_ties']} of the {differ} that differ near-ties"
            if differ else "")
    return (f"On {agreement['probe']}, its next token is base + adapter's at {agreement['same_next_token']} "
            f"of {agreement['tokens']} positions ({pct}{ties}; {agreement['rows_all_same']} of {agreement['rows']} "
            f"rows at every position) and the logits of base + adapter's {TOP_K} likeliest next tokens differ by up "
            f"to {agreement['max_logit_difference']:g}")


def _save_whole(out: Path, save_into) -> None:
    """mlx-lm's ``save`` writes file by file; it writes into a temporary folder beside
    ``out`` that is renamed into place, so a kill leaves no folder or the whole one (a
    temporary left by a killed run is removed by the next)."""
    import os
    import shutil
    import tempfile

    from ..atomic import clean_stale

    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out.parent, out.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=out.parent))
    try:
        save_into(tmp)
        os.chmod(tmp, 0o755)
        if out.is_dir():
            out.rmdir()  # empty (checked before anything loaded)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
