"""Approved baselines: a small, committable summary of a passing run to gate against.

A baseline file is results.json slimmed down (format ``mlx-harness-baseline/1``):

- top level: ``format``, ``created`` (approval time), ``approved_from`` (the run
  folder), ``run_created``, ``harness_version``, ``environment``, ``command``,
  ``verdict``, ``models`` (name -> fingerprint, its ``fingerprint_recipe``, base_fingerprint, paths);
- ``suites``: name, description, ``fingerprint`` (suite content), ``data_fingerprint``,
  ``fingerprint_recipe`` (how those two were computed; absent in older files),
  ``scorers`` (name -> version, options, ``files``: digests of the files it reads), ``generation``, ``template``, the gates as
  they stood (model, metric, kind, passed), and per model its ``fingerprint``,
  ``metrics``, ``categories`` and ``items``: ``{id, category, output_sha256, values}``
  where ``values`` are the item's series (see ``harness.compare``: 1/0 per pass/fail
  scorer, per-item scorer metrics, generation timings). That is enough to redo every
  paired comparison item by item. Each model also keeps ``outputs_z``: its outputs as
  ``{id: output}`` JSON, zlib-compressed, base64 (``pack_outputs``), so a report can
  show what the approved model said next to what the candidate says now.

What must match before a run is compared with a baseline, and why:

- refused (unless ``--allow-fingerprint-mismatch``):
  suite data hash (different items: pairs would not be the same questions),
  suite content hash (prompt, target, template, generation settings or scorer
  options changed, so outputs and scores mean something else),
  scorer versions (a scorer's definition changed), the files a scorer reads
  besides the suite (``files``: a JSON Schema and what its ``$ref``s reach; an edited
  schema is a changed definition; compared where both sides recorded them),
  base model fingerprint (weights, tokenizer and chat template: a different base
  changes every output, and adapters must sit on the base they were trained on);
- reported as warnings: harness, mlx and mlx-lm versions (a release upgrade should
  not block the gate, but numerics and generation may shift: look at the deltas);
- not compared: the adapter's own hash. A new adapter is what a baseline gate is
  for; the report shows both hashes.

A hash means something only beside the recipe that computed it, and a harness upgrade
may change a recipe (0.1.0 at cd660bb hashed the suite file's bytes; later versions hash
the parsed suite without gates, prose and ``cluster:``). So the suite hashes carry
``fingerprint_recipe`` (``harness.suite.FINGERPRINT_RECIPE``), the base model's its own
(``harness.models.MODEL_FINGERPRINT_RECIPE``), and a run also computes its suite hashes
under every earlier recipe. A baseline of an older recipe is compared under that recipe,
re-derived from the suite file as it is now: the same suite still gates, an edited one
still "differs". A baseline without a recipe (approved before they were recorded) is
compared under each recipe there has been; one that matches none is refused as differing,
with a note that an older harness may have hashed comments and gates too, and the command
that re-approves the last release with this harness. Refused rather than passed: the
suite may really have changed, and a gate against items that are not the approved ones
could pass a regression. A recipe this harness cannot recompute (a newer harness's) is
refused as exactly that, never as an edited suite or another base model.
"""

from __future__ import annotations

import base64
import json
import shlex
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .atomic import write_json
from .compare import item_values, output_digest
from .errors import HarnessError
from .files import read_json, require_utf8_name
from .models import ENDPOINT_FINGERPRINT_PREFIX, recorded_fingerprint_recipe
from .results import duplicate_id, load_results
from .run_marker import check_finished
from .validation import BASELINE_SCHEMA, check_input, check_output

FORMAT = "mlx-harness-baseline/1"
DEFAULT_BASELINE = Path("reports/baselines/baseline.json")

__all__ = ["FORMAT", "DEFAULT_BASELINE", "load_baseline", "baseline_from_json", "baseline_suite", "check_baseline",
           "approve", "baseline_coverage", "baseline_unused", "baseline_notes",
           "summarize_run", "fingerprint_differences", "pack_outputs", "unpack_outputs",
           "baseline_outputs"]
MAX_WORSE_KEPT = 20
MAX_UNPACKED = 256 << 20  # bytes of a baseline's packed outputs once inflated


