"""The LoRA training loop: frozen base, LoRA trainable, compiled step, exact resume.

The loss is the sum of token cross-entropies over the mask, and gradients are divided by
the number of real target tokens of the whole optimizer step (all micro-batches, all
ranks) just before the update. So gradient accumulation and data parallelism give the
same update as one big batch, not an average of per-batch means weighted wrongly.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ContextManager, Iterator

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map, tree_map_with_path

from ..errors import HarnessError, RunFailed, terminal
from ..models import Base, check_ids_fit, load_base
from .adapter import ADAPTER_WEIGHTS, adapter_config, adapter_weights, apply_lora, write_adapter
from .batching import Batch, TrainStream, eval_batches, split_rows
from .checkpoint import CHECKPOINTS, LATEST, RunState, load_checkpoint, save_checkpoint, step_seed
from .config import TrainConfig, build_optimizer
from .data import fixed_subset, load_splits
from .lint import Problem, counted_lines, kind_records, lint_data
from .log import Progress, TrainLog
from .stopping import EosTally, stopping_warning
from ..positions import model_positions, position_warnings, refuse_unreadable_positions



# A run that passes over each training row more often than this memorises its rows.
MAX_EPOCHS = 30
# A validation loss that moved less than this fraction did not train.
MIN_VAL_CHANGE = 0.005


def setup_warnings(cfg: TrainConfig, train_rows: int) -> list[str]:
    """Signs before the first step that this run will not train as meant."""
    out = []
    warmup = int((cfg.lr_schedule or {}).get("warmup") or 0)
    if warmup >= cfg.steps:
        out.append(f"lr_schedule.warmup is {warmup} steps but the run has {cfg.steps}: the learning "
                   f"rate never reaches its peak (shorten warmup or train longer)")
    epochs = cfg.steps * cfg.batch_size * cfg.grad_accumulation_steps / max(train_rows, 1)
    if epochs > MAX_EPOCHS:
        out.append(f"{cfg.steps} steps of {cfg.batch_size * cfg.grad_accumulation_steps} rows pass over "
                   f"the {train_rows} training rows {epochs:.0f} times (more than {MAX_EPOCHS}): the "
                   f"adapter memorises them (add rows or train fewer steps)")
    return out


def stalled_warning(first: float | None, last: float | None, steps: int, lr: str) -> str | None:
    """The validation loss never moved: the run trained nothing (learning rate far too low)."""
    if first is None or last is None or steps == 0:
        return None
    if abs(last - first) < MIN_VAL_CHANGE * max(abs(first), 1e-9):
        return (f"validation loss did not move in {steps} steps ({first:.4f} -> {last:.4f}, "
                f"less than {MIN_VAL_CHANGE:.1%}): the adapter did not train (learning rate {lr}?)")
    return None


class TrainingDiverged(RunFailed):
    """The loss became NaN or infinite; the last good checkpoint is kept (exit 1)."""


@dataclass
class TrainResult:
    adapter_path: Path
    steps: int
    first_val_loss: float | None  # at step 0: the base with zero-initialised LoRA
    final_val_loss: float | None
    log: list[dict]
    base: Base  # the loaded base with the trained LoRA layers still on (Python API)
    rank: int = 0  # this process's rank under mlx.launch (rank 0 wrote the files)
    new_steps: int = 0  # steps trained by this call (0: a resumed run that was already complete)


def masked_loss(model: nn.Module, inputs: mx.array, targets: mx.array,
                mask: mx.array) -> tuple[mx.array, mx.array]:
    """(sum of cross-entropy over masked targets, number of masked targets)."""
    return logits_loss(model(inputs), targets, mask)


def logits_loss(logits: mx.array, targets: mx.array, mask: mx.array) -> tuple[mx.array, mx.array]:
    ce = nn.losses.cross_entropy(logits, targets) * mask
    return ce.astype(mx.float32).sum(), mask.sum()


@contextmanager
def checkpointed_blocks(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Recompute each block's activations in the backward pass (less memory, more time).

    mlx-lm patches the block class for good; here the patch is undone after training,
    so a model evaluated later in the same process runs the plain forward.
    """
    if not enabled:
        yield
        return
    cls = type(model.layers[0])
    original = cls.__call__

    def checkpointed(block, *args, **kwargs):
        def inner(params, *args, **kwargs):
            block.update(params)
            return original(block, *args, **kwargs)

        return mx.checkpoint(inner)(block.trainable_parameters(), *args, **kwargs)

    cls.__call__ = checkpointed
    try:
        yield
    finally:
        cls.__call__ = original


