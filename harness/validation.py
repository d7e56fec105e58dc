"""Every JSON document the harness writes is checked against its schema first.

``results.json`` (``schemas/results.schema.json``) and baseline files
(``schemas/baseline.schema.json``) are contracts other tools read. A document that
fails its own schema is a bug in the harness, not bad input: ``check_output`` raises
``OutputSchemaError`` before anything is written, and the CLI reports it as an internal
error (exit 3) with the validation message. A baseline the user hands in that fails the
schema is bad input (``HarnessError``, exit 2).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import jsonschema

from .errors import HarnessError

RESULTS_SCHEMA = "results.schema.json"
BASELINE_SCHEMA = "baseline.schema.json"
# results.json with its items left unchecked: `harness history` reads many runs' metrics and
# no item, and checking every item of every run is most of the time (1.5 s for 15,000 items).
RESULTS_SUMMARY_SCHEMA = "results-summary"


class OutputSchemaError(RuntimeError):
    """The harness was about to write a document that fails its own schema (exit 3)."""


def load_schema(name: str) -> dict:
    import json

    if name == RESULTS_SUMMARY_SCHEMA:
        schema = load_schema(RESULTS_SCHEMA)
        schema["$id"] = schema["$id"].replace(RESULTS_SCHEMA, "results-summary.schema.json")
        schema["$defs"]["model_result"]["properties"]["items"] = {"type": "array"}
        return schema
    return json.loads(resources.files("harness.schemas").joinpath(name).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator for one of our schemas; they may refer to each other by file name."""
    from referencing import Registry, Resource

    schemas = {n: load_schema(n) for n in (RESULTS_SCHEMA, BASELINE_SCHEMA)}
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    schema = schemas.get(name) or load_schema(name)
    # Our own schemas are checked against the meta-schema by the tests, not on every run
    # (~25 ms of each `harness eval`).
    return jsonschema.Draft202012Validator(schema, registry=registry)


def first_error(doc: dict, schema_name: str) -> str | None:
    """The most relevant validation message with its JSON path ("suites/0/models/..."), or None."""
    errors = list(_validator(schema_name).iter_errors(doc))
    if not errors:
        return None
    err = jsonschema.exceptions.best_match(errors)
    where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"at {where}: {err.message}{more}"


def check_output(doc: dict, schema_name: str, path: str | Path) -> None:
    """Raise OutputSchemaError unless ``doc`` (about to be written to ``path``) fits its schema."""
    message = first_error(doc, schema_name)
    if message is not None:
        raise OutputSchemaError(f"refusing to write {path}: it fails {schema_name} {message}")


def check_input(doc: dict, schema_name: str, path: str | Path, what: str,
                hint: str = "write it with `harness baseline approve RUN_DIR` from a run of this harness version"
                ) -> None:
    """Raise HarnessError unless a file the user gave (a baseline, a run) fits its schema."""
    message = first_error(doc, schema_name)
    if message is not None:
        raise HarnessError(f"not a valid {what}: {message}", path=path, hint=hint)


__all__ = ["RESULTS_SCHEMA", "RESULTS_SUMMARY_SCHEMA", "BASELINE_SCHEMA", "OutputSchemaError", "check_output", "check_input", "first_error"]
