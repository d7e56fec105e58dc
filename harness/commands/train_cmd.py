"""`harness train`, `harness lint-data` and `harness fuse`: the trainer's commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import terminal
from ..preflight import out_dir_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a LoRA adapter (writes an mlx-lm adapter folder)",
        description="Train a LoRA adapter from a YAML config. Any config key can be overridden\n"
                    "as `--key value` (nested: --lora_parameters.rank 4). For data-parallel\n"
                    "training run it under `mlx.launch -n N --backend ring`.",
        epilog=config_keys_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", metavar="CONFIG.yaml", help="training config (see harness/train/config.py)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in adapter_path from its last checkpoint")
    p.add_argument("--allow-lint-errors", action="store_true",
                   help="train even when `harness lint-data` finds errors in the data "
                        "(by default the first error stops training, exit 2; warnings, and errors "
                        "allowed, are printed before the first step and kept in train_log.jsonl)")
    p.add_argument("--quiet", action="store_true",
                   help="no live progress on stderr (steps, tokens/s, ETA; the log file is still written)")
    p.add_argument("--collective-timeout", metavar="SECONDS",
                   help="under mlx.launch: seconds a rank waits for the others (a training step with its "
                        "gradient sums, the validation loss's sums) before it gives up with exit 3 (default: "
                        "max(300, 5 x its longest step or own work between collectives); 0: no limit; "
                        "also $HARNESS_COLLECTIVE_TIMEOUT)")
    p.add_argument("overrides", nargs=argparse.REMAINDER, metavar="--key value",
                   help="config overrides")
    p.set_defaults(func=run_train)

    p = sub.add_parser(
        "lint-data", help="check training data before training",
        description="Check train/valid/test.jsonl for what ruins fine-tunes; one line per "
                    "problem; exit 1 when there are errors.")
    p.add_argument("data", metavar="DIR", help="folder with train.jsonl, valid.jsonl (and test.jsonl)")
    p.add_argument("--schema", type=Path, help="JSON Schema every answer must be valid JSON for")
    p.add_argument("--config", type=Path,
                   help="a training config: encode rows with its model, template, system and "
                        "max_seq_length, as `harness train` will")
    p.add_argument("--model", help="base model folder whose tokenizer encodes the rows "
                                   "(token checks: length, EOS); overrides the config's")
    p.add_argument("--max-seq-length", type=int, help="longest row in tokens (default: the config's, or 2048)")
    p.set_defaults(func=run_lint)

    p = sub.add_parser(
        "fuse", help="merge an adapter into a copy of its base model",
        description="Write a model folder whose weights are the base's plus the adapter's "
                    "low-rank update; it loads with mlx_lm.load like any model.")
    p.add_argument("--model", required=True, help="the base model folder the adapter was trained on")
    p.add_argument("--adapter", required=True, type=Path, help="the adapter folder")
    p.add_argument("--out", required=True, type=out_dir_arg, help="new folder for the fused model")
    p.add_argument("--allow-base-mismatch", action="store_true",
                   help="fuse onto a shape-compatible base other than the adapter's own")
    p.add_argument("--dequantize", action="store_true",
                   help="on a quantized base: write the model unquantized (as mlx_lm.fuse --dequantize), "
                        "the evaluated base + adapter up to float rounding, but larger; without it the fused "
                        "layers are quantized again (as mlx-lm does) and a warning gives how far that moved "
                        "the next tokens")
    p.set_defaults(func=run_fuse)


def config_keys_help() -> str:
    """Every TrainConfig key with its default, read from the dataclass (so it cannot drift)."""
    import dataclasses

    from ..train.config import TrainConfig

    def default(f: dataclasses.Field):
        if f.default is not dataclasses.MISSING:
            return f.default
        return f.default_factory()  # type: ignore[misc]

    def show(v) -> str:
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if v == "":
            return '""  (required)'
        return json.dumps(v) if isinstance(v, (dict, list)) else str(v)

    rows = []
    for f in dataclasses.fields(TrainConfig):
        value = default(f)
        if dataclasses.is_dataclass(value):
            for sub in dataclasses.fields(value):
                rows.append((f"{f.name}.{sub.name}", show(getattr(value, sub.name))))
        else:
            rows.append((f.name, show(value)))
    width = max(len(k) for k, _ in rows)
    lines = [f"  {k:<{width}}  {v}" for k, v in rows]
    return ("config keys (YAML, or --key value on the command line) and their defaults:\n"
            + "\n".join(lines)
            + "\n\nA documented example: fixtures/train_configs/wikisql.yaml.\n"
              "A warmup (lr_schedule.warmup) at least as long as the run is warned about, and so are\n"
              "rows longer than the model's positions (config.json's max_position_embeddings).")


def run_train(args: argparse.Namespace) -> int:
    from ..train import load_config, parse_overrides, train

    rest = list(args.overrides)
    resume = args.resume or "--resume" in rest
    allow_lint = args.allow_lint_errors or "--allow-lint-errors" in rest
    quiet = args.quiet or "--quiet" in rest
    rest = [a for a in rest if a not in ("--resume", "--allow-lint-errors", "--quiet")]
    timeout = args.collective_timeout
    if "--collective-timeout" in rest:  # after the config, argparse leaves it among the overrides
        at = rest.index("--collective-timeout")
        timeout = rest[at + 1] if at + 1 < len(rest) else ""
        del rest[at:at + 2]
    from ..distributed import set_collective_timeout

    set_collective_timeout(timeout)  # a bad value is exit 2 before the model loads
    cfg = load_config(args.config, parse_overrides(rest))
    result = train(cfg, resume=resume, allow_lint_errors=allow_lint, quiet=quiet)
    if result.rank == 0 and result.new_steps == 0:
        print(f"nothing to train: {result.adapter_path} is already at step {result.steps} "
              f"(pass a larger --steps to continue it)")
    elif result.rank == 0 and result.final_val_loss is not None:
        print(f"adapter written to {result.adapter_path} after {result.steps} steps: "
              f"val loss {result.first_val_loss:.4f} -> {result.final_val_loss:.4f}")
    return 0


def run_lint(args: argparse.Namespace) -> int:
    from ..errors import HarnessError
    from ..train import load_config
    from ..train.lint import lint_data

    schema = None
    if args.schema is not None:
        try:
            from ..files import read_input

            schema = json.loads(read_input(args.schema, "schema file").decode("utf-8"))
        except FileNotFoundError:
            raise HarnessError("schema file not found", path=args.schema) from None
        except json.JSONDecodeError as exc:
            raise HarnessError(f"invalid JSON: {exc.msg}", path=args.schema, line=exc.lineno) from None
        except (OSError, UnicodeDecodeError, RecursionError) as exc:
            raise HarnessError(f"cannot read the schema: {type(exc).__name__}", path=args.schema) from None
        import jsonschema

        from ..scorers.schema_sandbox import check_refs

        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise HarnessError(f"not a valid Draft 2020-12 schema: {exc.message}", path=args.schema,
                               field="--schema") from None
        check_refs(schema, args.schema, args.schema.parent, path=args.schema, line=None, field="--schema")
    template, system, max_len, model, fmt = "auto", None, 2048, args.model, "auto"
    if args.config is not None:
        cfg = load_config(args.config)
        template, system, max_len, model = cfg.template, cfg.system, cfg.max_seq_length, model or cfg.model
        fmt = cfg.format
    if args.max_seq_length is not None:
        max_len = args.max_seq_length
    tokenizer = positions = None
    if model:
        from mlx_lm.utils import load_tokenizer

        from ..positions import model_positions
        from ..preflight import read_json_object

        if not Path(model).is_dir():
            raise HarnessError("model folder not found", path=model, field="--model")
        from ..models import check_loader_files

        check_loader_files(Path(model))  # a FIFO named tokenizer.json blocked load_tokenizer forever
        try:
            tokenizer = load_tokenizer(Path(model))
        except Exception as exc:  # the folder's tokenizer files are at fault (an internal error, exit 3)
            first = (str(exc).splitlines() or [""])[0][:300]
            raise HarnessError(f"cannot load the tokenizer: {type(exc).__name__}: {first}", path=model,
                               field="--model", hint="the model folder's tokenizer files are incomplete or "
                                                     "corrupt") from None
        config_file = Path(model) / "config.json"  # the positions it was trained on; no weights read
        positions = model_positions(read_json_object(config_file, "config.json")) if config_file.is_file() else None
    from ..train.config import TrainConfig

    report = lint_data(args.data, schema=schema, tokenizer=tokenizer, template=template,
                       system=system, max_seq_length=max_len, schema_file=args.schema, fmt=fmt,
                       positions=positions, explicit_max_seq_length=max_len != TrainConfig.max_seq_length)
    for problem in report.problems:
        print(terminal(problem))  # problems quote the data
    checked = "" if tokenizer is not None else " (token checks skipped: pass --model or --config)"
    print(f"{report.rows} rows: {report.errors} errors, {report.warnings} warnings{checked}",
          file=sys.stderr)
    return 1 if report.errors else 0


def run_fuse(args: argparse.Namespace) -> int:
    from ..train.fuse import fuse

    out = fuse(args.model, args.adapter, args.out, args.allow_base_mismatch, dequantize=args.dequantize)
    print(f"fused model written to {out}")
    return 0