def _arrays(batch: Batch) -> tuple[mx.array, mx.array, mx.array]:
    return mx.array(batch.inputs), mx.array(batch.targets), mx.array(batch.mask)


def guarded(world: mx.distributed.Group, where: str, step_s: float | None = None) -> ContextManager[None]:
    """Under ``mlx.launch``: ``harness.distributed.collective_guard`` around a block that
    waits for the other ranks (a peer that died or stalls ends this rank with one line and
    exit 3 instead of hanging CI forever). One process: no guard at all (no thread, no cost)."""
    if world.size() == 1:
        return nullcontext()
    from ..distributed import collective_guard

    return collective_guard(where, f"rank {world.rank()} of {world.size()}", step_s)


def evaluate(model: nn.Module, batches: list[Batch], world: mx.distributed.Group,
             what: str = "the validation loss", eos: EosTally | None = None) -> float:
    """Token-weighted mean loss over every row of ``batches`` (summed over ranks); with
    ``eos``, the same logits also fill its tally (summed over ranks too)."""
    total, count = mx.array(0.0), mx.array(0.0)
    for batch in batches:
        inputs, targets, mask = _arrays(batch)
        logits = model(inputs)
        loss, n = logits_loss(logits, targets, mask)
        total, count = total + loss, count + n
        if eos is not None:
            eos.add(logits, batch.targets, batch.mask, batch.lengths)
        mx.eval(total, count, *(eos.arrays() if eos is not None else []))
    if world.size() == 1:
        return (total / count).item()
    with guarded(world, f"in the sums of {what}"):
        total = mx.distributed.all_sum(total, stream=mx.cpu)
        count = mx.distributed.all_sum(count, stream=mx.cpu)
        if eos is not None:
            eos.answers, eos.top1, eos.prob = (mx.distributed.all_sum(a, stream=mx.cpu) for a in eos.arrays())
            mx.eval(*eos.arrays())
        return (total / count).item()


def _check_finite(value: float, what: str, step: int, folder: Path, last_saved: int) -> None:
    if math.isfinite(value):
        return
    kept = (f"the last good checkpoint (step {last_saved}) is kept in {folder}"
            if last_saved else "no checkpoint was saved yet")
    raise TrainingDiverged(
        f"{what} became {value} at step {step}; training stopped and {kept}",
        hint="lower learning_rate (or add warmup via lr_schedule), check the data with "
             "`harness lint-data`, then rerun or --resume")


def restore_optimizer(optimizer: optim.Optimizer, saved: dict[str, mx.array], model: nn.Module,
                      folder: Path) -> None:
    """Put a checkpoint's flat optimizer state into the freshly initialised tree."""
    fresh = dict(tree_flatten(optimizer.state))
    if set(fresh) != set(saved) or any(fresh[k].shape != saved[k].shape for k in fresh):
        raise HarnessError("the checkpoint's optimizer state does not fit this run's LoRA layers",
                           path=folder / CHECKPOINTS, hint="resume with the config it was made with")
    optimizer.state = tree_map_with_path(lambda path, _: saved[path], optimizer.state)
    optimizer.init(model.trainable_parameters())  # keeps every restored entry


def lint_training_data(cfg: TrainConfig, tokenizer, template: str, allow_errors: bool = False) -> list[Problem]:
    """``harness lint-data`` on the training data, as the trainer will encode it: its first
    error stops training (exit 2) unless ``allow_errors``; returns what the run goes on
    with (the warnings, and the errors it was allowed), for ``lint_notice`` and the log."""
    report = lint_data(cfg.data, tokenizer=tokenizer, template=template, system=cfg.system,
                       max_seq_length=cfg.max_seq_length, fmt=cfg.format)
    errors = [p for p in report.problems if p.level == "error"]
    if errors and not allow_errors:
        first = errors[0]
        raise HarnessError(
            f"the training data has {len(errors)} lint error(s); first: {first.message}",
            path=first.path, line=first.line,
            hint=f"run `{lint_command(cfg)}` to list them, fix the data, "
                 f"or pass --allow-lint-errors to train anyway")
    return report.problems


