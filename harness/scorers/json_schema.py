"""Structured output: is the answer JSON, in what form, and does it follow the schema?

Each output gets a class that names what happened, because "not valid" hides what went
wrong and what to fix:

- ``ok``: the whole output (up to surrounding whitespace) is one JSON value;
- ``fenced``: the whole output is one markdown code fence around JSON;
- ``prefix_text``: a complete JSON value with prose before it (and maybe after), fenced
  or not;
- ``trailing_text``: a complete JSON value followed by prose (or by a second value);
- ``truncated``: a JSON value began (a ``{`` or ``[``) and is unfinished at the end of
  the output, and generation hit ``max_tokens``: raise ``max_tokens`` or ask for less;
- ``cut_off``: a JSON value began and is unfinished, but generation *stopped* (EOS or a
  stop string): not a length problem; look at the suite's ``stop`` strings or at what
  the model emits mid-value;
- ``non_standard_number``: JSON except for ``NaN``, ``Infinity`` or ``-Infinity``;
- ``invalid``: a JSON value began and its brackets close, but it is not JSON: a trailing
  comma, a raw tab or newline inside a string, single quotes, unquoted keys, comments,
  mismatched brackets (the decoder's message is the detail); also an object that gives
  one name twice (``{"score": 9, "score": 2}``: parsers disagree on which wins, and
  Python's keeps the last, so a schema check passed whichever value it saw);
- ``prose``: no JSON value ever began (no ``{`` or ``[`` in the output), whatever the
  finish reason: the model answered in words, and more tokens would not help;
- ``empty``: nothing but whitespace.

**NaN and Infinity are rejected.** RFC 8259 has no such numbers (``NaN``, ``Infinity``,
``-Infinity`` are not JSON values), and most parsers outside Python refuse them.
Python's ``json`` module accepts them by default, so this scorer parses with
``parse_constant`` set to refuse them; an output that would parse with them is classed
``non_standard_number`` and fails both strict and lenient compliance.

How the class is found: the whole output is tried as one JSON value, then as one fence.
Otherwise each ``{`` or ``[`` (up to 64, never one inside a span already looked at) is
followed, string-aware, to its matching bracket; an unclosed one that cannot begin JSON
(``see [1`` in prose: not followed by a key, a value or its closing bracket) is prose. The first span that decodes as JSON is
the value found (``prefix_text``/``trailing_text``/``fenced`` by what surrounds it). A
value nested inside a broken one is never taken for the answer (``{"a": NaN, "b":
{"c": 1}}`` is ``non_standard_number``, not ``prefix_text``). With no value found: a
span still open at the end is ``truncated``/``cut_off``; else a broken span is
``non_standard_number`` or ``invalid``; else the output is ``prose``.

The JSON found is then validated with the Draft 2020-12 validator, formats checked, and
the best error message (``jsonschema.exceptions.best_match``) becomes the detail. Strict
compliance (class ``ok`` and valid: the main value) and lenient compliance (JSON from a
lenient class, ``fenced``, ``prefix_text`` or ``trailing_text``, and valid:
``json_schema.lenient``) are both reported: a fine-tune that starts wrapping its JSON in
prose shows as a strict drop with the lenient rate unchanged.

The schema is given inline (``schema: {...}``) or as a path relative to the suite file.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema
import regex

from .. import bounded
from ..errors import HarnessError
from ..stats import wilson
from .base import Item, Score, Scorer
from .normalize import strip_code_fence

CLASSES = ("ok", "fenced", "prefix_text", "trailing_text", "truncated", "cut_off",
           "non_standard_number", "invalid", "prose", "empty")
FOUND = ("ok", "fenced", "prefix_text", "trailing_text")  # classes where a JSON value was found
_MAX_STARTS = 64  # opening brackets tried when looking for JSON inside prose
# Possessive (the ``regex`` package): each part can only take what the next cannot, so
# giving back never helps, and re's backtracking over spaces after a ``` was cubic (7.4 s
# on 2,000 spaces before the JSON).
_OPEN_FENCE = regex.compile(r"```[ \t]*+[A-Za-z0-9_+.-]*+[ \t]*+\r?\n?[ \t]*+\Z")
_CLOSE_FENCE = re.compile(r"\s*```")
_INTEGER = re.compile(r"-?[1-9][0-9]*")
_CLOSERS = {"{": "}", "[": "]"}


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """An object's members, refusing a name given twice: RFC 8259 (4) says names SHOULD be
    unique and parsers disagree on which value wins (Python keeps the last, others the
    first or refuse), so ``{"score": 9, "score": 2}`` means different things to different
    readers; I-JSON (RFC 7493) forbids it."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r} in an object (RFC 8259: names should be unique; "
                             "parsers disagree on which value wins)")
        out[key] = value
    return out


