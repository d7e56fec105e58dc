"""The training configuration: one dataclass, read from YAML, with ``--key value`` overrides.

Its shape is ``schemas/train.schema.json`` (JSON Schema, as for suites), checked with the
YAML line of the first problem; the dataclass is what the trainer reads.

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
from typing import Any, ClassVar

import yaml

from ..errors import HarnessError
from ..yamlpos import node_line, validate_with_lines

# mlx-lm keys whose harness name differs; the error says which to use.
RENAMED = {
    "iters": "steps (optimizer updates; mlx-lm's iters count micro-batches)",
    "steps_per_eval": "eval_every",
    "steps_per_report": "report_every",
    "val_batches": "val_rows (-1 = all of valid.jsonl, N = a fixed seeded subset)",
    "resume_adapter_file": "--resume (continues from the adapter folder's checkpoint)",
    "train": "nothing: `harness train` always trains",
    "fine_tune_type": "nothing: `harness train` trains LoRA (delete the line; DoRA and full fine-tunes "
                      "are mlx_lm.lora's, and `harness eval` reads those adapters)",
    "test": "nothing: a test.jsonl in the data folder is evaluated after the last step",
    "test_batches": "nothing: all of test.jsonl is evaluated",
    "report_to": "nothing: the losses are in train_log.jsonl, which the scorecard draws",
    "project_name": "nothing: the losses are in train_log.jsonl, which the scorecard draws",
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
    # The YAML file the settings were read from, as the user named it (``load_config`` sets it
    # on the instance), for hints that name a command to run (`harness lint-data DATA --config
    # FILE`). A ClassVar, not a field: no setting, no part of ``identity`` (a moved config
    # resumes its run), not in `train --help`'s keys. None: a config built from a dict.
    config_file: ClassVar[str | None] = None

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


def _number_strings(data: Any, schema: dict) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as a string: read such strings as numbers where the
    schema wants a number, as a user means them."""
    if isinstance(data, dict):
        props = schema.get("properties") or {}
        return {k: _number_strings(v, props.get(k) or {}) for k, v in data.items()}
    if isinstance(data, list):
        return [_number_strings(v, schema.get("items") or {}) for v in data]
    types = schema.get("type")
    wants_number = types == "number" or (isinstance(types, list) and "number" in types)
    if wants_number and isinstance(data, str):
        try:
            number = float(data)
        except ValueError:
            return data
        return number if math.isfinite(number) else data
    return data


def _finite(data: Any, prefix: str, path: str | None, root: yaml.Node | None) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            _finite(v, f"{prefix}{k}.", path, root)
    elif isinstance(data, list):
        for v in data:
            _finite(v, prefix, path, root)
    elif isinstance(data, float) and not math.isfinite(data):
        name = prefix.rstrip(".")
        raise HarnessError(f"must be a finite number, got {data}", path=path, field=name,
                           line=node_line(root, name.split(".")) if root is not None else None)


def _unknown_keys(data: dict, prefix: str, allowed: list[str], path: str | None,
                  root: yaml.Node | None) -> None:
    """An unknown key names its line, with mlx-lm's renamed keys or the closest name."""
    for key in data:
        if key in allowed:
            continue
        if key in RENAMED and not prefix:
            hint = f"use {RENAMED[key]}"
        else:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean `{close[0]}`?" if close else f"allowed: {', '.join(allowed)}"
        raise HarnessError(f"unknown setting `{key}`", path=path, line=node_line(root, (prefix + str(key)).split(".")),
                           field=prefix + str(key), hint=hint)


def _validated(data: dict, path: str | None, root: yaml.Node | None) -> TrainConfig:
    """The config's shapes are checked by ``schemas/train.schema.json`` (as suites are by
    theirs), with the YAML line of the first problem; then the dataclass is built."""
    schema = train_schema()
    data = _number_strings(data, schema)
    _finite(data, "", path, root)  # NaN passes every range check of a schema (it compares false)
    _unknown_keys(data, "", list(schema["properties"]), path, root)
    if isinstance(data.get("lora_parameters"), dict):
        _unknown_keys(data["lora_parameters"], "lora_parameters.",
                      list(schema["properties"]["lora_parameters"]["properties"]), path, root)
    validate_with_lines(data, schema, path, root)
    values = dict(data)
    if "lora_parameters" in values:
        values["lora_parameters"] = LoraParameters(**values["lora_parameters"])
    return TrainConfig(**values)


def train_schema() -> dict:
    from ..suite import load_schema

    return load_schema("train.schema.json")