def pack_outputs(outputs: dict[str, str]) -> str:
    """``{id: output}`` as zlib-compressed JSON in base64 (how a baseline keeps its outputs)."""
    raw = json.dumps(outputs, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def unpack_outputs(blob: str | None) -> dict[str, str]:
    """Inverse of ``pack_outputs``; {} for a missing or unreadable blob (older baselines)."""
    if not blob or not isinstance(blob, str):
        return {}
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(blob, validate=True), MAX_UNPACKED)
        if inflater.unconsumed_tail:  # a zip bomb, or outputs beyond any real suite's
            return {}
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, zlib.error, UnicodeDecodeError, RecursionError):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def baseline_outputs(baseline_suite: dict | None, suite_result: dict) -> dict:
    """What the report needs of the baseline for one suite: per candidate model, the items
    that flipped against it (any pass/fail metric) and, for each failed vs-baseline gate
    on a non-pass/fail metric, the items that got worse the most: ``{model: {id:
    {output, output_sha256, passed: {scorer: bool}, values}}}`` (``output`` None when the
    baseline was approved without outputs)."""
    if not baseline_suite:
        return {}
    out: dict[str, dict] = {}
    comparisons = suite_result.get("comparisons") or {}
    failed = [g for g in suite_result.get("gates") or [] if not g.get("passed")
              and str(g.get("kind", "")).endswith("vs_baseline")]
    for model, ref in (baseline_suite.get("models") or {}).items():
        if model not in (suite_result.get("models") or {}):
            continue
        ids: list[str] = []
        for comp in (comparisons.get(model) or {}).values():
            d = (comp or {}).get("vs_baseline") or {}
            for i in list(d.get("flipped_down") or []) + list(d.get("flipped_up") or []):
                if str(i) not in ids:
                    ids.append(str(i))
        ref_items = {str(i["id"]): i for i in ref.get("items") or []}
        cand_items = {str(i["id"]): i for i in (suite_result["models"][model].get("items") or [])}
        for g in failed:
            details = g.get("details") or {}
            if g.get("model") != model or details.get("flipped_down"):
                continue
            metric, hib = str(g.get("metric")), details.get("higher_is_better", True)
            category = details.get("category")
            if category is not None and metric.endswith(f"[{category}]"):  # a per-category gate
                metric = metric[: -len(category) - 2]
            worse = []
            for i, item in cand_items.items():
                if category is not None and item.get("category") != category:
                    continue
                a = ((ref_items.get(i) or {}).get("values") or {}).get(metric)
                b = item_values(item).get(metric)
                if a is not None and b is not None and ((b < a) if hib else (b > a)):
                    worse.append((-abs(b - a), i))
            ids += [i for _, i in sorted(worse)[:MAX_WORSE_KEPT] if i not in ids]
        if not ids:
            continue
        texts = unpack_outputs(ref.get("outputs_z"))
        pass_fail = {k for k, info in (ref.get("metrics") or {}).items()
                     if "." not in k and (info or {}).get("kind") == "proportion"}
        entry = {}
        for i in ids:
            item = ref_items.get(i)
            if item is None:
                continue
            values = item.get("values") or {}
            entry[i] = {"output": texts.get(i), "output_sha256": item.get("output_sha256"),
                        "passed": {k: v == 1.0 for k, v in values.items() if k in pass_fail},
                        "values": values}
        out[model] = entry
    return out


def load_baseline(path: str | Path) -> dict:
    """Read and check a baseline file; HarnessError naming the file and field when bad."""
    require_utf8_name(path, "baseline file", field="--baseline")  # the run's results name it
    return baseline_from_json(read_json(path, what="baseline file", finite=True), path)


