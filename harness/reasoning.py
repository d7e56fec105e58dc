"""Reasoning models: score the answer, not the thinking.

Models such as Qwen3 or DeepSeek-R1 write a reasoning block (``<think> ... </think>``)
before they answer. Scored as it stands, a keyword named only in the reasoning passes, a
forbidden word the reasoning rejects fails, and a JSON or SQL answer after it reads as
prose. So the scorers see the text after the block; the output itself is kept whole in
results.json. mlx-lm knows each family's markers (``TokenizerWrapper.think_start`` /
``think_end``: ``<think>``, ``<longcat_think>``, ``<|think:start|>``, ...); without a
loaded tokenizer (stored completions) an output that *begins* with ``<think>`` is read
the same way. A block the model never closed (cut at ``max_tokens``) leaves no answer:
the scorers see an empty one, and the run warns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_MARKERS = ("<think>", "</think>")  # the common pair, for outputs read without a tokenizer


@dataclass(frozen=True)
class Answer:
    text: str  # what the scorers see
    reasoning_chars: int  # length of the reasoning block removed (0: none)
    unfinished: bool  # the block never closed: the model gave no answer


def markers(tokenizer: Any) -> tuple[str, str] | None:
    """The model's (start, end) reasoning markers as mlx-lm infers them, or None."""
    if tokenizer is None or not getattr(tokenizer, "has_thinking", False):
        return None
    start, end = getattr(tokenizer, "think_start", None), getattr(tokenizer, "think_end", None)
    return (start, end) if isinstance(start, str) and isinstance(end, str) and start and end else None


def opened_in_prompt(tokenizer: Any, prompt_ids: list[int] | None) -> bool:
    """Whether the prompt (its chat template) already opened a reasoning block, so the output
    starts inside it (as mlx_lm.server decides its initial state)."""
    if not prompt_ids or markers(tokenizer) is None:
        return False
    try:
        return tokenizer.rfind_think_start(prompt_ids) > tokenizer.rfind_think_end(prompt_ids)
    except Exception:  # a wrapper without the search helpers: judge by the output alone
        return False


def answer(output: str, pair: tuple[str, str] | None, opened: bool = False) -> Answer:
    """Split ``output`` into the answer the scorers see and the reasoning before it.

    With the model's ``pair``: the text after the last end marker, if the output holds one
    and it closes a block the output (or, ``opened``, the prompt) began; a start marker
    never closed, or a block the prompt opened and the output never closed, is no answer.
    Without a pair: only an output that begins with ``<think>`` is split."""
    if not isinstance(output, str):
        return Answer(output, 0, False)
    if pair is None:
        if not output.lstrip().startswith(DEFAULT_MARKERS[0]):
            return Answer(output, 0, False)
        pair, opened = DEFAULT_MARKERS, False
    start, end = pair
    opened = opened or (end in output and start not in output)  # a template that opens the block
    began = opened or start in output
    if not began:
        return Answer(output, 0, False)
    cut = output.rfind(end)
    if cut < 0 or (not opened and cut < output.find(start)):
        return Answer("", len(output), True)  # still thinking when it stopped
    rest = output[cut + len(end):].lstrip()
    return Answer(rest, len(output) - len(rest), False)


def answer_of(completion: dict, tokenizer: Any = None) -> Answer:
    """``answer`` of one completion (a ``Completion.to_json`` dict), with the markers of the
    model's ``tokenizer`` and the prompt it answered, when there are both."""
    pair = markers(tokenizer)
    return answer(completion.get("output"), pair,
                  opened_in_prompt(tokenizer, completion.get("prompt_token_ids")) if pair else False)


def unfinished_warning(model: str, suite: str, records: list[dict], max_tokens: int | None) -> str | None:
    """The run warning for items whose reasoning never closed (no answer was scored)."""
    cut = [r["id"] for r in records if (r.get("reasoning") or {}).get("unfinished")]
    if not cut:
        return None
    shown = ", ".join(cut[:5]) + (", ..." if len(cut) > 5 else "")
    limit = f" (max_tokens {max_tokens})" if max_tokens else ""
    return (f"{model} on {suite}: {len(cut)} of {len(records)} outputs ended inside their reasoning block"
            f"{limit}, so no answer was scored ({shown}): raise the suite's generation.max_tokens, "
            f"or turn the model's thinking off in its prompt (e.g. Qwen3's /no_think)")
