"""One prompt format for training and evaluation.

A fine-tune that was trained on one prompt layout and evaluated on another looks broken
when it is not; so the trainer and ``harness eval`` both encode through these functions,
and the adapter records which format it was trained with.
"""

from __future__ import annotations

from typing import Any, Literal

from .errors import HarnessError

PromptFormat = Literal["chat", "raw"]
FORMATS = ("chat", "raw")


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def messages_for(prompt: str, system: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return messages


def encode_prompt(
    tokenizer: Any, prompt: str, template: PromptFormat, system: str | None = None
) -> list[int]:
    """Token ids the model sees before it answers.

    ``chat`` applies the tokenizer's chat template with the generation prompt; ``raw``
    encodes the text as the tokenizer does by default (adding BOS where it does).
    """
    if template == "chat":
        if not has_chat_template(tokenizer):
            raise HarnessError(
                "the model's tokenizer has no chat template",
                field="template",
                hint="use `template: raw` for base models without one",
            )
        ids = tokenizer.apply_chat_template(
            messages_for(prompt, system), add_generation_prompt=True, tokenize=True
        )
        if isinstance(ids, dict):  # some tokenizers return a BatchEncoding
            ids = ids["input_ids"]
        return list(ids)
    if template == "raw":
        text = f"{system}\n\n{prompt}" if system else prompt
        return list(tokenizer.encode(text))
    raise HarnessError(f"unknown prompt template {template!r}", field="template",
                       hint="use one of: chat, raw")


def encode_completion(tokenizer: Any, completion: str, add_eos: bool = True) -> list[int]:
    """Token ids of an answer as the model should produce it after ``encode_prompt``.

    The answer ends with EOS so that a trained model learns to stop.
    """
    ids = list(tokenizer.encode(completion, add_special_tokens=False))
    if add_eos and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids


def encode_example(
    tokenizer: Any,
    prompt: str,
    completion: str,
    template: PromptFormat,
    system: str | None = None,
) -> tuple[list[int], int]:
    """(ids, prompt_length) of one training example: prompt tokens, then answer + EOS."""
    prompt_ids = encode_prompt(tokenizer, prompt, template, system)
    return prompt_ids + encode_completion(tokenizer, completion), len(prompt_ids)
