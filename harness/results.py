"""The shape of ``results.json``, built in one place.

``harness eval`` (local engine), ``harness eval --endpoint`` and ``harness score`` all make
their results document with these constructors, so the three cannot drift apart; the
document is checked against ``schemas/results.schema.json`` when it is written
(``harness.validation``), and a baseline is a summary of it (``harness.baseline``).
The TypedDicts name the fields code reads; the schema is the full contract.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from . import __version__

if TYPE_CHECKING:  # typing only
    from .case import Case
    from .generation import Completion
    from .scorers import Scorer
    from .suite import Suite


class ModelInfo(TypedDict, total=False):
    """One model of the run: the base, an adapter on it, or stored/served outputs."""

    path: str | None
    adapter_path: str | None
    fingerprint: str
    # how fingerprint was computed: harness.models.MODEL_FINGERPRINT_RECIPE (a file hash), or
    # an endpoint's identity, "endpoint-N[+files-M]" (harness.backends.openai.endpoint_fingerprint_recipe)
    fingerprint_recipe: int | str
    weights_fingerprint: str
    base_fingerprint: str | None
    trained_on: str | None
    training_log: str | None
    completions: str
    endpoint: str


class ItemRecord(TypedDict, total=False):
    id: str
    category: str | None
    cluster: Any
    prompt: str
    target: str | None
    output: str
    finish_reason: str
    prompt_tokens: int | None
    output_tokens: int | None
    ttft_s: float | None
    decode_tps: float | None
    cached: bool
    reasoning: dict[str, Any]  # {"chars", "unfinished"}: a reasoning block the scorers did not see
    scores: dict[str, dict]


class SuiteResult(TypedDict, total=False):
    name: str
    description: str
    path: str
    fingerprint: str
    data_fingerprint: str
    fingerprint_recipe: int  # how the two hashes were computed (harness.suite.FINGERPRINT_RECIPE)
    earlier_fingerprints: dict[str, dict[str, str]]  # the two under each earlier recipe
    template: str
    scorers: dict[str, dict]
    generation: dict[str, Any]
    models: dict[str, dict]
    gates: list[dict]
    warnings: list[str]
    comparisons: dict


class Results(TypedDict, total=False):
    harness_version: str
    verdict: str
    created: str
    command: list[str]
    environment: dict[str, Any]
    models: dict[str, ModelInfo]
    baseline: dict | None
    warnings: list[str]
    suites: list[SuiteResult]


def command_line(argv: list[str]) -> list[str]:
    """The command as results.json and the run marker record it: an argument that is not
    UTF-8 text (``--benchmark-json b$'\\xff'.json``: a lone surrogate in Python) is written with
    its bytes escaped (``b\\xff.json``); raw, it made writing the run's files an internal error
    (exit 3) after the whole run."""
    return [str(a).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for a in argv]


def new_results(suites: list[SuiteResult], models: dict[str, ModelInfo], environment: dict[str, Any],
                command: list[str] | None = None, warnings: list[str] | None = None) -> Results:
    """A run's document before gates: verdict and time are set by ``runner.finish``."""
    return Results(harness_version=__version__, verdict="pass", created="",
                   command=command_line(list(command or sys.argv)), environment=environment, models=models,
                   baseline=None, warnings=list(warnings or []), suites=suites)


def suite_entry(suite: Suite, scorers: list[Scorer]) -> SuiteResult:
    """One suite's entry: what identifies it, before any model is scored on it."""
    return SuiteResult(
        name=suite.name, description=suite.description, path=str(suite.path),
        fingerprint=suite.fingerprint, data_fingerprint=suite.data_fingerprint,
        fingerprint_recipe=suite.fingerprint_recipe, earlier_fingerprints=suite.earlier_fingerprints,
        template=suite.template,
        scorers={s.name: {"version": s.version, "options": s.options, "skipped": None,
                          **({"files": files} if (files := scorer_files(s, suite.dir)) else {})} for s in scorers},
        generation={k: getattr(suite.generation, k) for k in suite.generation.__dataclass_fields__},
        models={}, gates=[], warnings=[],
    )


