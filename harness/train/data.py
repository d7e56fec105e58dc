"""Training data: JSONL splits, their format checked on every row, encoded once.

Three row formats, as mlx-lm reads them:

- ``text``: ``{"text": ...}``, a whole document, trained on every token;
- ``completions``: ``{"prompt": ..., "completion": ...}``;
- ``chat``: ``{"messages": [{"role": ..., "content": ...}, ...]}`` ending with the
  assistant's answer.

Prompts and answers are encoded by :mod:`harness.prompts`, the same code ``harness eval``
renders prompts with, so an adapter sees at training exactly the layout it is evaluated
on. The format is detected per row and must be the same in every row and every split;
mlx-lm looks at the first row only, so a mixed file trains on garbage without a word.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HarnessError
from ..files import bytes_digest, read_input, require_utf8_name
from ..prompts import encode_completion, encode_example, has_chat_template

SPLITS = ("train", "valid", "test")
FORMAT_KEYS = {"text": ("text",), "completions": ("prompt", "completion"), "chat": ("messages",)}


@dataclass
class Example:
    """One encoded row: tokens, and how many of them are prompt (not trained on)."""

    ids: list[int]
    prompt_len: int
    line: int


@dataclass
class Split:
    name: str
    path: Path
    examples: list[Example]
    sha256: str
    truncated: int = 0


def row_formats(row: Any) -> list[str]:
    """Every format whose fields the row has (a row may keep extra columns)."""
    if not isinstance(row, dict):
        return []
    return [name for name, keys in FORMAT_KEYS.items() if all(k in row for k in keys)]


def row_format(row: Any, wanted: str = "auto") -> str | None:
    """The format a row is read in: ``wanted`` when the row has its fields; with ``auto``
    the one format it matches. None when it matches none (or, with ``auto``, several)."""
    found = row_formats(row)
    if wanted != "auto":
        return wanted if wanted in found else None
    return found[0] if len(found) == 1 else None


def format_problem(row: Any, wanted: str = "auto") -> tuple[str, str]:
    """(message, hint) for a row ``row_format`` cannot read."""
    found = row_formats(row)
    keys = sorted(row) if isinstance(row, dict) else type(row).__name__
    if wanted == "auto" and len(found) > 1:
        return (f"row matches several formats ({' and '.join(found)}; keys: {keys})",
                f"set `format:` in the training config ({' or '.join(found)}) to say which fields to train on")
    if wanted != "auto" and found:
        return (f"row is `{found[0]}` but the config's format is {wanted} (keys: {keys})",
                "use one format in every row of train, valid and test")
    return (f"row matches no format (keys: {keys})",
            "each row needs `text`, or `prompt` + `completion`, or `messages`")


def read_rows(path: Path) -> list[tuple[int, Any]]:
    """(line number, parsed JSON) for every non-blank line; bad JSON names its line."""
    return parse_rows(read_input(path, "data file"), path)


def parse_rows(data: bytes, path: Path) -> list[tuple[int, Any]]:
    """``read_rows`` of the bytes read from ``path``."""
    from ..suite import parse_json_line, split_jsonl  # \n-only lines, BOM, UTF-8, bounded depth

    return [(number, parse_json_line(line, path, number)) for number, line in split_jsonl(data, path, "data file")]


def check_row(row: Any, fmt: str, path: Path, line: int) -> None:
    """Types of the fields the format needs; raises with the file, line and field."""
    def bad(field: str, message: str) -> HarnessError:
        return HarnessError(message, path=path, line=line, field=field)

    if fmt in ("text", "completions"):
        for key in FORMAT_KEYS[fmt]:
            if not isinstance(row[key], str):
                raise bad(key, f"expected a string, got {type(row[key]).__name__}")
        return
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "expected a non-empty list of {role, content} messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(
                m.get("content"), str):
            raise bad(f"messages[{i}]", "each message needs string `role` and `content`")
    if messages[-1]["role"] != "assistant":
        raise bad(f"messages[{len(messages) - 1}].role",
                  f"the last message must be the assistant's answer, got {messages[-1]['role']!r}")
    if len(messages) < 2:  # the chat template cannot render an empty prompt
        raise bad("messages", "the assistant's answer needs a prompt before it (a user message)")


def detect_format(rows_by_split: dict[str, tuple[Path, list]], wanted: str) -> str:
    """The one format of every row in every split (``wanted`` unless it is ``auto``)."""
    fmt = None if wanted == "auto" else wanted
    first_at = None
    for path, rows in rows_by_split.values():
        for line, row in rows:
            found = row_format(row, wanted)
            if found is None:
                message, hint = format_problem(row, wanted)
                raise HarnessError(message, path=path, line=line, hint=hint)
            if fmt is None:
                fmt, first_at = found, f"{path}:{line}"
            elif found != fmt:
                origin = f"the config's format: {wanted}" if first_at is None else f"{first_at} is {fmt}"
                raise HarnessError(f"row is `{found}` but {origin}", path=path, line=line,
                                   hint="use one format in every row of train, valid and test")
            check_row(row, found, path, line)
    assert fmt is not None
    return fmt


def resolve_template(template: str, fmt: str, tokenizer: Any) -> str:
    if fmt == "text":
        return "raw"  # a document has no prompt to template
    if template == "auto":
        template = "chat" if has_chat_template(tokenizer) else "raw"
        if fmt == "chat" and template == "raw":  # not silently: the roles would be dropped
            raise HarnessError("`messages` rows need the chat template, and the model's tokenizer has none",
                               field="template",
                               hint="write prompt/completion (or text) rows for a base model without one, "
                                    "or add a chat_template.jinja to the model folder")
        return template
    if fmt == "chat" and template == "raw":
        raise HarnessError("`messages` rows need the chat template", field="template",
                           hint="use template: chat, or write prompt/completion rows for raw prompts")
    return template


def encode_row(tokenizer: Any, row: dict, fmt: str, template: str, system: str | None,
               mask_prompt: bool, path: Path | None = None, line: int | None = None) -> tuple[list[int], int]:
    """(ids, prompt_len): the tokens trained on, and how many leading ones are not targets.
    A row the model's chat template refuses (``raise_exception``) is a HarnessError at ``path:line``."""
    from jinja2 import TemplateError

    try:
        return _encode_row(tokenizer, row, fmt, template, system, mask_prompt)
    except TemplateError as exc:
        raise HarnessError(f"the model's chat template refused the row: {exc}", path=path, line=line,
                           hint="write the roles in the order this model's template accepts") from None


