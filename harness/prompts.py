"""One prompt format for training and evaluation.

A fine-tune that was trained on one prompt layout and evaluated on another looks broken
when it is not; so the trainer and ``harness eval`` both encode through these functions,
and the adapter records which format it was trained with.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from .errors import HarnessError

PromptFormat = Literal["chat", "raw"]
FORMATS = ("chat", "raw")


def usable_chat_template(template: Any) -> bool:
    """Whether a ``chat_template`` value gives ``apply_chat_template`` a template to use.
    Several named ones (tokenizer_config's list form, a dict once loaded) count only with
    one named ``default``: without it transformers raises ValueError on every prompt."""
    if isinstance(template, list):
        template = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
    if isinstance(template, dict):
        return bool(template.get("default"))
    return bool(template)


def has_chat_template(tokenizer: Any) -> bool:
    """Whether the tokenizer has a chat template chat prompts can use (``usable_chat_template``)."""
    return usable_chat_template(getattr(tokenizer, "chat_template", None))


def check_chat_suites(tokenizer: Any, suites: list, model: str) -> None:
    """Before anything generates: a `template: chat` suite on a model without a chat template
    (a pretrained base such as stories260K) is one error naming the suite file and line, and
    every other suite that asks for one, instead of a bare "[template]" after the model loaded."""
    chat = [s for s in suites if getattr(s, "template", None) == "chat"]
    if not chat or has_chat_template(tokenizer):
        return
    from .yamlpos import node_line

    first, rest = chat[0], chat[1:]
    also = f"; so do {', '.join(str(s.path) for s in rest)}" if rest else ""
    named = getattr(tokenizer, "chat_template", None)
    none = (f"none named 'default' (only {', '.join(map(repr, named))})" if isinstance(named, dict) and named
            else "none")
    raise HarnessError(
        f"the suite asks for the model's chat template, and {model} has {none}{also}",
        path=first.path, line=node_line(first.root, ["template"]), field="template",
        hint="set `template: raw` in the suite for a base model without one, or add a "
             "chat_template.jinja to the model folder",
    )


def messages_for(prompt: str, system: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return messages


# Arguments apply_chat_template sets itself: a suite's chat_template_kwargs may not override them.
RESERVED_TEMPLATE_KWARGS = frozenset({"conversation", "messages", "tokenize", "add_generation_prompt",
                                      "return_dict", "return_tensors", "continue_final_message", "chat_template"})


def encode_prompt(
    tokenizer: Any, prompt: str, template: PromptFormat, system: str | None = None,
    template_kwargs: dict | None = None,
) -> list[int]:
    """Token ids the model sees before it answers.

    ``chat`` applies the tokenizer's chat template with the generation prompt, and
    ``template_kwargs`` (a suite's ``chat_template_kwargs``, e.g. Qwen3's
    ``enable_thinking: false``) as variables of the template; ``raw`` encodes the text as
    the tokenizer does by default (adding BOS where it does).
    """
    if template == "chat":
        if not has_chat_template(tokenizer):
            raise HarnessError(
                "the model's tokenizer has no chat template",
                field="template",
                hint="use `template: raw` for base models without one",
            )
        ids = tokenizer.apply_chat_template(
            messages_for(prompt, system), add_generation_prompt=True, tokenize=True, **(template_kwargs or {})
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


def first_line_layout(prefix: str) -> str:
    """The prefix's first line, cut back to its last layout mark: rows that share a context
    (several questions on one table) share more than the wrapper, and only the wrapper
    ("table: ", "### Question:\n", "[INST] ") must be the same in every split."""
    content = prefix.split("\n", 1)[0]
    line = content + ("\n" if "\n" in prefix else "")
    cut = max((i for i, ch in enumerate(content) if ch in LAYOUT_MARKS), default=-1)
    if cut == len(content.rstrip()) - 1:  # the line ends in layout ("### Question:"): all of it
        return line
    end = cut + 1  # and the spaces after the mark, found by index (+= per space was quadratic)
    while end < len(line) and line[end] in " \t":
        end += 1
    return line[:end]


def prompt_wrapper(prompts: list[str]) -> tuple[str, str]:
    """(prefix, suffix) of layout that every prompt shares: the raw wrapper around the
    question ("Q: ...\\nA: " gives ("Q: ", "\\nA: ")). Shared words are not a wrapper:
    each side is cut back to its outermost layout mark (see ``LAYOUT_MARKS``)."""
    if len(prompts) < 2:
        return "", ""
    prefix = _common_prefix(prompts)
    cut = max((i for i, ch in enumerate(prefix) if ch in LAYOUT_MARKS), default=-1)
    prefix = first_line_layout(prefix[:cut + 1] if cut >= 0 else "")
    if prefix:  # keep the spaces after a mark: "Q: " (found by index: += per space was quadratic)
        end, shortest = len(prefix), min(map(len, prompts))
        while end < shortest and all(p[end] in " \t" for p in prompts):
            end += 1
        prefix = prompts[0][:end]
    suffix = _common_prefix([p[::-1] for p in prompts])[::-1]
    cut = min((i for i, ch in enumerate(suffix) if ch in LAYOUT_MARKS), default=-1)
    suffix = suffix[cut:] if cut >= 0 else ""
    # a bracket left open (closed) is the start (end) of content that varies, not layout:
    # "[09:14] ..." and "[11:02] ..." share "[", a timestamp, not a wrapper
    prefix, suffix = prefix.rstrip("[<{"), suffix.lstrip("]>}")
    return (prefix if prefix.strip() else ""), (suffix if suffix.strip() else "")


PLACEHOLDER = "\x00PROMPT\x00"


def rendered_format(tokenizer: Any, template: str, system: str | None,
                    template_kwargs: dict | None = None) -> str | None:
    """The text around a prompt once it is rendered (chat template or raw, with the system
    message), with ``{prompt}`` where the prompt goes; None when it cannot be rendered."""
    try:
        ids = encode_prompt(tokenizer, PLACEHOLDER, template, system, template_kwargs)  # type: ignore[arg-type]
        text = tokenizer.decode(ids)
    except Exception:
        return None
    return text.replace(PLACEHOLDER, "{prompt}") if PLACEHOLDER in text else None


def prompt_format(tokenizer: Any, template: str, system: str | None, prompts: list[str],
                  template_kwargs: dict | None = None) -> dict:
    """What an adapter records about the prompts it was trained on, and what a suite is
    compared with: template, system message, the rendered layout, and the raw wrapper
    (layout prefix/suffix every prompt shares, see ``prompt_wrapper``)."""
    prefix, suffix = prompt_wrapper(prompts)
    return {"template": template, "system": system,
            "rendered": rendered_format(tokenizer, template, system, template_kwargs),
            "prefix": prefix, "suffix": suffix}


# A training set may mix formats (raw task rows beside chat replay rows): each distinct one is
# recorded with its share of rows, and a suite matching any format of at least this share
# of the rows matches the adapter. Groups smaller than this are pooled (see prompt_formats).
MATCH_SHARE = 0.05

# What starts a prompt's layout (a field label, a header, a tag) and what ends it (the
# answer cue on the last line): rows are grouped by these before their wrappers are taken.
_HEAD = re.compile(r"(?:[#\[<{|]+[^\n]{0,24}?[:\]>}|]|\w{1,20}:)(?=\s|$)[ \t]*\n?")
_TAIL = re.compile(r"\n[^\n]{0,20}?[:\]>}|][ \t]*\n?\Z")
_SYSTEM = "\x00SYSTEM\x00"


def _layout_key(prompt: str) -> tuple[str, str]:
    head, tail = _HEAD.match(prompt), _TAIL.search(prompt)
    return (head.group(0) if head else "", tail.group(0) if tail else "")


def _chat_layouts(tokenizer: Any) -> list[re.Pattern]:
    """Patterns of a prompt written out by hand in the chat template's layout (with and
    without a system message): raw rows that replay chat data look like this."""
    out = []
    for system in (_SYSTEM, None):
        text = rendered_format(tokenizer, "chat", system)
        if text is None or (system and system not in text):
            continue
        text = text.replace("{prompt}", "\x01P\x01").replace(_SYSTEM, "\x01S\x01")
        pattern = re.escape(text).replace("\x01P\x01", "(?P<prompt>.*)").replace("\x01S\x01", "(?P<system>.*?)")
        out.append(re.compile(pattern + r"\Z", re.DOTALL))
    return out


def _as_chat(tokenizer: Any, layouts: list[re.Pattern], text: str) -> tuple[str | None, str] | None:
    """(system, prompt) when the raw text encodes to exactly the tokens the chat template
    gives for that prompt and system message: the model saw the chat format."""
    for pattern in layouts:
        found = pattern.match(text)
        if not found:
            continue
        system, prompt = found.groupdict().get("system"), found.group("prompt")
        try:
            if encode_prompt(tokenizer, text, "raw") == encode_prompt(tokenizer, prompt, "chat", system):
                return system, prompt
        except Exception:
            return None
    return None


def prompt_formats(tokenizer: Any, template: str, rows: list[tuple[str | None, str]]) -> list[dict]:
    """Each distinct prompt format of a training set, largest first, with its ``rows`` and
    ``share``: what ``prompt_format`` records for one format, per group of rows.

    ``rows`` are (system message, prompt) per training row. Rows are grouped by template,
    system message and layout (leading label or tag, trailing answer cue); raw rows that
    are chat prompts written out by hand (same tokens as the chat template gives) count as
    chat. Groups under ``MATCH_SHARE`` of the rows are pooled with the rows of no layout."""
    layouts = _chat_layouts(tokenizer) if template == "raw" and has_chat_template(tokenizer) else []
    groups: dict[tuple, list[str]] = {}
    for system, prompt in rows:
        tmpl = template
        if layouts and not system:
            found = _as_chat(tokenizer, layouts, prompt)
            if found:
                tmpl, (system, prompt) = "chat", found
        groups.setdefault((tmpl, system or None, *_layout_key(prompt)), []).append(prompt)
    small = max(2, MATCH_SHARE * len(rows))
    pooled: dict[tuple, list[str]] = {}
    for key, prompts in groups.items():
        pooled.setdefault(key if len(prompts) >= small else (key[0], key[1], "", ""), []).extend(prompts)
    out = []
    for (tmpl, system, _, _), prompts in sorted(pooled.items(), key=lambda kv: -len(kv[1])):
        out.append(dict(prompt_format(tokenizer, tmpl, system, prompts), rows=len(prompts),
                        share=round(len(prompts) / len(rows), 4)))
    return out


def format_differences(trained: dict, evaluated: dict) -> list[str]:
    """How the evaluation's prompt format differs from the training's (empty: the same).
    An adapter trained on several formats (``formats``, see ``prompt_formats``) matches a
    suite that uses any of them with ``MATCH_SHARE`` or more of its rows; otherwise the
    differences from the closest one are given. Records without ``formats`` (adapters
    trained before it was recorded) are compared on their one format."""
    formats = [f for f in trained.get("formats") or [] if (f.get("share") or 0) >= MATCH_SHARE]
    if not formats:
        return _differences(trained, evaluated)
    found = [(_differences(f, evaluated), f) for f in formats]
    diffs, closest = min(found, key=lambda d: (len(d[0]), -(d[1].get("share") or 0)))
    if diffs and len(formats) > 1:
        diffs = diffs + [f"that is the closest of the {len(formats)} prompt formats it was trained with "
                         f"({closest.get('share', 0):.0%} of its rows)"]
    return diffs


def _differences(trained: dict, evaluated: dict) -> list[str]:
    """How ``evaluated`` differs from one trained format.
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
