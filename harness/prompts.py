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


# Characters that mark a prompt's *layout* (field labels, headers, tags, line breaks), as
# opposed to its words. A prefix/suffix that every prompt shares is a wrapper only up to
# the last of these: "### Question:\nWhat is" -> "### Question:\n", "What is the " -> "".
LAYOUT_MARKS = frozenset(":#[]<>|\n{}")


def _common_prefix(texts: list[str]) -> str:
    import os

    return os.path.commonprefix(texts) if texts else ""


def _first_line_layout(prefix: str) -> str:
    """The prefix's first line, cut back to its last layout mark: rows that share a context
    (several questions on one table) share more than the wrapper, and only the wrapper
    ("table: ", "### Question:\n", "[INST] ") must be the same in every split."""
    content = prefix.split("\n", 1)[0]
    line = content + ("\n" if "\n" in prefix else "")
    cut = max((i for i, ch in enumerate(content) if ch in LAYOUT_MARKS), default=-1)
    if cut == len(content.rstrip()) - 1:  # the line ends in layout ("### Question:"): all of it
        return line
    head = line[:cut + 1]
    while len(head) < len(line) and line[len(head)] in " \t":
        head += line[len(head)]
    return head


def prompt_wrapper(prompts: list[str]) -> tuple[str, str]:
    """(prefix, suffix) of layout that every prompt shares: the raw wrapper around the
    question ("Q: ...\\nA: " gives ("Q: ", "\\nA: ")). Shared words are not a wrapper:
    each side is cut back to its outermost layout mark (see ``LAYOUT_MARKS``)."""
    if len(prompts) < 2:
        return "", ""
    prefix = _common_prefix(prompts)
    cut = max((i for i, ch in enumerate(prefix) if ch in LAYOUT_MARKS), default=-1)
    prefix = _first_line_layout(prefix[:cut + 1] if cut >= 0 else "")
    while prefix and len(prefix) < min(map(len, prompts)) and all(
            p[len(prefix)] in " \t" for p in prompts):
        prefix += prompts[0][len(prefix)]  # keep the spaces after a mark: "Q: "
    suffix = _common_prefix([p[::-1] for p in prompts])[::-1]
    cut = min((i for i, ch in enumerate(suffix) if ch in LAYOUT_MARKS), default=-1)
    suffix = suffix[cut:] if cut >= 0 else ""
    return prefix, suffix


PLACEHOLDER = "\x00PROMPT\x00"


def rendered_format(tokenizer: Any, template: str, system: str | None) -> str | None:
    """The text around a prompt once it is rendered (chat template or raw, with the system
    message), with ``{prompt}`` where the prompt goes; None when it cannot be rendered."""
    try:
        ids = encode_prompt(tokenizer, PLACEHOLDER, template, system)  # type: ignore[arg-type]
        text = tokenizer.decode(ids)
    except Exception:
        return None
    return text.replace(PLACEHOLDER, "{prompt}") if PLACEHOLDER in text else None


def prompt_format(tokenizer: Any, template: str, system: str | None, prompts: list[str]) -> dict:
    """What an adapter records about the prompts it was trained on, and what a suite is
    compared with: template, system message, the rendered layout, and the raw wrapper
    (layout prefix/suffix every prompt shares, see ``prompt_wrapper``)."""
    prefix, suffix = prompt_wrapper(prompts)
    return {"template": template, "system": system, "rendered": rendered_format(tokenizer, template, system),
            "prefix": prefix, "suffix": suffix}


def format_differences(trained: dict, evaluated: dict) -> list[str]:
    """How the evaluation's prompt format differs from the training's (empty: the same).
    Fields the training side does not record are not compared."""
    out = []
    if trained.get("template") and trained["template"] != evaluated.get("template"):
        out.append(f"trained with the {trained['template']!r} prompt format, evaluated with "
                   f"{evaluated.get('template')!r}")
    if "system" in trained and (trained.get("system") or None) != (evaluated.get("system") or None):
        out.append(f"system message {trained.get('system')!r} at training, {evaluated.get('system')!r} here")
    if (not out and trained.get("rendered") and evaluated.get("rendered")
            and trained["rendered"] != evaluated["rendered"]):
        out.append(f"rendered layout {trained['rendered']!r} at training, {evaluated['rendered']!r} here")
    for side, check in (("prefix", str.startswith), ("suffix", str.endswith)):
        if side not in trained:
            continue
        a, b = trained.get(side) or "", evaluated.get(side) or ""
        # one wrapper extending the other is the same layout seen on other data
        if (a.strip() or b.strip()) and not (check(a, b) and b.strip() or check(b, a) and a.strip()):
            out.append(f"prompt {side} {a!r} at training, {b!r} here")
    return out
