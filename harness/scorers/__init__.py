"""Scorer registry: name in a suite's `scorers:` list -> scorer class."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import jsonschema

from ..case import Case
from ..errors import HarnessError
from .base import Item, Score, Scorer
from .exact_match import ExactMatch
from .json_schema import JsonSchema
from .keywords import Keywords
from .latency import Latency
from .repetition import Repetition
from .sql_exact import SqlExact
from .sql_execution import SqlExecution
from .sql_logical_form import SqlLogicalForm
from .token_accuracy import TokenAccuracy

if TYPE_CHECKING:  # typing only: suites import scorers, never the reverse
    from ..suite import ScorerSpec

REGISTRY: dict[str, type[Scorer]] = {
    ExactMatch.name: ExactMatch,
    Keywords.name: Keywords,
    SqlExact.name: SqlExact,
    SqlExecution.name: SqlExecution,
    SqlLogicalForm.name: SqlLogicalForm,
    JsonSchema.name: JsonSchema,
    Repetition.name: Repetition,
    Latency.name: Latency,
    TokenAccuracy.name: TokenAccuracy,
}

__all__ = ["REGISTRY", "Item", "Score", "Scorer", "make_scorer", "validate_scorer_options"]


def scorer_class(name: str, *, path: Path | None = None, line: int | None = None,
                 field: str | None = None) -> type[Scorer]:
    if name in REGISTRY:
        return REGISTRY[name]
    from .plugins import load_plugin, plugin_names  # packages' `mlx_harness.scorers` entry points

    try:
        cls = load_plugin(name)
    except HarnessError as exc:
        raise HarnessError(f"{exc.message} [{exc.field}]", path=path, line=line, field=field,
                           hint=exc.hint) from None
    if cls is None:
        raise HarnessError(f"unknown scorer {name!r}", path=path, line=line, field=field,
                           hint=f"known scorers: {', '.join(sorted(REGISTRY) + plugin_names())}")
    return cls


def validate_scorer_options(spec: "ScorerSpec", path: Path, line: int | None, cases: Sequence[Case] = (),
                            suite_dir: Path | None = None) -> None:
    """Options against the scorer's schema, then its deeper checks of the options and cases."""
    cls = scorer_class(spec.name, path=path, line=line, field=spec.field)
    errors = list(jsonschema.Draft202012Validator(cls.options_schema).iter_errors(spec.options))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        where = ".".join(str(p) for p in err.absolute_path)
        raise HarnessError(err.message, path=path, line=line,
                           field=spec.field + (f".{where}" if where else ""))
    cls(spec.options, suite_dir).check(path, line, spec.field, cases)


def make_scorer(spec: "ScorerSpec", suite_dir: Path | None) -> Scorer:
    return scorer_class(spec.name)(spec.options, suite_dir)