def baseline_from_json(data: dict, path: str | Path) -> dict:
    """``load_baseline``'s checks of a baseline file already read (``runs.load_run`` reads a
    file before it knows it is one; it read it twice)."""
    fmt = data.get("format")
    if fmt != FORMAT:
        hint = ("this looks like a run's results.json; approve it first: harness baseline approve RUN_DIR"
                if "suites" in data and fmt is None else f"expected format {FORMAT!r}")
        if isinstance(fmt, str) and fmt.startswith(FORMAT.split("/")[0] + "/"):  # another version's form
            raise HarnessError(f"baseline format {fmt!r} is not one this mlx-harness reads ({FORMAT!r})",
                               path=path, field="format",
                               hint="approved by another mlx-harness version: install that one, or approve "
                                    "a new baseline with this one (harness baseline approve RUN_DIR)")
        raise HarnessError(f"not a baseline file (format {fmt!r})", path=path, field="format", hint=hint)
    check_input(data, BASELINE_SCHEMA, path, "baseline file")
    suites = data.get("suites")
    if not isinstance(suites, list):
        raise HarnessError("`suites` must be a list", path=path, field="suites")
    for i, suite in enumerate(suites):
        if not isinstance(suite, dict) or not isinstance(suite.get("name"), str):
            raise HarnessError("each suite needs a `name`", path=path, field=f"suites[{i}]")
        models = suite.get("models")
        if not isinstance(models, dict):
            raise HarnessError("`models` must be an object", path=path, field=f"suites[{i}].models")
        for name, model in models.items():
            if not isinstance(model, dict) or not isinstance(model.get("metrics"), dict) \
                    or not isinstance(model.get("items"), list):
                raise HarnessError("a model needs `metrics` and `items`", path=path,
                                   field=f"suites[{i}].models.{name}")
            duplicate_id(model["items"], path, f"suites[{i}].models.{name}.items")
    data["_path"] = str(path)
    return data


def baseline_suite(baseline: dict | None, suite_name: str) -> dict | None:
    """The named suite of a baseline, or None."""
    for suite in (baseline or {}).get("suites", []):
        if suite.get("name") == suite_name:
            return suite
    return None


def baseline_coverage(baseline: dict, suite_result: dict) -> list[tuple[str, str]]:
    """(candidate, reason) for each candidate of this suite the baseline cannot gate.

    A suite missing from the baseline, or an adapter missing from the baseline's suite
    (a rename, or a new adapter), would otherwise just skip the baseline gates; items of
    the run the baseline lacks (approved from a run with ``--ids`` or ``--limit``) would be
    left out of them.
    """
    name = suite_result.get("name")
    models = list(suite_result.get("models") or {})
    candidates = [m for m in models if m != "base"] or [m for m in models if m == "base"]
    where = baseline.get("_path") or "the baseline"
    ref = baseline_suite(baseline, name)
    if ref is None:
        have = ", ".join(sorted(s.get("name", "?") for s in baseline.get("suites", []))) or "none"
        return [(c, f"baseline {where} has no suite {name!r} (it has: {have}); {c} on {name} is not "
                    f"gated against the baseline") for c in candidates]
    have = sorted(ref.get("models") or {})
    out = [(c, _no_model(where, c, [str(name)], ", ".join(have) or "none")) for c in candidates if c not in have]
    for c in candidates:  # approved from part of the suite (--ids, --limit, --only-failing)
        if c not in have:
            continue
        approved = {str(i.get("id")) for i in (ref["models"][c] or {}).get("items") or []}
        ids = [str(i.get("id")) for i in (suite_result["models"][c] or {}).get("items") or []]
        missing = [i for i in ids if i not in approved]
        if missing:
            shown = ", ".join(repr(i) for i in missing[:3]) + (", ..." if len(missing) > 3 else "")
            out.append((c, f"baseline {where} has {len(ids) - len(missing)} of the {len(ids)} items of {c} on "
                           f"{name!r} (approved from part of the suite: --ids, --limit?); {len(missing)} "
                           f"({shown}) are not gated against the baseline"))
    return out


def _no_model(where: str, candidate: str, suites: list[str], have: str) -> str:
    """The 'renamed?' line for a candidate the baseline lacks on one suite or several."""
    on = f"suite {suites[0]!r}" if len(suites) == 1 else f"suites {', '.join(map(repr, suites))}"
    return (f"baseline {where} has no model {candidate!r} in {on} (it has: {have}); renamed? {candidate} is not "
            f"gated against the baseline")