# strict: no NaN/Infinity, no raw control chars, no duplicate keys
_DECODER = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=_unique_keys)
# what Python's json accepts (NaN, Infinity), duplicate keys still refused: only numbers make
# an output non_standard_number
_PYTHON_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _loads(text: str, decoder: json.JSONDecoder = _DECODER) -> Any:
    value, end = decoder.raw_decode(text)
    if text[end:].strip():
        raise ValueError("extra data")
    return value


def _span_end(text: str, start: int) -> tuple[int, bool]:
    """(end, closed) of the bracketed span opening at ``text[start]`` (``{`` or ``[``).

    String-aware (``"`` strings with backslash escapes). ``closed`` is False when the
    text ends inside the span (an unfinished value). A closing bracket that does not
    match ends the span there (closed, and broken).
    """
    stack, in_string, escaped = [], False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in _CLOSERS:
            stack.append(_CLOSERS[ch])
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                return i + 1, True
            if not stack:
                return i + 1, True
    return len(text), False


_VALUE_START = {"{": '"}', "[": '{["-0123456789]'}
_LITERAL = re.compile(r"(?:true|false|null)(?![A-Za-z0-9_])")


def _begins_value(text: str, i: int) -> bool:
    """Whether the unclosed bracket at ``i`` can begin JSON: what follows it (after
    whitespace) is a key, a value or the closing bracket, or nothing (cut right there)."""
    rest = text[i + 1:].lstrip()
    if not rest or rest[0] in _VALUE_START[text[i]]:
        return True
    if text[i] != "[":
        return False
    return bool(_LITERAL.match(rest)) or any(w.startswith(rest) for w in ("true", "false", "null"))


@dataclass
class Classified:
    cls: str
    value: Any = None
    found: bool = False
    why: str = ""  # the decoder's message for invalid / non_standard_number


def open_fence_start(before: str) -> int | None:
    """Where the text before a JSON value ends in an opening code fence (```, a language,
    a line break), or None."""
    m = _OPEN_FENCE.search(before)
    return m.start() if m else None


def _position_class(text: str, i: int, end: int) -> str:
    """ok/fenced/prefix_text/trailing_text for a value found at text[i:end]."""
    before, after, fenced = text[:i], text[end:], False
    opening = open_fence_start(before)  # fence markers around the JSON are not prose
    if opening is not None:
        before, fenced = before[:opening], True
        closing = _CLOSE_FENCE.match(after)
        after = after[closing.end():] if closing else after
    if before.strip():
        return "prefix_text"
    if after.strip() or not fenced:
        return "trailing_text"
    return "fenced"


def classify_output(output: str, finish_reason: str) -> Classified:
    """The class of an output (see the module docstring) and the JSON value found, if any."""
    text = output.strip()
    if not text:
        return Classified("empty")
    try:
        return Classified("ok", _loads(text), True)
    except ValueError as exc:
        whole = exc
    inner, lang = strip_code_fence(text)
    if lang is not None:
        try:
            return Classified("fenced", _loads(inner.strip()), True)
        except ValueError:
            pass
    # A whole output of NaN or of one huge integer holds no bracket, and was called prose.
    try:
        _loads(text, _PYTHON_DECODER)
        return Classified("non_standard_number", why=str(whole))
    except ValueError:
        pass
    digits, limit = len(text.lstrip("-")), sys.get_int_max_str_digits()
    if limit and digits > limit and _INTEGER.fullmatch(text):
        return Classified("invalid", why=f"an integer of {digits:,} digits: JSON allows it, "
                                         f"Python's json reads at most {limit:,}")
    unfinished = False
    broken: list[tuple[str, str]] = []  # (class, why) of spans that close but are not JSON
    i, tried = 0, 0
    while i < len(text) and tried < _MAX_STARTS:
        if text[i] not in _CLOSERS:
            i += 1
            continue
        tried += 1
        end, closed = _span_end(text, i)
        if not closed:
            if _begins_value(text, i):
                unfinished = True
                break  # everything after lies inside this value
            i += 1  # a bracket of prose ("see [1"), not the start of a JSON value
            continue
        span = text[i:end]
        try:
            return Classified(_position_class(text, i, end), _loads(span), True)
        except json.JSONDecodeError as exc:
            why = f"{exc.msg} (character {exc.pos} of the value)"
        except ValueError as exc:  # NaN/Infinity (our parse_constant) or extra data
            why = str(exc)
        try:
            _loads(span, _PYTHON_DECODER)
            broken.append(("non_standard_number", why))
        except ValueError:
            broken.append(("invalid", why))
        i = end  # never look inside a broken span for a nested value
    if unfinished:
        return Classified("truncated" if finish_reason == "length" else "cut_off")
    for cls in ("non_standard_number", "invalid"):
        for kind, why in broken:
            if kind == cls:
                return Classified(cls, why=why)
    return Classified("prose")


