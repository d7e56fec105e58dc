"""Structured output: is the answer JSON, in what form, and does it follow the schema?

Each output gets a class, because "not valid" hides what went wrong and what to fix:

- ``ok``: the whole output (up to surrounding whitespace) is one JSON value;
- ``fenced``: the whole output is one markdown code fence around JSON;
- ``prefix_text``: JSON with prose before it (and maybe after), fenced or not;
- ``trailing_text``: JSON followed by prose, fenced or not;
- ``truncated``: no complete JSON value, and generation hit ``max_tokens`` or the output
  ends inside a string, object or array;
- ``invalid``: anything else.

The JSON found (the first complete object or array, for the lenient classes) is then
validated with the Draft 2020-12 validator, formats checked, and the best error message
(``jsonschema.exceptions.best_match``) becomes the detail. Strict compliance (class
``ok`` and valid: the main value) and lenient compliance (JSON extracted from any
class and valid: ``json_schema.lenient``) are both reported: a fine-tune that starts
wrapping its JSON in prose shows as a strict drop with the lenient rate unchanged.

The schema is given inline (``schema: {...}``) or as a path relative to the suite file.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema

from ..errors import HarnessError
from ..stats import wilson
from .base import Item, Score, Scorer
from .normalize import strip_code_fence

CLASSES = ("ok", "fenced", "prefix_text", "trailing_text", "truncated", "invalid")
_MAX_STARTS = 64  # opening brackets tried when looking for JSON inside prose
_OPEN_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+.-]*[ \t]*\r?\n?[ \t]*\Z")
_CLOSE_FENCE = re.compile(r"\s*```")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def _loads(text: str) -> Any:
    value, end = _DECODER.raw_decode(text)
    if text[end:].strip():
        raise ValueError("extra data")
    return value


def _ends_inside_value(text: str) -> bool:
    """Whether the text, from its first ``{`` or ``[``, stops inside a string or container."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return False
    depth, in_string, escaped = 0, False, False
    for ch in text[min(starts):]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    return in_string or depth > 0


def classify(output: str, finish_reason: str) -> tuple[str, Any, bool]:
    """(class, the JSON value found or None, whether a value was found)."""
    text = output.strip()
    if not text:
        return ("truncated" if finish_reason == "length" else "invalid"), None, False
    try:
        return "ok", _loads(text), True
    except ValueError:
        pass
    inner, lang = strip_code_fence(text)
    if lang is not None:
        try:
            return "fenced", _loads(inner.strip()), True
        except ValueError:
            pass
    tried = 0
    for i, ch in enumerate(text):
        if ch not in "{[":
            continue
        tried += 1
        if tried > _MAX_STARTS:
            break
        try:
            value, end = _DECODER.raw_decode(text, i)
        except ValueError:
            continue
        # Fence markers around the JSON are not text: prose outside them is.
        before, after, fenced = text[:i], text[end:], False
        opening = _OPEN_FENCE.search(before)
        if opening:
            before, fenced = before[:opening.start()], True
            closing = _CLOSE_FENCE.match(after)
            after = after[closing.end():] if closing else after
        if before.strip():
            return "prefix_text", value, True
        return ("trailing_text" if after.strip() or not fenced else "fenced"), value, True
    if finish_reason == "length" or _ends_inside_value(text):
        return "truncated", None, False
    return "invalid", None, False


_CLASS_TEXT = {
    "ok": "the output is JSON",
    "fenced": "JSON inside a code fence",
    "prefix_text": "JSON with text before it",
    "trailing_text": "JSON with text after it",
    "truncated": "the JSON is cut off",
    "invalid": "no valid JSON object or array found",
}


class JsonSchema(Scorer):
    name = "json_schema"
    version = "1"
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["schema"],
        "properties": {
            "schema": {"type": ["object", "boolean", "string"],
                       "description": "a JSON Schema, or a path to one relative to the suite file"},
        },
    }

    def check(self, path, line, field) -> None:
        where = f"{field}.schema"
        spec = self.options["schema"]
        if isinstance(spec, str):
            file = (self.suite_dir or Path(".")) / spec
            if not file.is_file():
                raise HarnessError(f"schema file {spec!r} not found", path=path, line=line,
                                   field=where, hint="the path is relative to the suite file")
            try:
                json.loads(file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise HarnessError(f"invalid JSON: {exc.msg}", path=file, line=exc.lineno,
                                   hint="the schema file must be one JSON document") from None
            path, line, where = file, None, None
        try:
            jsonschema.Draft202012Validator.check_schema(self.schema)
        except jsonschema.SchemaError as exc:
            at = "/".join(str(p) for p in exc.absolute_path)
            raise HarnessError(f"not a valid Draft 2020-12 schema: {exc.message}"
                               + (f" (at {at})" if at else ""), path=path, line=line,
                               field=where, hint="fix the schema") from None

    @cached_property
    def schema(self) -> Any:
        spec = self.options["schema"]
        if isinstance(spec, str):
            return json.loads(((self.suite_dir or Path(".")) / spec).read_text(encoding="utf-8"))
        return spec

    @cached_property
    def validator(self) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator(
            self.schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)

    def score(self, item: Item) -> Score:
        cls, value, found = classify(item.output, item.finish_reason)
        extra: dict[str, Any] = {"json_class": cls}
        if not found:
            reason = _CLASS_TEXT[cls] if item.output.strip() else "the output is empty"
            if cls == "truncated" and item.finish_reason == "length":
                reason = ("generation hit max_tokens before any JSON began"
                          if "{" not in item.output and "[" not in item.output
                          else reason + " (generation hit max_tokens)")
            return Score(0.0, False, f"{cls}: {reason}",
                         metrics={"lenient": 0.0, "parsed": 0.0}, extra=extra)
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
        valid = error is None
        strict = valid and cls == "ok"
        if valid:
            detail = f"{cls}: {_CLASS_TEXT[cls]}, valid against the schema"
            if not strict:
                detail += " (lenient only)"
        else:
            at = error.json_path if error.absolute_path else "the top level"
            detail = f"{cls}: {_CLASS_TEXT[cls]}; schema error at {at}: {error.message}"
            extra["schema_error"] = error.message
            extra["schema_error_path"] = error.json_path
        return Score(float(strict), strict, detail,
                     metrics={"lenient": float(valid), "parsed": 1.0}, extra=extra)

    def aggregate(self, scores: list[Score]) -> dict[str, dict]:
        """The share of each output class, so a report shows how the format broke."""
        classes = [s.extra.get("json_class") for s in scores if s.extra.get("json_class")]
        n = len(classes)
        if not n:
            return {}
        out = {}
        for cls in CLASSES:
            k = classes.count(cls)
            low, high = wilson(k, n)
            out[f"{self.name}.class.{cls}"] = {"value": k / n, "ci_low": low, "ci_high": high,
                                               "n": n, "kind": "proportion",
                                               "higher_is_better": cls == "ok"}
        return out