def _check(cfg: TrainConfig, path: str | None, root: yaml.Node | None,
           overridden: frozenset[str] = frozenset()) -> None:
    """What a schema cannot say: required-by-now fields (overrides may supply them), the
    counts where 0 means nothing, the schedule and optimizer options mlx can use. A field
    set by an override (``overridden``) is reported as the command line's, not a YAML line."""
    def bad(name: str, message: str, hint: str | None = None) -> HarnessError:
        if name.split(".")[0] in overridden:
            return HarnessError(message, path="command line", field=name, hint=hint)
        return HarnessError(message, path=path, line=node_line(root, name.split(".")), field=name,
                            hint=hint)

    for name in ("model", "data"):
        if not getattr(cfg, name):
            raise bad(name, "is required", hint=f"set `{name}:` in the config or pass --{name}")
    if cfg.val_rows == 0:
        raise bad("val_rows", "must be -1 (all) or a positive count, got 0")
    if cfg.num_layers == 0:
        raise bad("num_layers", "must be -1 (all) or a positive count, got 0")
    if cfg.pad_multiple > cfg.max_seq_length:
        # Every batch is padded up to a multiple of pad_multiple: above max_seq_length that
        # width is pad_multiple itself, whatever the rows' length (pad_multiple 100000 put
        # 100000-token rows in every batch: a memory blow-up, not an error). At most
        # max_seq_length keeps a batch under twice the longest row allowed.
        raise bad("pad_multiple", f"is {cfg.pad_multiple}, above max_seq_length={cfg.max_seq_length}: every "
                                  f"batch would be padded to {cfg.pad_multiple} tokens a row",
                  hint=f"use a small multiple (8, the default; 32 as mlx-lm pads) of at most {cfg.max_seq_length}")
    if cfg.lr_schedule is not None:
        import mlx.optimizers as optim

        name = cfg.lr_schedule.get("name")
        if not isinstance(name, str) or name.startswith("_") or not callable(
                getattr(optim.schedulers, name, None)):
            raise bad("lr_schedule.name", f"unknown schedule {name!r}",
                      hint="use cosine_decay, linear_schedule, exponential_decay or step_decay")
    _try_optimizer(cfg, bad)


OPTIMIZER_CLASSES = {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD"}  # in mlx.optimizers


def build_optimizer(cfg: TrainConfig) -> Any:
    """The optimizer (with its learning-rate schedule) the config describes."""
    import mlx.optimizers as optim
    from mlx_lm.tuner.utils import build_schedule

    lr = build_schedule(cfg.lr_schedule) if cfg.lr_schedule else cfg.learning_rate
    return getattr(optim, OPTIMIZER_CLASSES[cfg.optimizer])(learning_rate=lr, **cfg.optimizer_config)


# mlx-lm nests optimizer_config by optimizer name ({adamw: {weight_decay: 0.01}}).
MLX_LM_OPTIMIZER_NAMES = ("adam", "adamw", "sgd", "muon", "adafactor")


def _try_optimizer(cfg: TrainConfig, bad) -> None:
    """Build the schedule and the optimizer and take one step on a dummy parameter, so
    arguments mlx cannot use (wrong count, a zero step size, a string weight decay) stop
    here with their line, not as an internal error once the model and data have loaded."""
    import mlx.core as mx


    nested = [k for k, v in cfg.optimizer_config.items() if k in MLX_LM_OPTIMIZER_NAMES and isinstance(v, dict)]
    if nested:
        raise bad("optimizer_config", f"`{nested[0]}:` nests options by optimizer name (mlx-lm's form)",
                  hint=f"write the options of `optimizer: {cfg.optimizer}` directly, "
                       f"e.g. optimizer_config: {{weight_decay: 0.01}}")
    if cfg.lr_schedule is not None:
        from mlx_lm.tuner.utils import build_schedule

        args = cfg.lr_schedule["arguments"]
        try:
            float(build_schedule(cfg.lr_schedule)(mx.array(1)).item())
        except (TypeError, ValueError, IndexError) as exc:
            raise bad("lr_schedule.arguments",
                      f"mlx cannot build {cfg.lr_schedule['name']}({', '.join(map(repr, args))}): {exc}",
                      hint="give the schedule's positional arguments, e.g. cosine_decay: "
                           "[peak, decay_steps, end]") from None
    try:
        optimizer = build_optimizer(cfg)
        weights = {"w": mx.ones((2,))}
        optimizer.init(weights)
        mx.eval(optimizer.apply_gradients({"w": mx.ones((2,))}, weights))
    except (TypeError, ValueError) as exc:
        given = ", ".join(sorted(map(str, cfg.optimizer_config))) or "none"
        raise bad("optimizer_config", f"{cfg.optimizer} cannot use these options ({given}): {exc}",
                  hint=f"see mlx.optimizers.{OPTIMIZER_CLASSES[cfg.optimizer]} for its arguments") from None


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
        from .. import yamlsafe  # size, aliases, depth, duplicate keys, .nan/.inf refused with their line

        data, root = yamlsafe.read(path, "training config", too_large_hint="a training config holds settings: "
                                   "training rows go in the JSONL files of its `data:` folder")
        data = data if data is not None else {}
        if not isinstance(data, dict):
            raise HarnessError("a training config must be a YAML mapping", path=path, line=1)
    if overrides:
        # Overrides are reported as command-line fields, not YAML lines.
        _validated(overrides, "command line", None)
        data = _merge(data, overrides)
        for key in overrides:
            if root is not None:
                root.value = [(k, v) for k, v in root.value if k.value != key]
    cfg = _validated(data, where, root)
    _check(cfg, where, root, frozenset(overrides or ()))
    cfg.config_file = where
    return cfg


def config_from_dict(data: dict) -> TrainConfig:
    """The Python API's entry: the same checks as a YAML file."""
    cfg = _validated(dict(data), None, None)
    _check(cfg, None, None)
    return cfg
