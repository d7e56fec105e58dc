"""Build results.json-shaped dicts and suites in tests, without a model.

``model_result({"q1": True, "q2": False})`` gives one model's suite entry with items,
per-item scores and metrics (Wilson intervals, as the runner computes them);
``suite_result({"base": {...}, "ft": {...}})`` a suite entry; ``results([...])`` a whole
run; ``make_suite(tmp_path, ids, gates=...)`` a real Suite loaded from YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.stats import bootstrap_mean_ci, wilson

SCORER = "exact_match"


def item(item_id: str, passed: bool | None, output: str | None = None, *, category: str | None = None,
         scorer: str = SCORER, metrics: dict | None = None, extra: dict | None = None,
         ttft_s: float | None = None, decode_tps: float | None = None, target: str = "4",
         prompt: str | None = None) -> dict:
    out = output if output is not None else (target if passed else "wrong")
    score: dict[str, Any] = {"value": None if passed is None else float(passed), "passed": passed,
                             "detail": "matches the target" if passed else f"expected {target!r}, got {out!r}"}
    if metrics:
        score["metrics"] = metrics
    if extra:
        score["extra"] = extra
    return {"id": item_id, "category": category, "prompt": prompt or f"Question {item_id}?", "target": target,
            "output": out, "finish_reason": "stop", "prompt_tokens": 5, "output_tokens": 2,
            "ttft_s": ttft_s, "decode_tps": decode_tps, "cached": False, "scores": {scorer: score}}


def metrics_of(items: list[dict]) -> dict:
    out: dict[str, dict] = {}
    scorers = sorted({s for i in items for s in i["scores"]})
    for name in scorers:
        verdicts = [i["scores"][name]["passed"] for i in items if name in i["scores"]
                    and i["scores"][name]["passed"] is not None]
        if verdicts:
            k, n = sum(verdicts), len(verdicts)
            low, high = wilson(k, n)
            out[name] = {"value": k / n, "ci_low": low, "ci_high": high, "n": n, "kind": "proportion",
                         "higher_is_better": True}
        keys = sorted({k for i in items for k in (i["scores"].get(name, {}).get("metrics") or {})})
        for key in keys:
            vals = [i["scores"][name]["metrics"][key] for i in items
                    if (i["scores"].get(name, {}).get("metrics") or {}).get(key) is not None]
            low, high = bootstrap_mean_ci(vals)
            out[f"{name}.{key}"] = {"value": sum(vals) / len(vals), "ci_low": low, "ci_high": high,
                                    "n": len(vals), "kind": "mean", "higher_is_better": not key.startswith("seq_rep")}
    return out


def categories_of(items: list[dict]) -> dict:
    cats = sorted({i["category"] for i in items if i["category"] is not None})
    return {c: metrics_of([i for i in items if i["category"] == c]) for c in cats}


def model_result(verdicts: dict[str, bool] | list[dict], fingerprint: str = "sha256:model", **kw) -> dict:
    items = verdicts if isinstance(verdicts, list) else [item(i, p, **kw) for i, p in verdicts.items()]
    return {"fingerprint": fingerprint, "metrics": metrics_of(items), "categories": categories_of(items),
            "items": items}


def suite_result(models: dict[str, dict], name: str = "smoke", fingerprint: str = "sha256:suite",
                 data_fingerprint: str = "sha256:data", scorers: dict | None = None) -> dict:
    scorer_names = sorted({s for m in models.values() for i in m["items"] for s in i["scores"]})
    return {"name": name, "description": f"{name} suite", "path": f"suites/{name}.yaml",
            "fingerprint": fingerprint, "data_fingerprint": data_fingerprint, "template": "chat",
            "scorers": scorers or {s: {"version": "1", "options": {}, "skipped": None} for s in scorer_names},
            "generation": {"max_tokens": 16, "temperature": 0.0, "stop": ["\n"]},
            "models": models, "gates": [], "warnings": []}


def results(suites: list[dict], models: dict | None = None, base_fp: str = "sha256:base") -> dict:
    names = sorted({m for s in suites for m in s["models"]}, key=lambda n: (n != "base", n))
    meta = models or {n: {"path": "fixtures/model", "adapter_path": None if n == "base" else f"adapters/{n}",
                          "fingerprint": base_fp if n == "base" else f"sha256:{n}",
                          "base_fingerprint": None if n == "base" else base_fp, "training_log": None}
                      for n in names}
    return {"harness_version": "0.1.0", "verdict": "pass", "created": "2025-01-01T00:00:00+00:00",
            "command": ["harness", "eval", "suites/smoke.yaml", "--model", "fixtures/model"],
            "environment": {"python": "3.11", "mlx": "0.29.0", "mlx-lm": "0.28.0", "device": "cpu"},
            "models": meta, "baseline": None, "warnings": [], "suites": suites}


def make_suite(tmp_path: Path, ids: list[str], gates: dict | None = None, name: str = "smoke",
               scorer: str = SCORER):
    """A real Suite from a YAML file (inline cases with these ids); ``gates=None`` omits the key."""
    from harness.suite import load_suite

    doc: dict[str, Any] = {"name": name, "prompt": "{{ q }}", "target": "{{ a }}",
                           "scorers": [{scorer: {}}],
                           "cases": [{"id": i, "q": f"Question {i}?", "a": "4"} for i in ids]}
    if gates is not None:
        doc["gates"] = gates
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_suite(path)


def schema_def_validator(name: str, schema: str = "results.schema.json"):
    """A validator for one ``$defs`` entry of a harness schema (``delta``, ``metric``), for a
    piece of results.json built by the code under test."""
    import jsonschema

    from harness.validation import load_schema

    return jsonschema.Draft202012Validator({"$defs": load_schema(schema)["$defs"], "$ref": f"#/$defs/{name}"})