def classify(output: str, finish_reason: str) -> tuple[str, Any, bool]:
    """(class, the JSON value found or None, whether a value was found)."""
    c = classify_output(output, finish_reason)
    return c.cls, c.value, c.found


_CLASS_TEXT = {
    "ok": "the output is JSON",
    "fenced": "JSON inside a code fence",
    "prefix_text": "JSON with text before it",
    "trailing_text": "JSON with text after it",
    "truncated": "the JSON value is unfinished: generation hit max_tokens (raise max_tokens, or ask for less)",
    "cut_off": "the JSON value is unfinished although generation stopped (EOS or a stop string), "
               "not at max_tokens: check the suite's stop strings",
    "non_standard_number": "NaN or Infinity is not JSON (RFC 8259), though Python's json accepts it",
    "invalid": "not JSON",
    "prose": "no JSON value began (no { or [): the model answered in prose",
    "empty": "the output is empty",
}


class JsonSchema(Scorer):
    name = "json_schema"
    version = "3"  # 2: classes cut_off, non_standard_number, prose, empty; 3: duplicate keys are invalid
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["schema"],
        "properties": {
            "schema": {"type": ["object", "boolean", "string"],
                       "description": "a JSON Schema, or a path to one relative to the suite file"},
        },
    }

    # every class share but ``class.ok`` is lower-is-better
    lower_is_better = frozenset(f"class.{c}" for c in CLASSES if c != "ok")
    metric_keys = frozenset({"lenient", "parsed", *(f"class.{c}" for c in CLASSES)})
    unbounded = frozenset()  # compliance and class shares

    def check(self, path, line, field, cases=()) -> None:
        where = f"{field}.schema"
        spec = self.options["schema"]
        if isinstance(spec, str):
            file = self._schema_file
            suite_dir = (self.suite_dir or Path(".")).resolve()
            if not file.is_file():
                raise HarnessError(f"schema file {spec!r} not found", path=path, line=line,
                                   field=where, hint="the path is relative to the suite file")
            if not file.resolve().is_relative_to(suite_dir):
                raise HarnessError(f"schema file {spec!r} is outside the suite's folder", path=path,
                                   line=line, field=where, hint="put the schema beside the suite file")
            try:
                bounded.loads(file.read_text(encoding="utf-8"), what=str(file))
            except json.JSONDecodeError as exc:
                raise HarnessError(f"invalid JSON: {exc.msg}", path=file, line=exc.lineno,
                                   hint="the schema file must be one JSON document") from None
            except (UnicodeDecodeError, bounded.TooMuchWork) as exc:
                raise HarnessError(f"not a usable schema file: {exc}", path=file,
                                   hint="the schema file must be one UTF-8 JSON document") from None
            path, line, where = file, None, None
        try:
            jsonschema.Draft202012Validator.check_schema(self.schema)
        except jsonschema.SchemaError as exc:
            at = "/".join(str(p) for p in exc.absolute_path)
            raise HarnessError(f"not a valid Draft 2020-12 schema: {exc.message}"
                               + (f" (at {at})" if at else ""), path=path, line=line,
                               field=where, hint="fix the schema") from None
        except RecursionError:
            raise HarnessError("the schema is nested too deeply", path=path, line=line, field=where) from None
        from .schema_sandbox import check_refs

        check_refs(self.schema, self._schema_file if isinstance(spec, str) else None,
                   self.suite_dir or Path("."), path=path, line=line, field=where)

    def input_files(self) -> list[Path]:
        from .schema_sandbox import check_refs

        own = self._schema_file if isinstance(self.options["schema"], str) else None
        reached = check_refs(self.schema, own, self.suite_dir or Path("."), path=own or Path("."), line=None,
                             field="schema")
        return ([own] if own is not None else []) + reached

    @property
    def _schema_file(self) -> Path:
        return (self.suite_dir or Path(".")) / self.options["schema"]

    @cached_property
    def schema(self) -> Any:
        spec = self.options["schema"]
        if isinstance(spec, str):
            return json.loads(self._schema_file.read_text(encoding="utf-8"))
        return spec

    @cached_property
    def validator(self) -> jsonschema.Validator:
        """Draft 2020-12, with $refs confined to the suite's folder and time-limited regexes."""
        from .schema_sandbox import make_validator

        file = self._schema_file if isinstance(self.options["schema"], str) else None
        return make_validator(self.schema, file, self.suite_dir or Path("."))

    def score(self, item: Item) -> Score:
        bounded.check_json_text(item.output, "the output")  # too deep/large: 0 with the reason
        c = classify_output(item.output, item.finish_reason)
        cls, value = c.cls, c.value
        extra: dict[str, Any] = {"json_class": cls}
        if not c.found:
            reason = _CLASS_TEXT[cls] + (f" ({c.why})" if c.why else "")
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
                                               "n": n, "kind": "proportion"}
        return out