def _encode_row(tokenizer: Any, row: dict, fmt: str, template: str, system: str | None,
                mask_prompt: bool) -> tuple[list[int], int]:
    if fmt == "text":
        ids = list(tokenizer.encode(row["text"]))
        if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
            ids.append(tokenizer.eos_token_id)
        return ids, 0
    if fmt == "completions":
        ids, prompt_len = encode_example(tokenizer, row["prompt"], row["completion"], template, system)
    else:
        messages = row["messages"]
        history, answer = messages[:-1], messages[-1]["content"]
        if len(history) <= 2 and [m["role"] for m in history] in (["user"], ["system", "user"]):
            # Single turn: the very encoder `harness eval` uses.
            sys_msg = history[0]["content"] if len(history) == 2 else system
            ids, prompt_len = encode_example(tokenizer, history[-1]["content"], answer, template, sys_msg)
        else:
            if system and history[0]["role"] != "system":
                history = [{"role": "system", "content": system}, *history]
            prompt = tokenizer.apply_chat_template(history, add_generation_prompt=True, tokenize=True)
            if isinstance(prompt, dict):
                prompt = prompt["input_ids"]
            prompt = list(prompt)
            ids, prompt_len = prompt + encode_completion(tokenizer, answer), len(prompt)
    return ids, (prompt_len if mask_prompt else 0)




def kept_ids(ids: list[int], prompt_len: int, max_seq_length: int) -> list[int] | None:
    """What the trainer keeps of an encoded row: cut to ``max_seq_length``; None when no
    target token is left after the cut (the row is skipped). ``harness lint-data`` checks
    the same rows the trainer keeps."""
    kept = ids[:max_seq_length]
    return kept if len(kept) - max(prompt_len, 1) >= 1 else None


