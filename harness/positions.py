"""The positions a base model was trained on, against the token lengths it is given:
training rows (``harness train``, ``harness lint-data``) and eval prompts plus their
``generation.max_tokens`` (``harness eval``).

A row longer than the model's positions trains positions it never saw (RoPE angles it
was not trained at): silently, since nothing fails. Where config.json says how many
positions the model has, a run whose rows go past them is warned about (the count of
such rows; recorded in train_log.jsonl, which ``harness eval`` shows beside the adapter),
and so is a ``max_seq_length`` set above them. The warning is a warning, not a refusal:
long-context fine-tunes past the base's length are a thing people do on purpose. An eval
item whose prompt and answer run past the positions is generated past the trained length
too: degraded output the scorecard would blame on the model, so each such suite gets a
warning in the run's results.

Models whose positions are a learned table (GPT-2, GPT-BigCode: ``nn.Embedding`` of
``n_positions`` rows in mlx-lm) are the exception: MLX does not bounds-check a gather, so
a position past the table reads memory outside the weights (as an out-of-vocabulary
token id does, ``models.check_ids_fit``), and such rows and eval items are refused.

A model whose config names no such field (none of the names mlx-lm's model args use) is
trained and evaluated as before, without a check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import HarnessError

# config.json fields that hold the trained context length, in mlx-lm's model args.
LENGTH_FIELDS = ("max_position_embeddings", "n_positions", "n_ctx")
# rope_scaling types whose `factor` stretches the trained positions (mlx-lm's rope_utils).
STRETCHING_ROPE = ("linear", "dynamic", "yarn", "deepseek_yarn", "telechat3-yarn", "llama3")
# mlx-lm models whose positions are a learned nn.Embedding of n_positions rows.
LEARNED_POSITIONS = ("gpt2", "gpt_bigcode")


@dataclass(frozen=True)
class Positions:
    """How many positions the model was trained on, and the config field that says so."""

    count: int
    source: str  # e.g. "config.json's max_position_embeddings (1024)"
    learned: bool = False  # a learned table: positions past it are out of bounds


def model_positions(config: dict) -> Positions | None:
    """The model's positions from its config.json (or its ``text_config``); None when no
    field says. A ``rope_scaling`` with a ``factor`` (yarn, linear, dynamic, llama3) stretches
    them to factor x ``original_max_position_embeddings`` (or the base field) when that is more."""
    for cfg in (config, config.get("text_config")):
        if not isinstance(cfg, dict):
            continue
        for name in LENGTH_FIELDS:
            value = cfg.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                stretched = _stretched(cfg.get("rope_scaling"), name, value)
                if stretched is not None:
                    return stretched
                learned = config.get("model_type") in LEARNED_POSITIONS and name != "max_position_embeddings"
                return Positions(value, f"config.json's {name} ({value})", learned)
    return None


def _stretched(scaling: Any, name: str, value: int) -> Positions | None:
    if not isinstance(scaling, dict):
        return None
    kind = scaling.get("type") or scaling.get("rope_type")
    factor = scaling.get("factor")
    if kind not in STRETCHING_ROPE or not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor <= 1:
        return None
    start, start_name = value, name
    original = scaling.get("original_max_position_embeddings")
    if isinstance(original, int) and not isinstance(original, bool) and original > 0:
        start, start_name = original, "original_max_position_embeddings"
    count = int(factor * start)
    if count <= value:  # llama3's factor 8 x 8192 original, under its 131072 positions
        return None
    return Positions(count, f"config.json's rope_scaling ({kind}, factor {factor:g} x {start_name} {start} = {count})")


def position_warnings(positions: Positions | None, max_seq_length: int, explicit_max_seq_length: bool,
                      splits: dict[str, Any]) -> list[str]:
    """One line per problem: rows of a split that feed the model more positions than it has,
    or (when no row does) a ``max_seq_length`` set above them. A row of n tokens feeds n - 1
    inputs (the last token is only a target), so n - 1 positions. The default max_seq_length
    (2048) is a cap the user did not choose: only rows past the model's positions are warned
    about under it (as ``num_layers``' default is clipped to the model's depth)."""
    if positions is None:
        return []
    out = []
    limit = positions.count
    fix = f"set max_seq_length: {limit + 1} to cut them, shorten the rows, or use a base trained on longer text"
    for name, split in splits.items():
        over = [e for e in split.examples if len(e.ids) - 1 > limit]
        if over:
            longest = max(len(e.ids) for e in over)
            harm = ("they train positions the model never saw" if name == "train" else
                    "their loss is measured at positions the model never saw")
            out.append(f"{len(over)} of {len(split.examples)} rows of {split.path} (longest {longest} tokens, "
                       f"first at line {over[0].line}) are longer than the model's {limit} positions "
                       f"({positions.source}; max_seq_length is {max_seq_length}): {harm} ({fix})")
    if not out and explicit_max_seq_length and max_seq_length - 1 > limit:
        out.append(f"max_seq_length is {max_seq_length} but the model has {limit} positions ({positions.source}): "
                   f"rows longer than {limit + 1} tokens would train positions it never saw (none in this data "
                   f"does yet; set max_seq_length: {limit + 1} or less)")
    return out


def refuse_unreadable_positions(positions: Positions | None, splits: dict[str, Any], model: str | Path) -> None:
    """A learned position table has no row past its end: such rows read memory outside the
    weights (MLX does not bounds-check the gather), so they stop the run (exit 2)."""
    if positions is None or not positions.learned:
        return
    for split in splits.values():
        over = [e for e in split.examples if len(e.ids) - 1 > positions.count]
        if over:
            raise HarnessError(
                f"{len(over)} rows are longer than the model's learned position table "
                f"({positions.source}); the first has {len(over[0].ids)} tokens",
                path=split.path, line=over[0].line,
                hint=f"set max_seq_length: {positions.count + 1} or less, which cuts the rows to fit, "
                     f"or shorten them; {model} has no position past {positions.count - 1}")


def eval_overrun(positions: Positions | None, prompt_lengths: list[tuple[str, int]], max_tokens: int,
                 path: str | Path) -> str | None:
    """The warning for one suite's items (``prompt_lengths``: id and prompt tokens) whose
    prompt + ``max_tokens`` go past the model's positions, or None when all fit. A learned
    position table refuses them instead (exit 2), before anything generates. Prompt +
    max_tokens, not one less: mlx-lm's decoder computes one step ahead, so the last sampled
    token may be fed too."""
    if positions is None:
        return None
    limit = positions.count
    over = [(item, n) for item, n in prompt_lengths if n + max_tokens > limit]
    if not over:
        return None
    longest_id, longest = max(over, key=lambda x: x[1])
    shown = ", ".join(repr(item) for item, _ in over[:3]) + (f" and {len(over) - 3} more" if len(over) > 3 else "")
    counted = (f"{len(over)} of {len(prompt_lengths)} items ({shown}) need more positions than the model has: "
               f"the longest, {longest_id!r}, is a {longest}-token prompt + generation.max_tokens {max_tokens} "
               f"= {longest + max_tokens}, the model has {limit} ({positions.source})")
    room = limit - longest
    fix = (f"shorten those prompts or lower generation.max_tokens to {room} or less" if room > 0 else
           f"shorten those prompts: the longest alone fills all {limit} positions")
    if positions.learned:
        raise HarnessError(f"{counted}; positions past its learned table read memory outside the weights",
                           path=path, field="generation.max_tokens", hint=fix)
    return (f"suite {path}: {counted}; their outputs are generated past the length it was trained on and may "
            f"be degraded, whichever model generates them ({fix})")
