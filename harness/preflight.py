"""Checks of files and folders before anything loads, generates or writes.

Every check here turns a broken or hostile input into one ``HarnessError`` line (exit 2)
naming the file or field and the fix, *before* a model loads or generates: an output
folder that cannot be written, a truncated safetensors file, a ``config.json`` that is
not a model config, an adapter whose shapes, rank, layers or weights do not fit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
from pathlib import Path
from typing import Any

from .errors import HarnessError
from .files import NotARegularFile, open_regular, read_input, require_utf8_name

# Bytes per element of the safetensors dtypes (for the size check of each tensor).
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2,
                "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_MAX_HEADER = 100 << 20  # the format's own limit on the JSON header


# --- output paths ------------------------------------------------------------------

def out_dir_arg(text: str) -> Path:
    """argparse ``type=`` for an output folder: an empty string is not "the current folder"."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: name an output folder, for example reports/latest")
    return Path(text)


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not os.path.lexists(probe):
        if probe.parent == probe:
            break
        probe = probe.parent
    return probe


def check_out_dir(path: str | Path, field: str = "--out") -> Path:
    """An output folder that exists as a writable folder, or can be made as one.

    Refused: "" (it would write into the current folder), the current folder or one that
    holds it (``.``, ``..``: reports and adapters are swapped into place as a whole folder,
    which cannot be done to the folder a process runs in), a file or device (``/dev/null``),
    a path under a file, a read-only folder. Nothing is created here.
    """
    if not str(path).strip():
        raise HarnessError("output folder is empty", field=field, hint="name a folder, for example reports/latest")
    out = Path(path)
    try:
        here, target = Path.cwd().resolve(), out.expanduser().resolve()
    except (OSError, RuntimeError):  # cwd deleted, a symlink loop: the checks below speak
        here = target = None
    if here is not None and (target == here or target in here.parents):
        what = "the current folder" if target == here else f"a folder holding the current folder ({here})"
        raise HarnessError(f"output folder is {what}", path=out, field=field,
                           hint="name a subfolder, for example reports/latest or adapters/v2")
    require_utf8_name(out, "output folder", field=field)
    _writable_folder(out, field)
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir() and parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        # the new set is written beside the folder and swapped in: its parent must take it
        raise HarnessError(f"output folder cannot be replaced: {parent} is read-only", path=out, field=field,
                           hint="name a folder whose parent you can write to")
    return out


def _writable_folder(out: Path, field: str) -> Path:
    if os.path.lexists(out) and not out.is_dir():
        kind = "a file" if out.is_file() else "not a folder (a device, socket, FIFO or broken link)"
        raise HarnessError(f"output folder is {kind}", path=out, field=field,
                           hint="name a new or existing folder")
    existing = out if out.is_dir() else _nearest_existing(out.parent if str(out.parent) else Path("."))
    if not existing.is_dir():
        raise HarnessError(f"cannot make the output folder: {existing} is not a folder", path=out, field=field,
                           hint="name a folder that is not under a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise HarnessError(f"output folder is not writable ({existing} is read-only)", path=out, field=field,
                           hint="name a folder you can write to")
    return out


def check_out_file(path: str | Path, field: str) -> Path:
    """An output file (its folder is checked as ``check_out_dir``); not a folder or device."""
    out = Path(path)
    if not str(path).strip():
        raise HarnessError("output file is empty", field=field, hint="name a file")
    if os.path.lexists(out) and not out.is_file():
        raise HarnessError("output file is a folder or device", path=out, field=field, hint="name a file")
    _writable_folder(out.parent if str(out.parent) else Path("."), field=field)  # "." is fine for a file
    return out


# --- safetensors -------------------------------------------------------------------

