"""`harness init DIR`: a starter suite, a training config and a CI workflow in a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

# file written -> template in harness/templates/init/
FILES = {
    "suites/starter.yaml": "suite.yaml",
    "train/config.yaml": "train.yaml",
    ".github/workflows/harness.yml": "workflow.yml",
}


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

    root = Path(args.dir)
    if root.exists() and not root.is_dir():
        raise HarnessError("not a folder", path=root, hint="harness init DIR writes files into DIR")
    existing = [rel for rel in FILES if (root / rel).exists()]
    if existing and not args.force:
        raise HarnessError(f"{existing[0]} exists" + (f" (+{len(existing) - 1} more)" if len(existing) > 1 else ""),
                           path=root / existing[0], hint="pass --force to overwrite, or pick another folder")
    model = str(args.model)
    templates = resources.files("harness").joinpath("templates/init")
    for rel, name in FILES.items():
        text = templates.joinpath(name).read_text(encoding="utf-8").replace("{{MODEL}}", model)
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text(target, text)
        print(f"wrote {printable(target)}")
    print(f"next: harness eval {printable(root / 'suites')} --model {model}    "
          f"(train: harness train {printable(root / 'train' / 'config.yaml')})")
    return 0