def load_splits(data_dir: str | Path, fmt: str, template: str, tokenizer: Any,
                system: str | None, mask_prompt: bool | None, max_seq_length: int,
                ) -> tuple[dict[str, Split], str, str, bool]:
    """Read and encode every split. Returns (splits, format, template, mask_prompt)."""
    root = data_folder(data_dir, "`data:` is a folder with train.jsonl and valid.jsonl")
    raw: dict[str, tuple[Path, list]] = {}
    digests: dict[str, str] = {}  # of the bytes parsed: the file was read again to hash it
    for name in SPLITS:
        path = root / f"{name}.jsonl"
        if path.is_file():
            data = read_input(path, "data file")
            raw[name], digests[name] = (path, parse_rows(data, path)), "sha256:" + bytes_digest(data)
        elif missing := missing_split(path):
            raise HarnessError(missing, path=root, hint="the data folder needs train.jsonl and valid.jsonl "
                                                        "(optional test.jsonl), each a JSONL file")
        if name in raw and not raw[name][1]:
            raise HarnessError("file has no rows", path=path)
    fmt = detect_format(raw, fmt)
    template = resolve_template(template, fmt, tokenizer)
    if mask_prompt is None:
        mask_prompt = fmt != "text"
    elif mask_prompt and fmt == "text":
        raise HarnessError("`text` rows have no prompt to mask", field="mask_prompt",
                           hint="set mask_prompt: false, or write prompt/completion rows")
    splits = {}
    for name, (path, rows) in raw.items():
        examples, truncated, empty = [], 0, 0
        for line, row in rows:
            ids, prompt_len = encode_row(tokenizer, row, fmt, template, system, mask_prompt, path, line)
            if len(ids) > max_seq_length:
                truncated += 1
            kept = kept_ids(ids, prompt_len, max_seq_length)
            if kept is None:
                empty += 1  # nothing left to train on after truncation
                continue
            examples.append(Example(ids=kept, prompt_len=prompt_len, line=line))
        if truncated:
            print(f"harness train: warning: {truncated} rows of {path} are longer than "
                  f"max_seq_length={max_seq_length} and were truncated "
                  f"(see `harness lint-data`)", file=sys.stderr)
        if empty:
            print(f"harness train: warning: {empty} rows of {path} have no target tokens "
                  f"within max_seq_length={max_seq_length} and were skipped", file=sys.stderr)
        if not examples:
            raise HarnessError("no trainable rows", path=path,
                               hint="raise max_seq_length or shorten the prompts")
        splits[name] = Split(name=name, path=path, examples=examples, sha256=digests[name],
                             truncated=truncated)
    return splits, fmt, template, mask_prompt


def data_folder(path: str | Path, hint: str) -> Path:
    """The data folder, or one error: a file there (train.jsonl itself, a common slip) is
    named as a file and its folder suggested, not reported as "not found"."""
    root = Path(path)
    if root.is_dir():
        require_utf8_name(root, "data folder", field="data")  # adapter_config.json records it
        return root
    if os.path.lexists(root):
        raise HarnessError("the data path is a file, not a folder", path=root,
                           hint=f"pass its folder ({root.parent}) with train.jsonl and valid.jsonl"
                           if root.suffix == ".jsonl" else hint)
    raise HarnessError("data folder not found", path=root, hint=hint)


def missing_split(path: Path) -> str | None:
    """What is wrong with a split that is not a readable file (None: a test split that is
    simply absent). A folder, FIFO or device there is named as such, not as "not found"."""
    if os.path.lexists(path):
        return f"{path.name} is not a regular file (a folder, FIFO, device or broken link)"
    return None if path.stem == "test" else f"{path.name} not found"


def fixed_subset(examples: list[Example], rows: int, seed: int) -> list[Example]:
    """The validation rows: all of them, or the same seeded subset at every evaluation."""
    if rows == -1 or rows >= len(examples):
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=rows, replace=False))
    return [examples[i] for i in keep]


def row_prompts(path: Path, fmt: str) -> tuple[list[str], str | None]:
    """The user prompts of a split's rows (empty for ``text``) and the system message every
    chat row shares (None when they do not all carry the same one)."""
    prompts, systems = [], set()
    for _, row in read_rows(path):
        if fmt == "completions":
            prompts.append(row["prompt"])
        elif fmt == "chat":
            msgs = row["messages"]
            users = [m["content"] for m in msgs[:-1] if m.get("role") == "user"]
            if users:
                prompts.append(users[-1])
            systems.add(msgs[0]["content"] if msgs and msgs[0].get("role") == "system" else None)
    return prompts, (systems.pop() if len(systems) == 1 else None)


def row_prompt_pairs(path: Path, fmt: str, system: str | None = None) -> list[tuple[str | None, str]]:
    """(system message, user prompt) of each row of a split, as ``encode_row`` renders it
    (``system``: the config's, for rows that carry none); empty for ``text``."""
    out: list[tuple[str | None, str]] = []
    for _, row in read_rows(path):
        if fmt == "completions":
            out.append((system, row["prompt"]))
        elif fmt == "chat":
            msgs = row["messages"]
            users = [m["content"] for m in msgs[:-1] if m.get("role") == "user"]
            if users:
                own = msgs[0]["content"] if msgs and msgs[0].get("role") == "system" else None
                out.append((own or system, users[-1]))
    return out