def safetensors_header(path: str | Path) -> dict[str, dict]:
    """The tensors of a safetensors file ({name: {dtype, shape, data_offsets}}), checked
    against the file's size, without reading the data. Truncated or empty: HarnessError."""
    path = Path(path)
    fix = "the file is truncated or corrupt: copy or download it again"
    not_a_file = "put the weight file itself there, or move it out of the folder"
    try:
        with open_regular(path) as fh:  # a FIFO or device would block the read, or never end
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(8)
            if len(head) < 8:
                raise HarnessError(f"not a safetensors file ({size} bytes)", path=path, hint=fix)
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER or 8 + n > size:
                raise HarnessError(f"safetensors header says {n} bytes but the file has {size}", path=path, hint=fix)
            raw = fh.read(n)
    except IsADirectoryError:  # model-00002-of-00002.safetensors/ (an unpacked archive, a wrong copy)
        raise HarnessError("is a folder, not a safetensors file", path=path, hint=not_a_file) from None
    except NotARegularFile as exc:  # not truncated: the hint said so of a FIFO
        raise HarnessError(exc.strerror, path=path, hint=not_a_file) from None
    except OSError as exc:
        raise HarnessError(f"cannot read: {exc.strerror}", path=path) from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HarnessError("safetensors header is not valid JSON", path=path, hint=fix) from None
    if not isinstance(header, dict):
        raise HarnessError("safetensors header is not a JSON object", path=path, hint=fix)
    data_size = size - 8 - n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        ok = (isinstance(info, dict) and info.get("dtype") in _DTYPE_BYTES
              and isinstance(info.get("shape"), list)
              and all(isinstance(d, int) and d >= 0 for d in info["shape"])
              and isinstance(info.get("data_offsets"), list) and len(info["data_offsets"]) == 2
              and all(isinstance(o, int) for o in info["data_offsets"]))
        if not ok:
            raise HarnessError(f"tensor {name!r} has a malformed entry", path=path, hint=fix)
        begin, end = info["data_offsets"]
        if not 0 <= begin <= end <= data_size:
            raise HarnessError(f"tensor {name!r} lies past the end of the file ({end} > {data_size} bytes)",
                               path=path, hint=fix)
        if end - begin != math.prod(info["shape"]) * _DTYPE_BYTES[info["dtype"]]:
            raise HarnessError(f"tensor {name!r} has {end - begin} bytes for shape {info['shape']}",
                               path=path, hint=fix)
        tensors[name] = info
    return tensors


# --- model folders -----------------------------------------------------------------

WEIGHTS_GLOB = "model*.safetensors"  # mlx_lm.utils.load_model's: other weight files are never loaded


def read_json_object(path: Path, what: str) -> dict:
    try:
        data = json.loads(read_input(path, what).decode("utf-8"))
    except UnicodeDecodeError:
        raise HarnessError("not UTF-8 text", path=path, hint=f"{path.name} must be a UTF-8 JSON file") from None
    except json.JSONDecodeError as exc:
        raise HarnessError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    except (RecursionError, ValueError) as exc:
        raise HarnessError(f"unreadable JSON: {type(exc).__name__}", path=path) from None
    except OSError as exc:
        raise HarnessError(f"cannot read: {exc.strerror}", path=path) from None
    if not isinstance(data, dict):
        raise HarnessError(f"{what} must be a JSON object, not {type(data).__name__}", path=path,
                           hint=f"is this {path.name} from a model folder?")
    return data


def num_blocks(config: dict) -> int | None:
    """The number of transformer blocks a model config declares (None if it says none)."""
    for cfg in (config, config.get("text_config") if isinstance(config.get("text_config"), dict) else {}):
        for key in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
            if isinstance(cfg.get(key), int) and not isinstance(cfg.get(key), bool):
                return cfg[key]
    return None