def baseline_unused(baseline: dict, results: dict) -> list[str]:
    """What the baseline approved that this run does not evaluate: its suites the run lacks,
    and its adapters the run has on none of the suites they were approved on.

    The reverse of ``baseline_coverage``: a suite file deleted or renamed in a pull request, or
    an adapter dropped from the command line, left its approved scores gating nothing, and the
    run said PASS with no word of it. A warning, not a failure, even with ``--strict-baseline``:
    running part of what a baseline holds (one suite, a CI matrix job per suite) is ordinary.
    """
    where = baseline.get("_path") or "the baseline"
    run_suites = {s.get("name"): s for s in results.get("suites") or []}
    out = []
    missing = [s.get("name") for s in baseline.get("suites") or [] if s.get("name") not in run_suites]
    if missing:
        out.append(f"baseline {where} approved suite(s) {', '.join(map(repr, missing))} that this run did not "
                   f"evaluate (removed or renamed?): their approved scores gate nothing here")
    unrun: dict[str, list[str]] = {}
    for suite in baseline.get("suites") or []:
        run = run_suites.get(suite.get("name"))
        if run is None or any(m != "base" and m not in (suite.get("models") or {}) for m in run.get("models") or {}):
            continue  # none, or a candidate the baseline lacks: baseline_coverage's 'renamed?' names both
        for model in suite.get("models") or {}:
            if model != "base" and model not in (run.get("models") or {}):
                unrun.setdefault(model, []).append(str(suite.get("name")))
    for model, names in unrun.items():
        out.append(f"baseline {where} approved adapter {model!r} on {', '.join(map(repr, names))}, which this run "
                   f"does not evaluate (renamed? dropped from --adapter?): its approved scores gate nothing here")
    return out


def unchecked_baseline_note(suites: list, flag: str = "--baseline FILE") -> str | None:
    """One line for a run without a baseline whose suites write gates against one: those gates
    do not exist in such a run, and a CI line that forgot ``--baseline`` (or whose baseline path
    variable was empty) passed with every one of them off and no word of it. ``flag`` is what
    gives the baseline where the run came from. None where no suite writes such a gate (the
    defaults alone: a first run, the one a baseline is approved from, is not warned)."""
    from .gates import written_baseline_bounds

    named = [(suite.name, bounds) for suite in suites if (bounds := written_baseline_bounds(suite))]
    if not named:
        return None
    listed = "; ".join(f"suite {name!r}: {', '.join(bounds)}" for name, bounds in named)
    return (f"no baseline given, so the gates against the approved baseline were not checked ({listed}); "
            f"pass {flag} to check them")


def baseline_notes(baseline: dict, results: dict, suites: list, strict: bool = False,
                   flag: str | None = "--strict-baseline") -> list[str]:
    """Every way gating against this baseline falls short of what it approved, one line each,
    for the terminal (harness eval, harness score, the pytest plugin): candidates and items it
    lacks (``baseline_coverage``; left out under ``strict``, where they are failed gates; ``flag``
    names the option that fails them, None where there is none), suites and adapters the run
    left out (``baseline_unused``), gates dropped or loosened since approval
    (``gates.policy_changes``; left out under ``strict`` too, failed gates there)."""
    from .gates import policy_changes

    notes = []
    suffix = f" ({flag} fails it)" if flag else ""
    if not strict:
        # a new adapter (or a rename) is missing from every suite: one line for it, not one a suite
        # (the red path printed twelve for its two new adapters)
        absent: dict[tuple[str, str], list[str]] = {}
        for suite in results.get("suites") or []:
            ref = baseline_suite(baseline, suite.get("name"))
            have = sorted((ref or {}).get("models") or {})
            for candidate, reason in baseline_coverage(baseline, suite):
                if ref is not None and candidate not in have:
                    absent.setdefault((candidate, ", ".join(have) or "none"), []).append(str(suite.get("name")))
                else:
                    notes.append(reason + suffix)
        where = baseline.get("_path") or "the baseline"
        notes[:0] = [_no_model(where, candidate, names, have) + suffix for (candidate, have), names in absent.items()]
    notes += baseline_unused(baseline, results)
    if not strict:
        for suite, header in zip(suites, results.get("suites") or []):
            notes += [f"{suite.name}: {text}{suffix}"
                      for text in policy_changes(suite, header, baseline_suite(baseline, suite.name))]
    return notes


def gating_notes(baseline: dict | None, results: dict, suites: list, strict: bool = False,
                 strict_flag: str | None = "--strict-baseline", baseline_flag: str = "--baseline FILE") -> list[str]:
    """The terminal's warnings on baseline gating, one line each, for every caller that prints a
    verdict (harness eval, harness score, the pytest plugin): with a baseline what gating fell
    short of (``baseline_notes``), without one the gates the suites write against one
    (``unchecked_baseline_note``). One place, so the callers cannot drift apart."""
    if baseline is not None:
        return baseline_notes(baseline, results, suites, strict=strict, flag=strict_flag)
    note = unchecked_baseline_note(suites, baseline_flag)
    return [] if note is None else [note]