def scorer_files(scorer: Scorer, suite_dir: Path) -> dict[str, str]:
    """``{path relative to the suite's folder: digest}`` of the files a scorer reads besides the
    suite (``Scorer.input_files``): the suite's hashes cover the suite file and its data only, so a
    schema file edited after a baseline was approved went unnoticed and its scores were gated
    against the approved ones, computed under the old schema."""
    from .files import file_digest

    out = {}
    for file in scorer.input_files():
        try:
            name = Path(file).resolve().relative_to(Path(suite_dir).resolve()).as_posix()
        except ValueError:
            name = str(file)
        out[name] = "sha256:" + file_digest(file)[:32]
    return dict(sorted(out.items()))


def item_record(case: Case, completion: Completion | dict, answer: Any = None) -> ItemRecord:
    """One item of one model: the case, what the model answered, and (filled in by the
    scorers) its scores. A reasoning block before the answer (``answer``, a
    ``harness.reasoning.Answer`` of this completion) is recorded under ``reasoning``."""
    c = completion if isinstance(completion, dict) else completion.to_json()
    record = ItemRecord(
        id=case.id, category=case.category, prompt=case.prompt, target=case.target,
        output=c["output"], finish_reason=c["finish_reason"],
        prompt_tokens=c.get("prompt_tokens"), output_tokens=c.get("output_tokens"),
        ttft_s=c.get("ttft_s"), decode_tps=c.get("decode_tps"),
        cached=bool(c.get("cached", False)), scores={},
    )
    if getattr(case, "cluster", None) is not None:
        record["cluster"] = case.cluster
    if answer is not None and answer.reasoning_chars:
        record["reasoning"] = {"chars": answer.reasoning_chars, "unfinished": answer.unfinished}
    return record


def load_results(path: str | Path, what: str = "results.json", items: bool = True) -> Results:
    """Read a results.json written by an earlier run (or edited in a pull request) and check
    it against the schema, so a wrong shape anywhere is one error naming the file and the
    field, not a crash in whatever reads it first. ``items=False`` leaves the items
    unchecked (for readers of metrics only); with items, an id twice in one model is
    refused too (pairing by id would keep one of them silently)."""
    from .files import read_json

    return check_results(read_json(path, what=what, finite=True), path, what, items)


def is_baseline(doc: object) -> bool:
    """Whether a JSON document read where a run is expected is a baseline file instead."""
    return isinstance(doc, dict) and str(doc.get("format") or "").startswith("mlx-harness-baseline")


def check_results(data: dict, path: str | Path, what: str = "results.json", items: bool = True) -> Results:
    """``load_results`` for a document already read (with ``read_json(..., finite=True)``)."""
    from .errors import HarnessError
    from .validation import RESULTS_SCHEMA, RESULTS_SUMMARY_SCHEMA, check_input

    if is_baseline(data):
        # the schema would name the first field a baseline lacks ("suites/0/gates/1: 'suite' ...")
        raise HarnessError(f"this is a baseline file, not a run's results.json ({what} expected)", path=path,
                           field="format", hint="pass a run folder written by harness eval or harness score; "
                                                "harness compare and harness eval --baseline read baseline files")

    check_input(data, RESULTS_SCHEMA if items else RESULTS_SUMMARY_SCHEMA, path, what,
                hint="pass the results.json of a harness eval or score run, unedited")
    if items:
        for i, suite in enumerate(data["suites"]):
            for name, model in suite["models"].items():
                duplicate_id(model["items"], path, f"suites/{i}/models/{name}/items")
    return data  # type: ignore[return-value]


def duplicate_id(items: list[dict], path: str | Path, field: str) -> None:
    """HarnessError naming the first item id that appears twice in ``items``."""
    from .errors import HarnessError

    seen: set[str] = set()
    for item in items:
        if item["id"] in seen:
            raise HarnessError(f"item id {item['id']!r} appears twice", path=path, field=field,
                               hint="each item id once per model")
        seen.add(item["id"])


__all__ = ["Results", "SuiteResult", "ModelInfo", "ItemRecord", "new_results", "suite_entry", "item_record",
           "load_results", "check_results", "duplicate_id"]
