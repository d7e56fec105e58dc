"""The training configuration: one dataclass, read from YAML, with ``--key value`` overrides.

Names follow mlx-lm's LoRA config where the meaning is the same (``model``, ``data``,
``adapter_path``, ``num_layers``, ``lora_parameters``, ``lr_schedule``), so a user's mlx-lm
YAML needs few edits; where the meaning differs the name differs too (``steps`` counts
optimizer updates, mlx-lm's ``iters`` counts micro-batches). An unknown key is an error
that names its YAML line, never a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import HarnessError

DATA_FORMATS = ("auto", "text", "completions", "chat")
TEMPLATES = ("auto", "chat", "raw")
OPTIMIZERS = ("adamw", "adam", "sgd")
# mlx-lm keys whose harness name differs; the error says which to use.
RENAMED = {
    "iters": "steps (optimizer updates; mlx-lm's iters count micro-batches)",
    "steps_per_eval": "eval_every",
    "steps_per_report": "report_every",
    "val_batches": "val_rows (-1 = all of valid.jsonl, N = a fixed seeded subset)",
    "resume_adapter_file": "--resume (continues from the adapter folder's checkpoint)",
    "train": "nothing: `harness train` always trains",
}


@dataclass
class LoraParameters:
    rank: int = 8
    scale: float = 20.0
    dropout: float = 0.0
    # Module paths inside each transformer block, e.g. ["self_attn.q_proj"]; None means
    # every linear layer of the block. The adapter always records the explicit list.
    keys: list[str] | None = None


@dataclass
class TrainConfig:
    model: str = ""
    data: str = ""
    adapter_path: str = "adapters"
    format: str = "auto"
    template: str = "auto"
    system: str | None = None
    mask_prompt: bool | None = None  # None: True for completions/chat, False for text
    num_layers: int = 16  # last N blocks get LoRA; -1 = all
    lora_parameters: LoraParameters = field(default_factory=LoraParameters)
    optimizer: str = "adamw"
    optimizer_config: dict = field(default_factory=dict)
    learning_rate: float = 1e-4
    lr_schedule: dict | None = None  # mlx-lm's form: {name, arguments, warmup, warmup_init}
    batch_size: int = 4
    grad_accumulation_steps: int = 1
    max_seq_length: int = 2048
    grad_checkpoint: bool = False
    seed: int = 0
    steps: int = 1000
    report_every: int = 10
    eval_every: int = 200
    save_every: int = 100
    val_rows: int = -1
    val_batch_size: int | None = None
    pad_multiple: int = 8  # pad batch length to a multiple (fewer compiled shapes)
    # Run a batch larger than this many padded tokens as row slices, one after another:
    # the same update, less peak memory on long-tail batches. None: whole batches.
    max_batch_tokens: int | None = None

    def identity(self) -> dict:
        """Settings that must match for ``--resume`` to continue the same run: all but the
        run length, the intervals, and the knobs that trade memory for time (so a run that
        ran out of memory can resume with ``--max_batch_tokens``)."""
        d = dataclasses.asdict(self)
        for k in ("steps", "report_every", "eval_every", "save_every", "adapter_path", "grad_checkpoint",
                  "max_batch_tokens"):
            d.pop(k)
        return d

    def identity_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()[:16]


def _line_of(root: yaml.Node | None, path: list[str]) -> int | None:
    node, line = root, None
    for part in path:
        if not isinstance(node, yaml.MappingNode):
            break
        for key, value in node.value:
            if key.value == part:
                node, line = value, key.start_mark.line + 1
                break
        else:
            break
    return line


def _coerce(value: Any, annotation: str, where: dict) -> Any:
    """Check a YAML value against the dataclass field's annotation (as a string)."""
    optional = "None" in annotation
    if value is None:
        if optional:
            return None
        raise HarnessError("must not be empty", **where)
    base = annotation.replace(" | None", "")
    if base == "bool":
        if isinstance(value, bool):
            return value
        raise HarnessError(f"expected true or false, got {value!r}", **where)
    if base == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise HarnessError(f"expected an integer, got {value!r}", **where)
    if base == "float":
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            try:  # YAML 1.1 reads 1e-3 (no dot) as a string
                number = float(value)
            except (TypeError, ValueError, OverflowError):
                pass
        if number is not None and math.isfinite(number):
            return number
        raise HarnessError(f"expected a finite number, got {value!r}", **where)
    if base == "str":
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise HarnessError(f"expected a string, got {value!r}", **where)
    if base == "dict":
        if isinstance(value, dict):
            return value
        raise HarnessError(f"expected a mapping, got {value!r}", **where)
    if base == "list[str]":
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise HarnessError(f"expected a list of strings, got {value!r}", **where)
    raise AssertionError(f"unhandled annotation {annotation}")


def _unknown(key: str, allowed: list[str], where: dict) -> HarnessError:
    if key in RENAMED:
        hint = f"use {RENAMED[key]}"
    else:
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"allowed: {', '.join(allowed)}"
    return HarnessError(f"unknown setting `{key}`", hint=hint, **where)