def check_model_folder(folder: str | Path) -> dict:
    """A local model folder mlx-lm can load: config.json an object with ``model_type`` and
    ``hidden_size`` (or its text config's), weight files mlx-lm reads (``WEIGHTS_GLOB``) whose
    headers fit their sizes. Any other *.safetensors (``weights.safetensors``, an adapter's)
    passed here and failed inside mlx-lm with an unclear error."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        what = "is not a folder" if os.path.lexists(folder) else "model folder not found"
        raise HarnessError(what, path=folder, field="--model", hint="pass the mlx-lm model folder")
    require_utf8_name(folder, "model folder", field="--model")
    # every entry mlx-lm's glob loads, files or not: a folder or FIFO named model.safetensors
    # is named as what it is (safetensors_header), not "no weights" or mlx-lm's "[read]"
    weights = sorted(folder.glob(WEIGHTS_GLOB))
    if not weights and any((folder / n).is_file() for n in ("adapters.safetensors", "adapter_config.json")):
        # a common mistake; without this, "cannot read config.json" or mlx-lm's own error
        raise HarnessError("this is an adapter folder, not a model folder", path=folder, field="--model",
                           hint=f"pass it as --adapter NAME={folder} with --model its base "
                                "(the `model` its adapter_config.json names)")
    config = read_json_object(folder / "config.json", "config.json")
    text_cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    if not isinstance(config.get("model_type"), str):
        raise HarnessError("config.json has no `model_type`", path=folder / "config.json", field="model_type",
                           hint="is this an mlx-lm / Hugging Face model folder?")
    sizes = [c.get(k) for c in (config, text_cfg) for k in ("hidden_size", "d_model", "n_embd", "dim")]
    if not any(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise HarnessError("config.json has no positive `hidden_size`", path=folder / "config.json",
                           field="hidden_size", hint="the model config is incomplete or corrupt")
    if not weights:
        others = sorted(p.name for p in folder.glob("*.safetensors"))
        raise HarnessError(f"no {WEIGHTS_GLOB} weights in the model folder"
                           + (f" ({', '.join(others[:3])} {'is' if len(others) == 1 else 'are'} not read by "
                              "mlx-lm's loader)" if others else ""),
                           path=folder, field="--model",
                           hint=f"mlx-lm loads only {WEIGHTS_GLOB}: pass an mlx-lm model folder "
                                "(mlx_lm.convert writes one), or rename the weights model.safetensors")
    for f in weights:
        require_utf8_name(f, "weight file")  # mlx cannot open it: "std::bad_cast"
        safetensors_header(f)
    return config


def check_chat_template(folder: str | Path, template: Any, name: str | None = None) -> None:
    """A chat template that compiles (a broken one would fail on the first chat prompt); of
    named templates (tokenizer_config's list form, a dict once loaded) the one chat prompts
    use, ``default``."""
    if isinstance(template, dict):
        if "default" in template:
            check_chat_template(folder, template["default"], name="default")
        return
    if not isinstance(template, str):
        return
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                      extensions=["jinja2.ext.loopcontrols"]).parse(template)
    except TemplateSyntaxError as exc:
        where = Path(folder) / "chat_template.jinja"
        if name is not None or not where.is_file():
            where = Path(folder) / "tokenizer_config.json"
        raise HarnessError(f"chat template{f' {name!r}' if name is not None else ''} does not compile: "
                           f"{exc.message}", path=where,
                           line=exc.lineno if where.name.endswith(".jinja") else None,
                           hint="fix the template or remove it to use raw prompts") from None


# --- adapters ----------------------------------------------------------------------

ADAPTER_TYPES = ("lora", "dora", "full")


def check_adapter_config(path: Path, config: dict) -> None:
    """Fields mlx-lm's ``load_adapters`` reads, with types it can use."""
    cfg_file = path / "adapter_config.json"

    def bad(field: str, message: str, hint: str | None = None) -> HarnessError:
        return HarnessError(message, path=cfg_file, field=field, hint=hint)

    kind = config.get("fine_tune_type", "lora")
    if kind not in ADAPTER_TYPES:
        raise bad("fine_tune_type", f"unknown fine-tune type {kind!r}", hint="lora, dora or full")
    if kind == "full":
        return
    n = config.get("num_layers")
    if not isinstance(n, int) or isinstance(n, bool) or n == 0 or n < -1:
        raise bad("num_layers", f"must be -1 or a positive count, got {n!r}")
    lp = config.get("lora_parameters")
    if not isinstance(lp, dict):
        raise bad("lora_parameters", "missing or not an object", hint="an mlx-lm adapter records rank, scale, dropout")
    rank = lp.get("rank")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise bad("lora_parameters.rank", f"must be a positive integer, got {rank!r}")
    for key in ("scale", "dropout"):
        value = lp.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad(f"lora_parameters.{key}", f"must be a finite number, got {value!r}")
    keys = lp.get("keys")
    if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise bad("lora_parameters.keys", "must be a list of module paths")


def check_adapter_weights(path: Path, config: dict) -> None:
    """adapters.safetensors: whole, each LoRA pair of the recorded rank, every value finite."""
    import mlx.core as mx

    weights_file = path / "adapters.safetensors"
    header = safetensors_header(weights_file)
    if not header:
        raise HarnessError("adapter has no tensors", path=weights_file, hint="the adapter was not saved")
    kind = config.get("fine_tune_type", "lora")
    if kind != "full":
        rank = config["lora_parameters"]["rank"]
        for name, info in header.items():
            leaf, shape = name.rsplit(".", 1)[-1], info["shape"]
            got = shape[-1] if leaf == "lora_a" else shape[0] if leaf == "lora_b" else None
            if leaf in ("lora_a", "lora_b") and (len(shape) < 2 or got != rank):
                raise HarnessError(f"tensor {name} has shape {shape}, not rank {rank} as adapter_config.json says",
                                   path=weights_file, field="lora_parameters.rank",
                                   hint="the weights and the config come from different adapters")
    try:
        arrays = mx.load(str(weights_file))
    except (RuntimeError, ValueError) as exc:
        raise HarnessError(f"cannot read adapter weights: {str(exc).splitlines()[0]}", path=weights_file) from None
    for name, array in arrays.items():
        if mx.issubdtype(array.dtype, mx.floating) and not bool(mx.all(mx.isfinite(array)).item()):
            raise HarnessError(f"tensor {name} has NaN or infinite values", path=weights_file,
                               hint="training diverged: retrain with a lower learning rate, or use an "
                                    "earlier checkpoint")


def check_adapter_depth(path: Path, config: dict, model_config: dict, base: str = "the base") -> None:
    """An adapter's tensors name blocks the base has (from config.json, before loading)."""
    depth = num_blocks(model_config)
    if depth is None:
        return
    header = safetensors_header(path / "adapters.safetensors")
    import re

    blocks = sorted({int(m.group(1)) for name in header for m in [re.search(r"\blayers\.(\d+)\.", name)] if m})
    if blocks and blocks[-1] >= depth:
        raise HarnessError(f"adapter does not fit base {base}: it has weights for block {blocks[-1]}, "
                           f"the base has {depth} blocks",
                           path=path, field="num_layers",
                           hint="this adapter was trained on a base of another size: pass its own base with --model")


def read_adapter_config(path: Path) -> dict:
    """adapter_config.json of an mlx-lm adapter folder (both files must be there)."""
    cfg = path / "adapter_config.json"
    if not cfg.is_file() or not (path / "adapters.safetensors").is_file():
        raise HarnessError(
            "not an mlx-lm adapter folder (needs adapter_config.json and adapters.safetensors)",
            path=path, hint="pass --adapter NAME=DIR with the folder `harness train` or mlx_lm.lora wrote",
        )
    return read_json_object(cfg, "adapter_config.json")


def check_adapter(path: str | Path, model_config: dict | None = None, base: str = "the base") -> dict:
    """Everything about an adapter folder that can be checked without loading a model;
    returns its adapter_config.json."""
    path = Path(path)
    require_utf8_name(path, "adapter folder", field="--adapter")
    config = read_adapter_config(path)
    check_adapter_config(path, config)
    check_adapter_weights(path, config)
    if model_config is not None:
        check_adapter_depth(path, config, model_config, base)
    return config


__all__ = ["WEIGHTS_GLOB", "out_dir_arg", "check_out_dir", "check_out_file", "safetensors_header",
           "read_json_object", "num_blocks", "check_model_folder", "check_chat_template", "check_adapter_config",
           "check_adapter_weights", "check_adapter_depth", "check_adapter", "read_adapter_config"]