def lint_command(cfg: TrainConfig) -> str:
    """`harness lint-data DATA --config FILE` for this run, ready to paste into a shell: the
    config file the user gave, quoted where it needs it (a path with spaces); a config built
    from a dict (the Python API) has no file, and gets the placeholder CONFIG.yaml."""
    config = shlex.quote(cfg.config_file) if cfg.config_file else "CONFIG.yaml"
    return f"harness lint-data {shlex.quote(cfg.data)} --config {config}"


def lint_notice(problems: list[Problem], command: str) -> str:
    """The lint problems a run goes on with, before its first step: each kind once, its
    first rows with file:line and a count of the rest (a user who never ran lint-data
    hears of a row that trains another text than it shows)."""
    errors = sum(p.level == "error" for p in problems)
    counts = [f"{n} lint {what}{'s' if n != 1 else ''}" for n, what in
              ((errors, "error"), (len(problems) - errors, "warning")) if n]
    allowed = " (allowed by --allow-lint-errors)" if errors else ""
    lines = [f"harness train: warning: the training data has {' and '.join(counts)}{allowed}; training goes on "
             f"(`{command}` lists each):"]
    return terminal("\n".join(lines + [f"  {line}" for line in counted_lines(problems)]))  # they quote the data


def train(cfg: TrainConfig, resume: bool = False, quiet: bool = False,
          allow_lint_errors: bool = False) -> TrainResult:
    """Train a LoRA adapter as ``cfg`` says and write it to ``cfg.adapter_path``.

    The data is linted first (``harness lint-data``): an error refuses the run unless
    ``allow_lint_errors``; what the run goes on with is printed, each kind of problem once
    with its count, and kept in the training log."""
    from ..distributed import group

    # launched by mlx.launch and unable to reach the others: exit 3, not a run alone that
    # writes its own adapter while the others wait (harness.distributed.group)
    world = group()
    if world is None:
        world = mx.distributed.init()
    rank, size = world.rank(), world.size()
    if cfg.batch_size % size:
        raise HarnessError(f"batch_size {cfg.batch_size} does not split over {size} processes",
                           field="batch_size", hint=f"use a multiple of {size}")
    from ..preflight import check_out_dir

    out = check_out_dir(Path(cfg.adapter_path).expanduser(), field="adapter_path")
    # What a new run would destroy: an adapter, or a checkpoint --resume can continue. A log
    # alone (a run stopped before its first save) is neither, and --resume has nothing to
    # continue from there, so refusing it too left no way on but deleting by hand.
    if not resume and ((out / ADAPTER_WEIGHTS).exists() or (out / CHECKPOINTS / LATEST).exists()):
        raise HarnessError("the adapter folder already holds an adapter or a training run", path=out,
                           hint="pass --resume to continue it, or choose another adapter_path")

    base = load_base(cfg.model)
    model = base.model
    splits, fmt, template, mask_prompt = load_splits(
        cfg.data, cfg.format, cfg.template, base.tokenizer, cfg.system, cfg.mask_prompt,
        cfg.max_seq_length)
    for split in splits.values():
        check_ids_fit(base, ((f"{split.path}:{e.line}: the row has", e.ids) for e in split.examples), split.path)
    positions = model_positions(base.config)
    refuse_unreadable_positions(positions, splits, cfg.model)
    linted = lint_training_data(cfg, base.tokenizer, template, allow_lint_errors)
    if linted and rank == 0:
        print(lint_notice(linted, lint_command(cfg)), file=sys.stderr, flush=True)
    train_rows = splits["train"].examples
    if len(train_rows) < cfg.batch_size:
        raise HarnessError(f"train.jsonl has {len(train_rows)} usable rows, fewer than "
                           f"batch_size={cfg.batch_size}", path=splits["train"].path,
                           hint="lower batch_size")
    from ..prompts import prompt_format, prompt_formats
    from .data import row_prompt_pairs, row_prompts

    prompts, row_system = row_prompts(splits["train"].path, fmt)
    trained_format = prompt_format(base.tokenizer, template, cfg.system or row_system, prompts)
    if fmt == "text":  # documents: no prompt, so no wrapper to record
        trained_format = {k: v for k, v in trained_format.items() if k not in ("prefix", "suffix")}
    else:  # each distinct format of mixed data (task rows beside replay rows), with its share
        trained_format["formats"] = prompt_formats(
            base.tokenizer, template, row_prompt_pairs(splits["train"].path, fmt, cfg.system))
    data_info = {"prompt_format": trained_format,
                 "format": fmt, "template": template, "mask_prompt": mask_prompt,
                 "hashes": {name: s.sha256 for name, s in splits.items()}}

    lora = apply_lora(model, cfg)
    optimizer = build_optimizer(cfg)
    optimizer.init(model.trainable_parameters())
    state = RunState(config_hash=cfg.identity_hash(), data_hashes=data_info["hashes"])
    log = TrainLog(out, enabled=rank == 0)
    if resume:
        weights, opt_state, saved = load_checkpoint(out)
        if saved.config_hash != state.config_hash or saved.data_hashes != state.data_hashes:
            what = "training data" if saved.data_hashes != state.data_hashes else "config"
            raise HarnessError(f"the checkpoint was made with another {what}", path=out,
                               hint="resume with the same config and data (only steps and the "
                                    "report/eval/save intervals may change)")
        if saved.step > cfg.steps:
            raise HarnessError(f"the run is already at step {saved.step}, past steps: {cfg.steps}", path=out,
                               field="steps", hint=f"pass --steps above {saved.step} to train it further; "
                                                   "a shorter run needs its own adapter_path")
        model.load_weights(list(weights.items()), strict=False)
        restore_optimizer(optimizer, opt_state, model, out)
        state = saved
        log.load_until(state.step)

    first_step = state.step
    stream = TrainStream(train_rows, cfg.batch_size, cfg.seed, cfg.pad_multiple, rank, size)
    val_rows = fixed_subset(splits["valid"].examples, cfg.val_rows, cfg.seed)
    val_batches = eval_batches(val_rows, cfg.val_batch_size or cfg.batch_size, cfg.pad_multiple,
                               rank, size)

    loss_and_grad = nn.value_and_grad(model, masked_loss)
    compiled_state = [model.state, optimizer.state, mx.random.state]
    compiled = partial(mx.compile, inputs=compiled_state, outputs=compiled_state)

    def grads_of(inputs, targets, mask):
        (loss, ntok), grads = loss_and_grad(model, inputs, targets, mask)
        return grads, loss, ntok

    def accumulate(inputs, targets, mask, grads, loss, ntok):
        g, l, n = grads_of(inputs, targets, mask)
        return tree_map(mx.add, g, grads), l + loss, n + ntok

    def apply(grads, loss, ntok):
        if size > 1:
            grads = nn.utils.average_gradients(grads)  # mean over ranks of token sums
            loss = mx.distributed.all_sum(loss)
            ntok = mx.distributed.all_sum(ntok)
        per_rank_tokens = ntok / size
        optimizer.update(model, tree_map(lambda g: g / per_rank_tokens, grads))
        return loss, ntok

    step_once = compiled(lambda inputs, targets, mask: apply(*grads_of(inputs, targets, mask)))
    first_c, accumulate_c, apply_c = compiled(grads_of), compiled(accumulate), compiled(apply)

    eos_id = base.tokenizer.eos_token_id
    eos_token = repr(base.tokenizer.convert_ids_to_tokens(eos_id)) if eos_id is not None else ""

    def eos_tally() -> EosTally | None:
        return EosTally(eos_id) if eos_id is not None else None

    progress = Progress(cfg.steps, enabled=rank == 0 and not quiet, initial=state.step)
    last_saved = state.step if resume else 0
    longest_step = 0.0  # seconds of this rank's longest step evaluation: the guard's measure

    def save() -> None:
        if rank == 0:
            weights = adapter_weights(model)
            save_checkpoint(out, weights, optimizer.state, state)
            write_adapter(out, weights, adapter_config(cfg, lora, base, data_info, state.step))

    with checkpointed_blocks(model, cfg.grad_checkpoint):
        if state.step == 0:
            model.eval()
            ends = eos_tally()
            val = evaluate(model, val_batches, world, "the validation loss at step 0", ends)
            log.add(0, val_loss=val, **((ends.summary() if ends else None) or {}))
            for text in kind_records(linted):  # printed above, each kind with its rows
                log.warn(0, f"lint-data: {text}", echo=False)
            for text in setup_warnings(cfg, len(train_rows)) + position_warnings(
                    positions, cfg.max_seq_length, cfg.max_seq_length != TrainConfig.max_seq_length, splits):
                log.warn(0, text)
            log.flush()
            progress.report(log.records[-1])
        model.train()
        for step in range(state.step + 1, cfg.steps + 1):
            tic = time.perf_counter()
            mx.random.seed(step_seed(cfg.seed, step))
            pieces = [piece for k in range(cfg.grad_accumulation_steps)
                      for piece in split_rows(stream.batch(state.position + k), cfg.max_batch_tokens,
                                              cfg.pad_multiple)]
            state.position += cfg.grad_accumulation_steps
            if len(pieces) == 1:
                loss, ntok = step_once(*_arrays(pieces[0]))
            else:
                grads, loss, ntok = first_c(*_arrays(pieces[0]))
                for piece in pieces[1:]:
                    grads, loss, ntok = accumulate_c(*_arrays(piece), grads, loss, ntok)
                loss, ntok = apply_c(grads, loss, ntok)
            # The gradient sums are inside the compiled graph: the whole step's evaluation is
            # guarded, its deadline from this rank's longest step so far.
            evaluated = time.perf_counter()
            with guarded(world, f"in training step {step} (the gradient sums)", longest_step):
                mx.eval(compiled_state, loss, ntok)
            longest_step = max(longest_step, time.perf_counter() - evaluated)
            loss_sum = loss.item()
            state.window_seconds += time.perf_counter() - tic
            _check_finite(loss_sum, "the training loss", step, out, last_saved)
            tokens = int(ntok.item())
            state.step = step
            state.window_loss += loss_sum
            state.window_tokens += tokens
            state.trained_tokens += tokens
            progress.tick(step, tokens)

            last = step == cfg.steps
            if step % cfg.report_every == 0 or last:
                log.add(step, train_loss=state.window_loss / state.window_tokens,
                        lr=float(optimizer.learning_rate.item()),
                        tokens_per_s=state.window_tokens / state.window_seconds,
                        trained_tokens=state.trained_tokens,
                        peak_memory_gb=mx.get_peak_memory() / 1e9)
                state.window_loss, state.window_tokens, state.window_seconds = 0.0, 0, 0.0
            if step % cfg.eval_every == 0 or last:
                model.eval()
                ends = eos_tally()
                val = evaluate(model, val_batches, world, f"the validation loss at step {step}", ends)
                model.train()
                _check_finite(val, "the validation loss", step, out, last_saved)
                measured = ends.summary() if ends else None
                log.add(step, val_loss=val, **(measured or {}))
                if last:
                    # no tally: the tokenizer has no EOS, nothing to measure (nor to append)
                    text = stopping_warning(measured, eos_token, cfg.max_seq_length) if ends else None
                    if text:
                        log.warn(step, text)
                    vals = [r["val_loss"] for r in log.records if "val_loss" in r]
                    lr = (f"{cfg.lr_schedule.get('name')} peaking at {cfg.lr_schedule['arguments'][0]}"
                          if cfg.lr_schedule else f"{cfg.learning_rate:g}")
                    text = stalled_warning(vals[0], vals[-1], step, lr)
                    if text:
                        log.warn(step, text)
            if log.records and log.records[-1]["step"] == step:
                log.flush()
                progress.report(log.records[-1])
            if step % cfg.save_every == 0 or last:
                save()
                last_saved = step

        if "test" in splits and state.step == cfg.steps:
            model.eval()
            test_batches = eval_batches(splits["test"].examples, cfg.val_batch_size or cfg.batch_size,
                                        cfg.pad_multiple, rank, size)
            log.add(state.step, test_loss=evaluate(model, test_batches, world, "the test loss"))
            log.flush()
            progress.report(log.records[-1])

    model.eval()  # the model returned is the adapter as saved and loaded: no dropout
    vals = [r["val_loss"] for r in log.records if "val_loss" in r]
    return TrainResult(adapter_path=out, steps=state.step, first_val_loss=vals[0] if vals else None,
                       final_val_loss=vals[-1] if vals else None, log=list(log.records), base=base,
                       rank=rank, new_steps=state.step - first_step)
