"""Reading input files: JSON with one-line errors, and content digests (fingerprints).

Every module that fingerprints a file (weights, adapters, training data, stored
completions) uses ``file_digest``, so the same bytes always give the same identity.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import HarnessError

__all__ = ["read_json", "file_digest"]


def read_json(path: str | Path, what: str = "file") -> dict:
    """A JSON object from ``path``; a missing, unreadable or malformed file is a HarnessError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HarnessError(f"{what} not found", path=p) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"cannot read {what}: {exc}", path=p) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"invalid JSON: {exc.msg}", path=p, line=exc.lineno) from None
    except RecursionError:
        raise HarnessError("JSON nested too deeply", path=p) from None
    except ValueError as exc:  # e.g. a 5,000-digit number
        raise HarnessError(f"unreadable JSON: {exc}", path=p) from None
    if not isinstance(data, dict):
        raise HarnessError(f"expected a JSON object in the {what}", path=p)
    return data


def file_digest(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (weights can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
