"""A JSON Schema validator fit for untrusted schemas and outputs.

- **No network, no escape.** ``$ref`` resolves through a ``referencing.Registry`` whose
  retrieve function serves only regular JSON files inside the suite's folder; anything
  else (``http://``, ``https://``, ``file:///etc/...``, ``../``, a symlink out) is
  unresolvable. ``check_refs`` walks every ``$ref`` when the suite loads, so a bad one is
  exit 2 before any model loads, and nothing is ever fetched while scoring.
- **Bounded regexes.** ``pattern``, ``patternProperties`` and ``additionalProperties``
  (which matches property names against ``patternProperties``) search with the
  ``regex`` package and a time limit (``harness.bounded``); an output on which a pattern
  backtracks without end scores 0 with the reason instead of hanging the run.
  ``unevaluatedProperties`` is jsonschema's own, which matches property names against
  ``patternProperties`` with Python's ``re`` in ``jsonschema._utils``: while it runs for a
  harness validator, that module's ``re`` is a stand-in whose ``search`` is bounded
  (``_PropertyNameRegex``); everywhere else it is plain ``re``.
"""

from __future__ import annotations

import contextvars
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import jsonschema
from jsonschema import ValidationError
from jsonschema import _keywords as _jsonschema_keywords  # delegated to when no regex is involved
from jsonschema import _utils as _jsonschema_utils
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

from .. import bounded
from ..errors import HarnessError


def _pattern(validator, patrn, instance, schema):
    if validator.is_type(instance, "string") and bounded.search(patrn, instance) is None:
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(validator, pattern_properties, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for patrn, subschema in pattern_properties.items():
        for k, v in instance.items():
            if bounded.search(patrn, k) is not None:
                yield from validator.descend(v, subschema, path=k, schema_path=patrn)


def _additional_properties(validator, ap, instance, schema):
    if "patternProperties" not in schema or not validator.is_type(instance, "object"):
        yield from _jsonschema_keywords.additionalProperties(validator, ap, instance, schema)
        return
    properties = schema.get("properties", {})
    patterns = list(schema["patternProperties"])
    extras = {k for k in instance
              if k not in properties and not any(bounded.search(p, k) is not None for p in patterns)}
    if validator.is_type(ap, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], ap, path=extra)
    elif not ap and extras:
        verb = "does" if len(extras) == 1 else "do"
        joined = ", ".join(repr(each) for each in sorted(extras))
        yield ValidationError(f"{joined} {verb} not match any of the regexes: "
                              + ", ".join(repr(p) for p in sorted(patterns)))


_BOUNDED_NAMES = contextvars.ContextVar("harness_bounded_property_names", default=False)


class _PropertyNameRegex:
    """Stands in for ``re`` in ``jsonschema._utils``, whose regex use is matching property
    names against ``patternProperties``: ``search`` is ``bounded.search`` while a harness
    validator's ``unevaluatedProperties`` runs, Python's ``re.search`` otherwise."""

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)

    def search(self, pattern: Any, string: str, flags: int = 0) -> Any:
        if _BOUNDED_NAMES.get() and isinstance(pattern, str) and not flags:
            return bounded.search(pattern, string)
        return re.search(pattern, string, flags)


if getattr(_jsonschema_utils, "re", None) is re:
    _jsonschema_utils.re = _PropertyNameRegex()


def _unevaluated_properties(validator, unevaluated, instance, schema):
    token = _BOUNDED_NAMES.set(True)
    try:
        errors = list(_jsonschema_keywords.unevaluatedProperties(validator, unevaluated, instance, schema))
    finally:
        _BOUNDED_NAMES.reset(token)
    yield from errors


BoundedValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    {"pattern": _pattern, "patternProperties": _pattern_properties,
     "additionalProperties": _additional_properties, "unevaluatedProperties": _unevaluated_properties},
)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def registry(root: Path) -> Registry:
    """A registry that retrieves only regular JSON files under ``root`` (resolved)."""
    root = root.resolve()

    def retrieve(uri: str) -> Resource:
        parts = urlsplit(uri)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise NoSuchResource(ref=uri)
        target = Path(unquote(parts.path)).resolve()  # symlinks followed, then checked
        if not _inside(target, root) or not target.is_file():
            raise NoSuchResource(ref=uri)
        try:
            contents = bounded.loads(target.read_text(encoding="utf-8"), what=str(target))
        except (ValueError, OSError, bounded.TooMuchWork):
            raise NoSuchResource(ref=uri) from None
        return Resource.from_contents(contents, default_specification=DRAFT202012)

    return Registry(retrieve=retrieve)


def base_uri(schema_file: Path | None, suite_dir: Path) -> str:
    """The URI relative ``$ref``s resolve against: the schema's own file, or (inline) the suite folder."""
    return (schema_file or suite_dir / "__inline_schema__.json").resolve().as_uri()


def with_base(schema: Any, uri: str) -> Any:
    """The schema with ``$id`` set to its file's URI (unless it names its own ``$id``)."""
    if isinstance(schema, dict) and "$id" not in schema:
        return {"$id": uri, **schema}
    return schema


def make_validator(schema: Any, schema_file: Path | None, suite_dir: Path) -> jsonschema.Validator:
    uri = base_uri(schema_file, suite_dir)
    return BoundedValidator(with_base(schema, uri), registry=registry(suite_dir),
                            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _refs(node: Any, depth: int = 0):
    if depth > bounded.MAX_JSON_DEPTH:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield value
            elif key not in ("const", "enum", "examples", "default"):  # data, not schemas
                yield from _refs(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value, depth + 1)


def check_refs(schema: Any, schema_file: Path | None, suite_dir: Path, *, path: Path, line: int | None,
               field: str | None) -> list[Path]:
    """Resolve every ``$ref`` (and those of the files they reach) now: HarnessError if one
    points outside the suite's folder, to the network, or nowhere. Returns the files the
    ``$ref``s reach (the schema's own file not included)."""
    uri = base_uri(schema_file, suite_dir)
    reg = registry(suite_dir)
    reg = reg.with_resource(uri, Resource.from_contents(with_base(schema, uri), default_specification=DRAFT202012))
    todo, seen = [(uri, with_base(schema, uri))], {uri}
    while todo:
        where, contents = todo.pop()
        resolver = reg.resolver(base_uri=where)
        for ref in _refs(contents):
            try:
                resolved = resolver.lookup(ref)
            except Unresolvable:
                raise HarnessError(
                    f"$ref {ref!r} does not resolve inside the suite's folder", path=path, line=line,
                    field=field,
                    hint="a $ref may name only a JSON file in the suite's folder (or a part of this "
                         "schema); nothing is fetched from the network") from None
            target = urldefrag(urljoin(where, ref))[0]
            if target not in seen:  # another file: check its refs too
                seen.add(target)
                document = resolver.lookup(target) if target != urldefrag(where)[0] else resolved
                todo.append((target, document.contents))
    return sorted({Path(unquote(urlsplit(u).path)) for u in seen if u != uri and urlsplit(u).scheme == "file"})


__all__ = ["BoundedValidator", "registry", "make_validator", "check_refs", "base_uri", "with_base"]
