"""Keyword scoring: does the answer name each required concept, and no forbidden one?

Each case lists its ``concepts``; a concept is a list of alternatives (synonyms, or
``{"regex": ...}``), and it is matched when any alternative occurs on word boundaries.
Both sides are normalised (NFKC, casefold, punctuation to space, collapsed spaces), so
``Port 8443.`` matches ``port 8443`` and ``cat`` does not match inside ``concatenate``.
Regexes are searched in the NFKC-casefolded output (punctuation kept, case ignored),
wrapped in word boundaries.

A case record looks like::

    {"question": "...", "concepts": [["gateway", "api gateway"], ["8443"]],
     "forbidden": ["8080"]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import regex

from .. import bounded
from ..errors import HarnessError
from .base import Item, Score, Scorer
from .normalize import contains_phrase, fold, normalize_text


class ConceptError(ValueError):
    """A malformed concept list: which element, what is wrong, how to fix it."""

    def __init__(self, field: str, message: str, hint: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.hint = field, message, hint


@dataclass(frozen=True)
class Alternative:
    label: str  # as written in the case, for details
    phrase: str | None = None  # normalised phrase
    regex: Any = None  # a compiled ``regex`` pattern, searched with a time limit

    def found_in(self, normalized: str, folded: str) -> bool:
        if self.regex is not None:
            return bounded.search(self.regex, folded) is not None
        return contains_phrase(normalized, self.phrase or "")


def _alternative(value: Any, where: str) -> Alternative:
    if isinstance(value, str):
        phrase = normalize_text(value)
        if not phrase:
            raise ConceptError(where, f"{value!r} has no letters or digits to match",
                               "use a word, or {\"regex\": ...} to match punctuation")
        return Alternative(label=value, phrase=phrase)
    if isinstance(value, dict) and set(value) == {"regex"} and isinstance(value["regex"], str):
        try:
            pattern = bounded.compile_regex(rf"(?<!\w)(?:{value['regex']})(?!\w)", regex.IGNORECASE)
        except regex.error as exc:
            raise ConceptError(f"{where}.regex", f"invalid regular expression: {exc}",
                               "fix the pattern (Python `re` syntax)") from None
        return Alternative(label=f"/{value['regex']}/", regex=pattern)
    raise ConceptError(where, f"expected a string or {{\"regex\": \"...\"}}, got {value!r}",
                       "write each alternative as a phrase or a {regex: ...} mapping")


def parse_phrases(value: Any, where: str) -> list[Alternative]:
    """A flat list of alternatives (the ``forbidden`` phrases)."""
    if not isinstance(value, list):
        raise ConceptError(where, f"expected a list of phrases, got {type(value).__name__}",
                           "write forbidden phrases as [\"phrase\", ...]")
    return [_alternative(v, f"{where}[{i}]") for i, v in enumerate(value)]


def parse_concepts(value: Any, where: str) -> list[list[Alternative]]:
    """A ``concepts`` field: a list of concepts, each one alternative or a list of them.

    Raises ConceptError naming the element at fault.
    """
    if not isinstance(value, list):
        raise ConceptError(where, f"expected a list of concepts, got {type(value).__name__}",
                           "write concepts as [[\"synonym\", \"other synonym\"], ...]")
    concepts = []
    for i, concept in enumerate(value):
        alts = concept if isinstance(concept, list) else [concept]
        if not alts:
            raise ConceptError(f"{where}[{i}]", "a concept needs at least one alternative",
                               "remove the empty list or add a synonym")
        concepts.append([_alternative(a, f"{where}[{i}]" + (f"[{j}]" if isinstance(concept, list) else ""))
                         for j, a in enumerate(alts)])
    return concepts


class Keywords(Scorer):
    name = "keywords"
    version = "1"
    lower_is_better = frozenset({"forbidden"})
    metric_keys = frozenset({"all", "any", "fraction", "forbidden"})
    unbounded = frozenset()  # a pass rate and shares: `fraction` is half credit at 2 concepts
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "mode": {"enum": ["all", "any", "fraction"], "default": "all",
                     "description": "all concepts, any concept, or a fraction >= threshold"},
            "threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            "concepts_field": {"type": "string", "minLength": 1, "default": "concepts"},
            "forbidden_field": {"type": "string", "minLength": 1, "default": "forbidden"},
            "forbidden": {"type": "array", "items": {"type": ["string", "object"]},
                          "description": "forbidden phrases for every case of the suite"},
        },
    }

    def check(self, path, line, field, cases=()) -> None:
        """The options, then every case's concepts: a bad one fails the load, with its line."""
        try:
            parse_phrases(self.options.get("forbidden", []), "forbidden")
        except ConceptError as exc:
            raise HarnessError(exc.message, path=path, line=line, field=f"{field}.{exc.field}",
                               hint=exc.hint) from None
        for case in cases:
            try:
                self._parse_record(case.record)
            except ConceptError as exc:
                raise HarnessError(exc.message, path=case.source, line=case.source_line, field=exc.field,
                                   hint=exc.hint) from None

    def _parse_record(self, record: dict) -> tuple[list[list[Alternative]], list[Alternative]]:
        cf = self.options.get("concepts_field", "concepts")
        ff = self.options.get("forbidden_field", "forbidden")
        if cf not in record:
            raise ConceptError(cf, f"the case has no `{cf}` field",
                               f"give every case a `{cf}` list, or set concepts_field")
        return (parse_concepts(record[cf], cf),
                parse_phrases(record.get(ff) or [], ff)
                + parse_phrases(self.options.get("forbidden", []), "forbidden"))

    def _case_lists(self, item: Item) -> tuple[list[list[Alternative]], list[Alternative]]:
        try:
            return self._parse_record(item.case.record)
        except ConceptError as exc:  # a case built in code, not loaded from a suite file
            raise HarnessError(f"case {item.case.id!r} (line {item.case.source_line}): {exc.message}",
                               field=exc.field, hint=exc.hint) from None

    def score_all(self, items: list[Item], model: Any = None) -> list[Score]:
        parsed = [self._case_lists(item) for item in items]  # a bad case fails before any score
        return [self.bounded(lambda it, p=p: self._score(it, *p), item) for item, p in zip(items, parsed)]

    def score(self, item: Item) -> Score:
        return self._score(item, *self._case_lists(item))

    def _score(self, item: Item, concepts: list[list[Alternative]],
               forbidden: list[Alternative]) -> Score:
        normalized, folded = normalize_text(item.output), fold(item.output)
        matched, missing = [], []
        for alts in concepts:
            hit = next((a for a in alts if a.found_in(normalized, folded)), None)
            (matched if hit else missing).append(hit.label if hit else " | ".join(a.label for a in alts))
        hits = [a.label for a in forbidden if a.found_in(normalized, folded)]
        n = len(concepts)
        fraction = len(matched) / n if n else 1.0
        all_ok, any_ok = len(matched) == n, bool(matched) or n == 0
        mode = self.options.get("mode", "all")
        threshold = self.options.get("threshold", 0.5)
        if mode == "all":
            value, ok = float(all_ok), all_ok
        elif mode == "any":
            value, ok = float(any_ok), any_ok
        else:
            value, ok = fraction, fraction >= threshold
        if hits:
            value, ok = 0.0, False

        parts = [f"matched {len(matched)}/{n} concepts"]
        if missing:
            parts.append("missing: " + "; ".join(missing))
        if hits:
            parts.append("forbidden found: " + "; ".join(hits))
        elif not ok and mode == "fraction":
            parts.append(f"below threshold {threshold:g}")
        return Score(
            value=value, passed=ok, detail=", ".join(parts),
            metrics={"all": float(all_ok), "any": float(any_ok), "fraction": fraction,
                     "forbidden": float(bool(hits))},
            extra={"matched": matched, "missing": missing, "forbidden_found": hits},
        )
