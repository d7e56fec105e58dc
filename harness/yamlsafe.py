"""YAML from outside, read once and bounded: (data, node tree) or one HarnessError.

PyYAML's safe loader already refuses Python tags. On top of it:

- **aliases bounded**: the node tree is composed once and its size *with every alias
  expanded* is counted (memoised per node, so counting is cheap); more than
  ``MAX_NODES`` is refused. A 528-byte "billion laughs" file used to take 76 s and
  6.2 GB before failing with an internal error;
- **nesting bounded**: deeper than ``MAX_DEPTH`` is refused (PyYAML recurses);
- **duplicate keys refused**: PyYAML keeps the last value silently, so a second
  ``scorers:`` or ``gates:`` would replace the first without a word;
- **non-finite numbers refused** (``.nan``, ``.inf``): ``temperature: .nan`` passed every
  range check (NaN compares false) and failed only when results were written.

Errors name the file and line. The node tree is returned for line lookups.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from .errors import HarnessError

MAX_NODES = 1_000_000  # expanded nodes (a suite with 10,000 inline cases of 10 fields is ~210,000)
MAX_DEPTH = 64
# Bytes of one YAML file. PyYAML composes the whole document before any limit above is
# checked, at 4 to 7 s per MB on a busy 2-core machine: a 50 MB suite of inline cases took
# 214 s and 2.7 GB to be refused (as "more than 1,000,000 values"), 1.5 MB of them 9.9 s to
# load. Large data belongs in JSONL, which is read at C speed (a suite's `data:`).
MAX_BYTES = 4 << 20
TOO_LARGE_HINT = "keep large data out of YAML: a suite's cases go in a JSONL file named by `data:`"


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _check_tree(root: yaml.Node, path: str | Path, too_large_hint: str) -> None:
    """Expanded size, depth and duplicate keys, without expanding anything."""
    sizes: dict[int, int] = {}
    # Iterative post-order walk; a node reached through an alias is counted once per use
    # (that is the expansion) but walked only once (memo).
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    on_path: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_NODES:
                if len(sizes) + 1 >= total:  # as many distinct values: written out, no alias expanded
                    raise HarnessError(f"YAML has more than {MAX_NODES:,} values", path=path, line=_line(node),
                                       hint=too_large_hint)
                raise HarnessError(f"YAML expands to more than {MAX_NODES:,} values (aliases repeated "
                                   f"inside aliases?)", path=path, line=_line(node),
                                   hint="write the values out, or use fewer nested aliases")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if depth > MAX_DEPTH:
            raise HarnessError(f"YAML nested more than {MAX_DEPTH} levels deep", path=path, line=_line(node),
                               hint="flatten the structure")
        if key in on_path:  # a recursive alias (PyYAML allows &a [*a])
            raise HarnessError("YAML alias refers to itself", path=path, line=_line(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, _ in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    if k.value in seen:
                        raise HarnessError(f"duplicate key {k.value!r} (first at line {seen[k.value]})",
                                           path=path, line=_line(k),
                                           hint="each key may appear once in a mapping; merge the two")
                    seen[k.value] = _line(k)
        on_path.add(key)
        stack.append((node, depth, True))
        for child in _children(node):
            stack.append((child, depth + 1, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _first_non_finite(node: yaml.Node | None) -> yaml.Node | None:
    if node is None:
        return None
    stack, seen = [node], set()
    constructor = yaml.SafeLoader("")
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.ScalarNode) and n.tag == "tag:yaml.org,2002:float":
            try:
                value = constructor.construct_yaml_float(n)
            except (ValueError, yaml.YAMLError):
                continue
            if not math.isfinite(value):
                return n
        stack.extend(reversed(_children(n)))
    return None


def _first_surrogate(node: yaml.Node) -> yaml.Node | None:
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.ScalarNode) and any("\ud800" <= ch <= "\udfff" for ch in n.value):
            return n
        stack.extend(_children(n))
    return None


def load(text: str, path: str | Path, too_large_hint: str = TOO_LARGE_HINT) -> tuple[Any, yaml.Node | None]:
    """(data, root node) of one YAML document; HarnessError (file, line) on anything bad."""
    if text.startswith("\ufeff"):
        text = text[1:]
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_tree(root, path, too_large_hint)
        bad = _first_non_finite(root)
        if bad is not None:
            raise HarnessError(f"{bad.value!r} is not a finite number", path=path, line=_line(bad),
                               hint="use a finite number")
        data = loader.construct_document(root)
        bad = _first_surrogate(root)
        if bad is not None:
            raise HarnessError("a string holds an unpaired surrogate (\\ud800-\\udfff), which is not Unicode text",
                               path=path, line=_line(bad), hint="write the character itself")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark.line != mark.line:
            problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise HarnessError(f"invalid YAML: {problem}", path=path, line=mark.line + 1 if mark else None,
                           hint="fix the YAML syntax at that line") from None
    except yaml.YAMLError as exc:
        raise HarnessError(f"invalid YAML: {exc}", path=path) from None
    except RecursionError:
        raise HarnessError(f"YAML nested more than {MAX_DEPTH} levels deep", path=path,
                           hint="flatten the structure") from None
    finally:
        loader.dispose()
    return data, root


def read_bytes(path: str | Path, what: str = "YAML file", too_large_hint: str = TOO_LARGE_HINT) -> bytes:
    """A YAML file's bytes, refused past ``MAX_BYTES`` (before PyYAML sees them) or when the
    file is a folder, FIFO or device (``files.read_input``)."""
    from .files import read_input

    return read_input(path, what, max_bytes=MAX_BYTES, too_large_hint=too_large_hint)


def load_bytes(raw: bytes, path: str | Path, what: str = "YAML file",
               too_large_hint: str = TOO_LARGE_HINT) -> tuple[Any, yaml.Node | None]:
    """``load`` of a file's bytes (``read_bytes``); not UTF-8 is a HarnessError."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # the line and the fix, as a JSONL file's (suite.split_jsonl)
        raise HarnessError(f"{what} is not UTF-8 text (byte {exc.start} is {raw[exc.start]:#04x})", path=path,
                           line=raw[:exc.start].count(b"\n") + 1, hint=f"save the {what} as UTF-8") from None
    return load(text, path, too_large_hint)


def read(path: str | Path, what: str = "YAML file",
         too_large_hint: str = TOO_LARGE_HINT) -> tuple[Any, yaml.Node | None]:
    """``load`` of a file: ``read_bytes``, then ``load_bytes``. ``too_large_hint``: where the
    caller's large data goes, for a file over ``MAX_BYTES`` or ``MAX_NODES``."""
    return load_bytes(read_bytes(path, what, too_large_hint), path, what, too_large_hint)


__all__ = ["MAX_NODES", "MAX_DEPTH", "MAX_BYTES", "load", "read", "read_bytes", "load_bytes"]