def summarize_run(results: dict, source: str | None = None) -> dict:
    """The baseline form of a results.json dict (see the module docstring)."""
    suites = []
    for suite in results.get("suites", []):
        models = {}
        for name, model in (suite.get("models") or {}).items():
            items = []
            for item in model.get("items") or []:
                items.append({
                    "id": str(item["id"]), "category": item.get("category"),
                    **({"cluster": item["cluster"]} if item.get("cluster") is not None else {}),
                    "output_sha256": output_digest(item.get("output") or ""),
                    "values": dict(sorted(item_values(item).items())),  # exact: A/A must stay A/A
                })
            models[name] = {"fingerprint": model.get("fingerprint"), "metrics": model.get("metrics") or {},
                            "categories": model.get("categories") or {}, "items": items,
                            "outputs_z": pack_outputs({str(i["id"]): i.get("output") or ""
                                                       for i in model.get("items") or []})}
        suites.append({
            "name": suite["name"], "description": suite.get("description", ""),
            "fingerprint": suite.get("fingerprint"), "data_fingerprint": suite.get("data_fingerprint"),
            # only what the run recorded: a run of an older harness keeps its hashes unlabelled
            **({"fingerprint_recipe": suite["fingerprint_recipe"]} if suite.get("fingerprint_recipe") else {}),
            "template": suite.get("template"),
            "scorers": {n: {"version": s.get("version"), "options": s.get("options"),
                            **({"files": s["files"]} if s.get("files") else {})}
                        for n, s in (suite.get("scorers") or {}).items()},
            "generation": suite.get("generation"),
            "gates": [{**{k: g.get(k) for k in ("model", "metric", "kind", "passed")},
                       **({"limit": g["details"]["limit"]} if isinstance((g.get("details") or {}).get("limit"),
                                                                         (int, float)) else {})}
                      for g in suite.get("gates", [])],
            "models": models,
        })
    keep = ("path", "adapter_path", "fingerprint", "fingerprint_recipe", "weights_fingerprint", "base_fingerprint")
    return {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "approved_from": source,
        "run_created": results.get("created"),
        "harness_version": results.get("harness_version"),
        "environment": results.get("environment") or {},
        "command": results.get("command") or [],
        "verdict": results.get("verdict"),
        "models": {n: {k: m.get(k) for k in keep if k in m} for n, m in (results.get("models") or {}).items()},
        "suites": suites,
    }


def approve(run_dir: str | Path, to_file: str | Path = DEFAULT_BASELINE) -> Path:
    """Write the baseline of a passing run (``RUN_DIR/results.json``) to ``to_file``, atomically.

    A failing run cannot be approved: fix it, or change the policy, then rerun.
    """
    run = Path(run_dir)
    results_path = run / "results.json" if run.is_dir() else run
    check_finished(results_path.parent)  # never approve an earlier run's results for one that died
    results = load_results(results_path)
    if results["verdict"] != "pass":
        failed = [f"{g['suite']}/{g['model']}/{g['metric']} ({g.get('kind')})"
                  for s in results["suites"] for g in s.get("gates", []) if not g.get("passed")]
        raise HarnessError(f"the run failed its gates and cannot be approved: {', '.join(failed[:5]) or 'verdict fail'}",
                           path=results_path, field="verdict",
                           hint="approve a run whose verdict is pass")
    summary = summarize_run(results, source=str(run))
    out = Path(to_file)
    check_output(summary, BASELINE_SCHEMA, out)
    write_json(out, summary)
    return out


def _norm(x: Any) -> Any:
    """JSON form (tuples as lists), so an in-memory run compares equal to a file."""
    return json.loads(json.dumps(x, default=str))


def _short(x: Any) -> str:
    s = "none" if x is None else str(x)
    limit = 80 if isinstance(x, dict) else 24  # settings: what differs; hashes: a prefix
    return s if len(s) <= limit else s[:limit] + "…"