def _build(cls: type, data: dict, prefix: str, path: str | None, root: yaml.Node | None) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        where = dict(path=path, line=_line_of(root, (prefix + key).split(".")),
                     field=prefix + key)
        if key not in fields:
            raise _unknown(key, list(fields), where)
        annotation = fields[key].type
        if annotation == "LoraParameters":
            if not isinstance(value, dict):
                raise HarnessError("expected a mapping (rank, scale, dropout, keys)", **where)
            kwargs[key] = _build(LoraParameters, value, prefix + key + ".", path, root)
        else:
            kwargs[key] = _coerce(value, annotation, where)
    return cls(**kwargs)


def _check(cfg: TrainConfig, path: str | None, root: yaml.Node | None) -> None:
    def bad(name: str, message: str, hint: str | None = None) -> HarnessError:
        return HarnessError(message, path=path, line=_line_of(root, name.split(".")), field=name,
                            hint=hint)

    for name in ("model", "data"):
        if not getattr(cfg, name):
            raise bad(name, "is required", hint=f"set `{name}:` in the config or pass --{name}")
    choices = {"format": DATA_FORMATS, "template": TEMPLATES, "optimizer": OPTIMIZERS}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise bad(name, f"unknown value {getattr(cfg, name)!r}", hint=f"use one of: {', '.join(allowed)}")
    positive = ("batch_size", "grad_accumulation_steps", "max_seq_length", "steps", "report_every",
                "eval_every", "save_every", "pad_multiple")
    for name in positive:
        if getattr(cfg, name) < 1:
            raise bad(name, f"must be at least 1, got {getattr(cfg, name)}")
    for name in ("val_batch_size", "max_batch_tokens"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
            raise bad(name, "must be at least 1")
    if cfg.val_rows == 0 or cfg.val_rows < -1:
        raise bad("val_rows", f"must be -1 (all) or a positive count, got {cfg.val_rows}")
    if cfg.num_layers == 0 or cfg.num_layers < -1:
        raise bad("num_layers", f"must be -1 (all) or a positive count, got {cfg.num_layers}")
    lp = cfg.lora_parameters
    if lp.rank < 1:
        raise bad("lora_parameters.rank", f"must be at least 1, got {lp.rank}")
    if not 0.0 <= lp.dropout < 1.0:
        raise bad("lora_parameters.dropout", f"must be in [0, 1), got {lp.dropout}")
    if cfg.learning_rate <= 0:
        raise bad("learning_rate", f"must be positive, got {cfg.learning_rate}")
    if cfg.lr_schedule is not None:
        import mlx.optimizers as optim

        name = cfg.lr_schedule.get("name")
        if not isinstance(name, str) or name.startswith("_") or not callable(
                getattr(optim.schedulers, name, None)):
            raise bad("lr_schedule.name", f"unknown schedule {name!r}",
                      hint="use cosine_decay, linear_schedule, exponential_decay or step_decay")
        if not isinstance(cfg.lr_schedule.get("arguments"), list):
            raise bad("lr_schedule.arguments", "expected a list of the schedule's arguments",
                      hint="e.g. {name: cosine_decay, arguments: [1e-4, 1000], warmup: 50}")
        extra = set(cfg.lr_schedule) - {"name", "arguments", "warmup", "warmup_init"}
        if extra:
            raise bad("lr_schedule", f"unknown keys {sorted(extra)}",
                      hint="allowed: name, arguments, warmup, warmup_init")


def parse_overrides(pairs: list[str]) -> dict:
    """``["--batch-size", "8", "--lora_parameters.rank", "4"]`` -> nested dict of YAML values."""
    out: dict = {}
    i = 0
    while i < len(pairs):
        key = pairs[i]
        if not key.startswith("--") or len(key) < 3:
            raise HarnessError(f"unexpected argument {key!r}",
                               hint="overrides are `--key value`, e.g. --batch_size 8")
        if i + 1 >= len(pairs):
            raise HarnessError(f"override {key} has no value", hint="overrides are `--key value`")
        raw = pairs[i + 1]
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        parts = key[2:].replace("-", "_").split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
        i += 2
    return out


def _merge(base: dict, over: dict) -> dict:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML config (relative paths are relative to the current directory, as in
    mlx-lm), apply overrides, and check every field before anything loads."""
    data: dict = {}
    root = None
    where = str(path) if path is not None else None
    if path is not None:
        if Path(path).is_dir():
            raise HarnessError("training config is a folder", path=path, hint="pass the config's YAML file")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise HarnessError("training config not found", path=path) from None
        except UnicodeDecodeError:
            raise HarnessError("training config is not UTF-8 text", path=path) from None
        except OSError as exc:
            raise HarnessError(f"cannot read training config: {exc.strerror}", path=path) from None
        from .. import yamlsafe  # aliases, depth, duplicate keys, .nan/.inf refused with their line

        data, root = yamlsafe.load(text, path)
        data = data if data is not None else {}
        if not isinstance(data, dict):
            raise HarnessError("a training config must be a YAML mapping", path=path, line=1)
    if overrides:
        # Overrides are reported as command-line fields, not YAML lines.
        _build(TrainConfig, overrides, "", "command line", None)
        data = _merge(data, overrides)
        for key in overrides:
            if root is not None:
                root.value = [(k, v) for k, v in root.value if k.value != key]
    cfg = _build(TrainConfig, data, "", where, root)
    _check(cfg, where, root)
    return cfg


def config_from_dict(data: dict) -> TrainConfig:
    """The Python API's entry: the same checks as a YAML file."""
    cfg = _build(TrainConfig, data, "", None, None)
    _check(cfg, None, None)
    return cfg
