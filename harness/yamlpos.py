"""Positions in YAML files: the line of a field, and schema validation that names it,
shared by suites, gates and training configs (``yamlsafe`` reads the files).

Lines come from PyYAML's composed node tree, so an error points at the key a user wrote
(1-based), not at a parsed Python object that has forgotten where it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import HarnessError

__all__ = ["node_line", "field_name", "validate_with_lines"]


def node_line(root: yaml.Node | None, path: list) -> int | None:
    """Line (1-based) of the YAML node at a JSON path, or of its nearest parent."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def field_name(path: list) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate_with_lines(obj: Any, schema: dict, path: Path, root: yaml.Node | None,
                        base: list | None = None) -> None:
    """Validate ``obj`` against a JSON Schema; the best error names its YAML line and field."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(obj))
    if not errors:
        return
    err = jsonschema.exceptions.best_match(errors)
    full = list(base or []) + list(err.absolute_path)
    message = err.message
    if err.validator == "oneOf" and not err.absolute_path and isinstance(obj, dict):
        message = ("give exactly one of `data` (a JSONL file) or `cases` (inline records)"
                   if ("data" in obj) == ("cases" in obj) else err.message)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in allowed]
        if extra:
            full = full + [extra[0]]  # point at the unexpected key itself
            message = f"unknown field {extra[0]!r}"
        if allowed:
            message += f"; allowed: {', '.join(allowed)}"
    raise HarnessError(message, path=path, line=node_line(root, full), field=field_name(full))