def _settings(key: str, value: Any) -> Any:
    """Generation settings with the engine's default for every key the file lacks: a file
    written before an option existed (``samples``) was made with its default, so an upgrade
    does not turn an approved baseline into a mismatch."""
    value = _norm(value)
    if key != "generation" or not isinstance(value, dict):
        return value
    import dataclasses

    from .generation import GenerationConfig

    defaults = {f.name: f.default for f in dataclasses.fields(GenerationConfig)}
    return {**_norm(defaults), **value}


def _what_differs(a: Any, b: Any) -> tuple[Any, Any]:
    """Two mappings cut down to the keys whose values differ (a message shows those)."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return a, b
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return {k: a.get(k) for k in keys}, {k: b.get(k) for k in keys}


def _fingerprint_kind(model: dict) -> str:
    endpoint = str(model.get("fingerprint") or "").startswith(ENDPOINT_FINGERPRINT_PREFIX)
    return "a served model's identity (--endpoint)" if endpoint else "a hash of a model folder's files"


def fingerprint_differences(ref: dict, run: dict, models: bool = True) -> list[dict]:
    """Parts that differ between a reference (baseline or run A) and a run (or run B).

    Both are results-like dicts (top level with ``models``, ``harness_version``,
    ``environment``; ``suites`` with their fingerprints and scorers). Returns
    ``[{suite, part, a, b, severity}]``, severity ``refuse`` (the comparison would be
    meaningless), ``warn`` (versions) or ``info`` (expected, e.g. a new adapter).
    Suites only present on one side are not differences. ``models=False`` leaves the models
    out (stored completions, ``harness score``: no model of their own to compare).
    """
    out: list[dict] = []

    def add(suite: str | None, part: str, a: Any, b: Any, severity: str) -> None:
        out.append({"suite": suite, "part": part, "a": a, "b": b, "severity": severity})

    ref_models, run_models = ref.get("models") or {}, run.get("models") or {}
    if not models:
        ref_models = run_models = {}
    rb, nb = (ref_models.get("base") or {}), (run_models.get("base") or {})
    model_recipes = (recorded_fingerprint_recipe(rb), recorded_fingerprint_recipe(nb))
    if rb.get("fingerprint") != nb.get("fingerprint") and rb and nb:
        kinds = [_fingerprint_kind(m) for m in (rb, nb)]
        if kinds[0] != kinds[1]:  # a served model's identity vs a folder's files: never the same hash
            add(None, "base model fingerprint recipe", *model_recipes, "refuse")
            out[-1]["message"] = (f"the baseline's base model fingerprint is {kinds[0]} and this run's "
                                  f"{kinds[1]}, so whether the base model changed cannot be told: compare "
                                  "runs of the same kind (both --endpoint, or both a local --model)")
        elif model_recipes[0] != model_recipes[1]:  # hashed differently: says nothing about the model
            add(None, "base model fingerprint recipe", *model_recipes, "refuse")
            out[-1]["message"] = (f"the baseline was approved by an mlx-harness that computes model fingerprints "
                                  f"differently (recipe {model_recipes[0] or 'unrecorded'}; this one computes "
                                  f"recipe {model_recipes[1] or 'unrecorded'}), so whether the base model "
                                  "changed cannot be told")
        else:
            add(None, "base model fingerprint (weights, tokenizer, chat template)", rb.get("fingerprint"),
                nb.get("fingerprint"), "refuse")
    for name in sorted(set(ref_models) & set(run_models) - {"base"}):
        if ref_models[name].get("fingerprint") != run_models[name].get("fingerprint"):
            add(None, f"adapter {name} fingerprint", ref_models[name].get("fingerprint"),
                run_models[name].get("fingerprint"), "info")
    if ref.get("harness_version") != run.get("harness_version"):
        add(None, "harness version", ref.get("harness_version"), run.get("harness_version"), "warn")
    re_, ne = ref.get("environment") or {}, run.get("environment") or {}
    for key in ("mlx", "mlx-lm"):
        if re_.get(key) != ne.get(key) and (key in re_ or key in ne):
            add(None, f"{key} version", re_.get(key), ne.get(key), "warn")

    ref_suites = {s.get("name"): s for s in ref.get("suites") or []}
    for suite in run.get("suites") or []:
        name = suite.get("name")
        old = ref_suites.get(name)
        if old is None:
            continue
        how, ref_hashes, run_hashes = _comparable_hashes(old, suite)
        if how == "incomparable":  # no recipe both sides computed: the hashes say nothing
            add(name, "suite fingerprint recipe", old.get("fingerprint_recipe"), suite.get("fingerprint_recipe"),
                "refuse")
            out[-1]["message"] = (f"the baseline was approved by an mlx-harness that computes suite fingerprints "
                                  f"differently (recipe {old.get('fingerprint_recipe') or 'unrecorded'}; "
                                  f"this one computes recipe {suite.get('fingerprint_recipe') or 'unrecorded'}), "
                                  f"so whether the suite changed cannot be told")
            ref_hashes = run_hashes = {}
        content_differs = ref_hashes.get("fingerprint") != run_hashes.get("fingerprint")
        if ref_hashes.get("data_fingerprint") != run_hashes.get("data_fingerprint"):
            add(name, "data hash", ref_hashes.get("data_fingerprint"), run_hashes.get("data_fingerprint"), "refuse")
        old_scorers, new_scorers = old.get("scorers") or {}, suite.get("scorers") or {}
        for scorer in sorted(set(old_scorers) & set(new_scorers)):
            ov, nv = old_scorers[scorer].get("version"), new_scorers[scorer].get("version")
            if ov != nv:
                add(name, f"scorer {scorer} version", ov, nv, "refuse")
            if _norm(old_scorers[scorer].get("options")) != _norm(new_scorers[scorer].get("options")):
                add(name, f"scorer {scorer} options", old_scorers[scorer].get("options"),
                    new_scorers[scorer].get("options"), "refuse")
            # the files it reads (a JSON Schema): compared where both sides recorded them
            # (an older harness did not, and then only the options above are compared)
            old_files, new_files = old_scorers[scorer].get("files"), new_scorers[scorer].get("files")
            if isinstance(old_files, dict) and isinstance(new_files, dict):
                for file in sorted(set(old_files) | set(new_files)):
                    if old_files.get(file) != new_files.get(file):
                        add(name, f"scorer {scorer} file {file}", old_files.get(file), new_files.get(file), "refuse")
        for scorer in sorted(set(new_scorers) - set(old_scorers)):
            add(name, f"scorer {scorer} (new, not in the reference)", None, new_scorers[scorer].get("version"), "info")
        for key in ("generation", "template"):
            if key in old and key in suite:
                a, b = _settings(key, old[key]), _settings(key, suite[key])
                if a != b:
                    add(name, f"{key} settings", *_what_differs(a, b), "refuse")
        named = any(d["suite"] == name and d["severity"] == "refuse" for d in out)
        if content_differs and not named:
            add(name, "suite content hash (prompt, target, system or settings in the suite file)",
                ref_hashes.get("fingerprint"), run_hashes.get("fingerprint"), "refuse")
            if how == "unrecorded":  # a pre-recipe file: its hash may cover comments and gates too
                out[-1]["note"] = ("no recipe recorded: an older mlx-harness, which may have hashed the whole "
                                   "file, comments and gates included")
    return out


def _comparable_hashes(ref: dict, run: dict) -> tuple[str, dict, dict]:
    """(how, ref's hashes, run's hashes) of one suite, both computed by the same recipe.

    A results.json or baseline records ``fingerprint_recipe`` (``harness.suite.FINGERPRINT_RECIPE``)
    and a run also its hashes under each earlier recipe (``earlier_fingerprints``), so a
    baseline approved by an older harness is compared under its own recipe: an unchanged
    suite matches, an edited one still differs. A side without a recipe (written before
    recipes were recorded) is compared under each recipe the other side has, and matches
    if one of them does; if none does, ``how`` is ``unrecorded`` and the suite is taken to
    differ, never to match: a baseline whose suite may have changed must not gate as if it
    had not. ``how`` is ``incomparable`` when both sides recorded recipes and share none (a
    baseline from a newer harness): its hashes then say nothing, and the caller refuses.
    """
    def hashes(d: dict) -> dict:
        return {"fingerprint": d.get("fingerprint"), "data_fingerprint": d.get("data_fingerprint")}

    def by_recipe(d: dict) -> dict[str, dict]:
        out = {str(k): hashes(v) for k, v in (d.get("earlier_fingerprints") or {}).items() if isinstance(v, dict)}
        return {str(d["fingerprint_recipe"]): hashes(d), **out} if d.get("fingerprint_recipe") else out

    a, b = ref.get("fingerprint_recipe"), run.get("fingerprint_recipe")
    if a == b:
        return "same", hashes(ref), hashes(run)
    if a and b:
        for recipe in (str(a), str(b)):  # the newer side can recompute the older side's recipe
            if recipe in by_recipe(ref) and recipe in by_recipe(run):
                return "same", by_recipe(ref)[recipe], by_recipe(run)[recipe]
        return "incomparable", hashes(ref), hashes(run)
    known, unknown = (run, ref) if not a else (ref, run)  # one side predates recorded recipes
    candidates = list(by_recipe(known).values())
    match = next((c for c in candidates if c == hashes(unknown)), None)
    how = "same" if match else "unrecorded"
    if match is None:  # report the content hash as what differs when the data still matches
        match = next((c for c in candidates if c["data_fingerprint"] == unknown.get("data_fingerprint")),
                     hashes(known))
    return (how, hashes(ref), match) if known is run else (how, match, hashes(run))


def _reapprove(baseline: dict, results_like: dict) -> str:
    """The commands that make a baseline this harness can check: the approved run's models
    (the last release's adapters, as the baseline recorded them) on this run's suites."""
    models = baseline.get("models") or {}
    args = ["harness", "eval", *[s["path"] for s in results_like.get("suites") or [] if s.get("path")],
            "--model", (models.get("base") or {}).get("path") or "MODEL"]
    for name, model in models.items():
        if name != "base" and model.get("adapter_path"):
            args += ["--adapter", f"{name}={model['adapter_path']}"]
    args += ["--out", "reports/rebaseline"]
    to = baseline.get("_path") or str(DEFAULT_BASELINE)
    return f"{shlex.join(args)} && harness baseline approve reports/rebaseline --to {shlex.quote(to)}"


def _difference(d: dict) -> str:
    where = f"suite {d['suite']}: " if d["suite"] else ""
    if d.get("message"):
        return f"{where}{d['message']}"
    note = f"; {d['note']}" if d.get("note") else ""
    return f"{where}{d['part']} differs (baseline {_short(d['a'])}, run {_short(d['b'])}{note})"


def check_baseline(baseline: dict, results_like: dict, allow_mismatch: bool, models: bool = True) -> list[str]:
    """Refuse to gate against a baseline whose fingerprints differ where it matters.

    ``results_like`` is the run's results dict before generation: results.json's shape
    without items or metrics, i.e. top-level ``harness_version``, ``environment``,
    ``models`` (name -> ``fingerprint``, ...) and ``suites`` (each with ``name``,
    ``fingerprint``, ``data_fingerprint``, ``scorers`` {name: {version, options}},
    ``generation``, ``template``). Raises HarnessError naming the first part that
    differs (and how many more) unless ``allow_mismatch``; otherwise those become
    warnings. Version differences are always warnings. Warnings are returned and also
    appended to ``results_like["warnings"]`` when that list exists. ``models=False``: the
    suites only (``harness score``: stored completions have no model fingerprint).
    """
    diffs = fingerprint_differences(baseline, results_like, models=models)
    refuse = [d for d in diffs if d["severity"] == "refuse"]
    path = baseline.get("_path")
    if refuse and not allow_mismatch:
        first = refuse[0]
        more = f" (+{len(refuse) - 1} more difference(s))" if len(refuse) > 1 else ""
        hint = ("approve a new baseline from a run of this setup (harness baseline approve RUN_DIR), "
                "or pass --allow-fingerprint-mismatch to compare anyway")
        if first.get("message") or first.get("note"):  # the baseline's hashes were computed differently
            hint = (f"re-approve the last release's adapters with this harness, on the suite as it is now: "
                    f"{_reapprove(baseline, results_like)}")
        raise HarnessError(f"baseline does not match this run: {_difference(first)}{more}", path=path, hint=hint)
    warnings = []
    for d in diffs:
        if d["severity"] == "info":
            continue
        lead = "compared anyway although " if d["severity"] == "refuse" else ""
        warnings.append(f"baseline: {lead}{_difference(d)}")
    if isinstance(results_like.get("warnings"), list):
        results_like["warnings"].extend(w for w in warnings if w not in results_like["warnings"])
    return warnings
