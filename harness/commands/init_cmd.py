"""`harness init DIR`: a starter suite, a training config and a CI workflow in a folder."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import unicodedata
from pathlib import Path

# file written -> template in harness/templates/init/
FILES = {
    "suites/starter.yaml": "suite.yaml",
    "train/config.yaml": "train.yaml",
    ".github/workflows/harness.yml": "workflow.yml",
}


# The starter suite's prompt lines for a chat model, and what replaces them for a base model
# without a chat template (`template: chat` would fail on it before anything generates).
CHAT_LINES = ('''prompt: "{{ question }}"            # Jinja over one case
target: "{{ answer }}"
template: chat                      # chat: the tokenizer's chat template; raw: the prompt as is
generation: {max_tokens: 64, temperature: 0.0}
''')
RAW_LINES = ('''prompt: "Q: {{ question }}\\nA:"      # Jinja over one case; raw text a base model continues
target: "{{ answer }}"
template: raw                       # the model has no chat template (chat: the tokenizer's chat template)
generation: {max_tokens: 64, temperature: 0.0, stop: ["\\n"]}
''')


def model_has_chat_template(model: str) -> bool | None:
    """Whether a local model folder has a chat template (None: not a local folder, e.g. a hub
    id, or its tokenizer_config.json does not read)."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return None
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    if not (folder / "tokenizer_config.json").is_file():
        return False  # nowhere else for a chat template to be (tokenizer.json alone has none)
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    from ..prompts import usable_chat_template

    return usable_chat_template(config.get("chat_template"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="write a starter suite, training config and CI workflow",
                       description="Write suites/starter.yaml, train/config.yaml and "
                                   ".github/workflows/harness.yml into DIR (created if needed). "
                                   "Existing files are left alone unless --force.")
    p.add_argument("dir", type=Path, metavar="DIR", help="project folder")
    p.add_argument("--model", default="models/base",
                   help="base model folder or hub id to put in the config and workflow (default models/base)")
    p.add_argument("--force", action="store_true", help="overwrite files that exist")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from importlib import resources

    from ..atomic import write_text
    from ..errors import HarnessError, printable
    from ..files import refuse_link_to_nothing, resolve_path

    root = Path(args.dir)
    # a dangling link was "cannot make this folder: File exists"; a loop, below, resolve_path's
    refuse_link_to_nothing(root, "project folder", hint="name a folder, or remove the link")
    if root.exists() and not root.is_dir():
        raise HarnessError("not a folder", path=root, hint="harness init DIR writes files into DIR")
    existing = [rel for rel in FILES if (root / rel).exists()]
    if existing and not args.force:
        raise HarnessError(f"{existing[0]} exists" + (f" (+{len(existing) - 1} more)" if len(existing) > 1 else ""),
                           path=root / existing[0], hint="pass --force to overwrite, or pick another folder")
    model = str(args.model)
    # control characters, and what YAML reads as a line break (NEL, U+2028/9: they split the
    # workflow's shell line) or cannot write (an undecodable byte in argv, a lone surrogate)
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs") for ch in model):
        raise HarnessError("the model name holds a control character", field="--model",
                           hint="pass the model folder or hub id as plain text")
    chat = model_has_chat_template(model)
    local = Path(model).expanduser()
    if local.is_dir() and not local.is_absolute():
        # The files are used from the project folder (the workflow runs there; the training
        # config's paths are relative to where `harness train` runs), so a local model folder
        # given relative to here is written relative to the project folder.
        model = os.path.relpath(local.resolve(), resolve_path(root, "project folder", hint="name a folder"))
    # The model goes into YAML (quoted as a JSON string, which YAML reads) and into a shell
    # line of the workflow (shell-quoted): `--model 'a: b'` or `--model '$(x)'` stay a name.
    values = {"{{MODEL}}": json.dumps(model, ensure_ascii=False), "{{MODEL_SHELL}}": shlex.quote(model)}
    # every folder made, and every target a file we may replace, before anything is written
    for rel in FILES:
        if (root / rel).exists() and not (root / rel).is_file():
            raise HarnessError("exists and is not a file", path=root / rel, hint="move it away, or pick another folder")
    for rel in FILES:
        target = root / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HarnessError(f"cannot make this folder: {exc.strerror or exc}", path=target.parent,
                               hint="harness init DIR writes files into DIR: pick a folder you can write") from None
    templates = resources.files("harness").joinpath("templates/init")
    for rel, name in FILES.items():
        text = templates.joinpath(name).read_text(encoding="utf-8")
        if name == "suite.yaml" and chat is False:
            if CHAT_LINES not in text:
                raise RuntimeError("templates/init/suite.yaml no longer holds init_cmd.CHAT_LINES")
            text = text.replace(CHAT_LINES, RAW_LINES)
        # one pass: a model name holding "{{MODEL_SHELL}}" is not substituted again
        text = re.sub("|".join(map(re.escape, values)), lambda m: values[m.group(0)], text)
        target = root / rel
        write_text(target, text)
        print(f"wrote {printable(target)}")
    if chat is False:
        print(f"{printable(model)} has no chat template: the starter suite uses `template: raw` "
              "(Q:/A: prompts a base model can continue)")
    # training reads data/train.jsonl and data/valid.jsonl, which init does not write: say so, or
    # the printed command is the user's first error ("data: data folder not found")
    print(f"next: cd {printable(shlex.quote(str(root)))} && harness eval suites/ --model "
          f"{printable(shlex.quote(model))}    (train: put train.jsonl and valid.jsonl in data/, then "
          "harness lint-data data/ --config train/config.yaml && harness train train/config.yaml)")
    return 0
