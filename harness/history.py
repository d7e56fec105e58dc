"""Run history: many runs' ``results.json`` as one pandas table, and per-item exports.

``load(paths)`` gives one row per run, suite, model and metric (value, interval, n, the
run's time and commit, and what the value was measured on: the base model's fingerprint,
the suite's, the item count), so a metric's trend across releases is one ``groupby`` away;
group by those three too, or a "base" line mixes another base model folder under the same
name, an edited suite and a two-item ``--ids`` run (``past_series`` does).
``items_table(run)`` is the per-item view of one run (what ``harness export`` writes).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from .atomic import is_writer_temp
from .errors import HarnessError

if TYPE_CHECKING:  # pandas is imported only when a table is built (it is slow to import)
    import pandas as pd

COLUMNS = ["created", "commit", "run", "verdict", "suite", "model", "metric", "value", "ci_low",
           "ci_high", "n", "kind", "higher_is_better", "gated", "gate_passed", "fingerprint",
           "base_fingerprint", "base_fingerprint_recipe", "suite_fingerprint", "suite_fingerprint_recipe", "items"]


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """results.json files under ``paths`` (each a results.json, a run folder or a folder of runs)."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_file():
            found.append(p)
        elif (p / "results.json").is_file():
            found.append(p / "results.json")
        elif p.is_dir():
            found.extend(f for f in sorted(p.rglob("results.json"))
                         if not any(is_writer_temp(part) for part in f.relative_to(p).parts[:-1]))
        else:
            raise HarnessError("no such file or folder", path=p,
                               hint="pass run folders (with results.json) or folders holding them")
    unique = list(dict.fromkeys(f.resolve() for f in found))
    return unique


def read_results(path: Path, items: bool = True) -> dict:
    """A run's results.json, checked against the schema (``items=False``: all but its items,
    which the history table does not read)."""
    from .files import read_json, require_utf8_name
    from .results import check_results

    require_utf8_name(path, "results file")  # the history table, CSV and --history's trends name it
    data = read_json(path, "results file", finite=True)
    if not isinstance(data.get("suites"), list):
        raise HarnessError("not a harness results.json (no `suites` list)", path=path, field="suites")
    return dict(check_results(data, path, "results file", items=items))


def run_rows(results: dict, run: str) -> list[dict]:
    """The rows ``load`` makes of one results.json (dict)."""
    env = results.get("environment") or {}
    created, commit, verdict = results.get("created") or None, env.get("git_commit"), results.get("verdict")
    models = results.get("models") if isinstance(results.get("models"), dict) else {}
    rows = []
    for suite in results["suites"]:
        if not isinstance(suite, dict):
            continue
        recipe = suite.get("fingerprint_recipe")
        gates: dict[tuple[str, str], bool] = {}
        for g in suite.get("gates") or []:
            # a category gate (`keywords[architecture]`) is a gate on its metric's items
            key = (str(g.get("model")), str(g.get("metric")).split("[", 1)[0])
            gates[key] = gates.get(key, True) and bool(g.get("passed"))
        for model, result in (suite.get("models") or {}).items():
            for metric, m in ((result or {}).get("metrics") or {}).items():
                if not isinstance(m, dict):
                    continue
                rows.append({
                    "created": created, "commit": commit, "run": run, "verdict": verdict,
                    "suite": suite.get("name"), "model": model, "metric": metric,
                    "value": m.get("value"), "ci_low": m.get("ci_low"), "ci_high": m.get("ci_high"),
                    "n": m.get("n"), "kind": m.get("kind"), "higher_is_better": m.get("higher_is_better"),
                    "gated": (model, metric) in gates, "gate_passed": gates.get((model, metric)),
                    "fingerprint": (result or {}).get("fingerprint"),
                    "base_fingerprint": base_fingerprint(models, model),
                    "base_fingerprint_recipe": base_fingerprint_recipe(models, model),
                    "suite_fingerprint": suite.get("fingerprint"),
                    "suite_fingerprint_recipe": recipe if isinstance(recipe, int) else None,
                    "items": len(items) if isinstance(items := (result or {}).get("items"), list) else None,
                })
    return rows


def base_fingerprint(models: dict, model: str) -> str | None:
    """The fingerprint of the base model ``model`` ran on (its own, for the base), from
    results.json's ``models``: the same name over another model folder is another series."""
    meta = models.get(model) if isinstance(models.get(model), dict) else {}
    base = models.get("base") if isinstance(models.get("base"), dict) else {}
    found = meta.get("base_fingerprint") or base.get("fingerprint") or (meta.get("fingerprint") if model == "base" else None)
    return found if isinstance(found, str) else None


def base_fingerprint_recipe(models: dict, model: str) -> str | None:
    """The recipe ``base_fingerprint(models, model)`` was computed by, as text (``2``, or a served
    model's ``endpoint-1+files-2``; ``harness.models.recorded_fingerprint_recipe``), None when
    unknown: two fingerprints are compared only within one recipe."""
    from .models import recorded_fingerprint_recipe

    found = base_fingerprint(models, model)
    if found is None:
        return None
    base = models.get("base") if isinstance(models.get("base"), dict) else {}
    entry = base if base.get("fingerprint") == found else {"fingerprint": found}  # no recipe of its own
    recipe = recorded_fingerprint_recipe(entry)
    return None if recipe is None else str(recipe)


def load(paths: Iterable[str | Path] | str | Path) -> "pd.DataFrame":
    """One row per run, suite, model and metric, oldest run first.

    ``paths``: results.json files, run folders, or folders searched for them. Columns:
    ``created`` (UTC timestamp), ``commit`` (git commit the run was made at, if known),
    ``run`` (the results.json path), ``verdict``, ``suite``, ``model``, ``metric``,
    ``value``, ``ci_low``, ``ci_high``, ``n``, ``kind``, ``higher_is_better``, ``gated``
    (a gate looked at this metric, or at its items in one category), ``gate_passed``,
    ``fingerprint`` (the model's), and what the value was measured on: ``base_fingerprint``
    (the base model's) with its ``base_fingerprint_recipe`` (text: ``2``, or a served model's
    ``endpoint-1+files-2``), ``suite_fingerprint`` with its ``suite_fingerprint_recipe``
    (``harness.suite.FINGERPRINT_RECIPE``), ``items`` (the model's item count: ``--ids`` and
    ``--limit`` runs measure fewer).
    """
    import pandas as pd

    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = find_runs(paths)
    if not files:
        raise HarnessError("no results.json found", path=", ".join(str(p) for p in paths),
                           hint="pass the --out folders of earlier `harness eval` runs")
    rows = []
    for f in files:
        rows.extend(run_rows(read_results(f, items=False), str(f)))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["created"] = pd.to_datetime(df["created"], utc=True, errors="coerce", format="ISO8601")
    for col in ("value", "ci_low", "ci_high"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in ("n", "items", "suite_fingerprint_recipe"):
        n = pd.to_numeric(df[col], errors="coerce")
        df[col] = n.where(n.abs() < 2 ** 53).astype("Int64")  # a count beyond that was edited in: unknown
    df["gate_passed"] = df["gate_passed"].astype("boolean")  # missing where no gate looked: not False
    return df.sort_values(["created", "run", "suite", "model", "metric"], kind="stable",
                          na_position="first").reset_index(drop=True)


# --- per-item export ---------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: object) -> object:
    """Untrusted text for a spreadsheet: a leading = + - @ would run as a formula, so quote it."""
    if isinstance(text, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def items_table(results: dict, *, spreadsheet_safe: bool = True) -> "pd.DataFrame":
    """One row per suite, item and model: id, category, output, finish reason, ``error``
    (why an endpoint never answered it: its scores are those of an empty output), and for
    every scorer ``<scorer>.value`` and ``<scorer>.passed``."""
    import pandas as pd

    rows, scorer_names = [], []
    for suite in results["suites"]:
        for model, result in (suite.get("models") or {}).items():
            for item in (result or {}).get("items") or []:
                row = {"suite": suite.get("name"), "id": str(item.get("id")), "model": model,
                       "category": item.get("category"), "output": item.get("output"),
                       "finish_reason": item.get("finish_reason"), "target": item.get("target"),
                       "error": item.get("error")}
                for name, score in (item.get("scores") or {}).items():
                    if name not in scorer_names:
                        scorer_names.append(name)
                    row[f"{name}.value"] = (score or {}).get("value")
                    row[f"{name}.passed"] = (score or {}).get("passed")
                rows.append(row)
    columns = ["suite", "id", "model", "category", "output", "finish_reason", "target", "error"]
    columns += [f"{n}.{k}" for n in scorer_names for k in ("value", "passed")]
    df = pd.DataFrame(rows, columns=columns)
    if spreadsheet_safe:
        for col in ("id", "category", "output", "target", "error"):
            df[col] = df[col].map(_cell)
    return df


def write_table(df: "pd.DataFrame", *, csv: Path | None = None, parquet: Path | None = None) -> None:
    """Write ``df`` atomically as CSV and/or Parquet (Parquet needs pyarrow or fastparquet)."""
    import io

    from .atomic import write_bytes, write_text

    if parquet is not None:
        if not parquet_available():
            raise HarnessError("--parquet needs pyarrow, which is not installed", field="--parquet",
                               hint="pip install pyarrow (or write --csv)")
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        write_bytes(parquet, buf.getvalue())
    if csv is not None:
        write_text(csv, df.to_csv(index=False))


TEXT_COLUMNS = ("commit", "run", "verdict", "suite", "model", "metric", "kind", "fingerprint",
                "base_fingerprint", "base_fingerprint_recipe", "suite_fingerprint",
                "id", "category", "output", "finish_reason", "target", "error")
BOOL_COLUMNS = ("higher_is_better", "gated", "gate_passed")


def read_csv(path: str | Path) -> pd.DataFrame:
    """A CSV that ``harness history`` or ``harness export`` wrote, typed as written.

    Plain ``pd.read_csv`` guesses: an id ``007`` comes back as 7, ``1e5`` as 100000.0, a
    category ``NA`` as NaN. Here names, ids and texts stay strings, flags (``gated``,
    ``<scorer>.passed``) are nullable booleans, ``n`` an integer, ``created`` a UTC
    timestamp; only an empty cell is missing.
    """
    import pandas as pd

    header = pd.read_csv(path, nrows=0).columns
    dtype: dict[str, str | type] = {}
    for col in header:
        if col in TEXT_COLUMNS or col == "created":
            dtype[col] = str
        elif col in BOOL_COLUMNS or col.endswith(".passed"):
            dtype[col] = "boolean"
        elif col in ("n", "items", "suite_fingerprint_recipe"):
            dtype[col] = "Int64"
    df = pd.read_csv(path, dtype=dtype, keep_default_na=False, na_values=[""])
    if "created" in df.columns:
        df["created"] = pd.to_datetime(df["created"], utc=True, errors="coerce", format="ISO8601")
    for col in ("gated", "higher_is_better"):  # never missing in a history table
        if col in df.columns and not df[col].isna().any():
            df[col] = df[col].astype(bool)
    return df


def parquet_available() -> bool:
    from importlib.util import find_spec

    return find_spec("pyarrow") is not None or find_spec("fastparquet") is not None


__all__ = ["load", "items_table", "write_table", "read_csv", "find_runs", "run_rows", "COLUMNS"]


# --- trends for the scorecard (`harness eval --history DIR`) ------------------------

def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit the working folder is at (``$GITHUB_SHA`` in Actions), or None outside git."""
    import os
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        out = None
    if out is not None and out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip()
    return os.environ.get("GITHUB_SHA") or None


def past_series(history: "pd.DataFrame", results: dict, max_points: int = 50) -> dict:
    """Past values of every (suite, model, metric) of ``results``, for ``results["history"]``.

    Only what this run also measured is kept (the scorecard draws gated metrics), newest
    ``max_points`` runs per series, and of those only the points measured on what this run
    was: the same base model (fingerprint, compared only with one of the same recipe: another
    recipe is "fingerprint recipe differs", not "another base model"), the same suite (fingerprint, under the past
    run's recipe) and the same item count. A series keyed by names alone drew another base
    model folder under the name "base", an edited suite and a two-item ``--ids`` run as one
    line; the points left out are counted by why in the series' ``left_out``
    (``{"runs", "why"}``), which the scorecard prints beside the trend. Each point carries
    ``measured_on`` (``{base_fingerprint, base_fingerprint_recipe, suite_fingerprint, items}``).
    """
    models = results.get("models") if isinstance(results.get("models"), dict) else {}
    now: dict[tuple, dict] = {}
    for s in results.get("suites") or []:
        hashes = {str(r): (e or {}).get("fingerprint") for r, e in (s.get("earlier_fingerprints") or {}).items()}
        hashes[str(s.get("fingerprint_recipe", 1))] = s.get("fingerprint")
        for model, r in (s.get("models") or {}).items():
            items = r.get("items")
            for metric in (r.get("metrics") or {}):
                now[(s.get("name"), model, metric)] = {
                    "base": base_fingerprint(models, model), "suite": hashes,
                    "base_recipe": base_fingerprint_recipe(models, model),
                    "items": len(items) if isinstance(items, list) else None}
    series = []
    for (suite, model, metric), group in history.groupby(["suite", "model", "metric"], sort=True):
        if (suite, model, metric) not in now:
            continue
        group = group.sort_values("created", kind="stable", na_position="first").tail(max_points)
        points, why = [], {}
        for r in group.itertuples():
            breaks = _breaks(r, now[(suite, model, metric)])
            for reason in breaks:
                why[reason] = why.get(reason, 0) + 1
            if breaks:
                continue
            points.append({
                "created": None if _missing(r.created) else r.created.isoformat(),
                "commit": _text(r.commit),
                "value": None if r.value != r.value else float(r.value),
                "measured_on": {"base_fingerprint": _text(r.base_fingerprint),
                                "base_fingerprint_recipe": _text(getattr(r, "base_fingerprint_recipe", None)),
                                "suite_fingerprint": _text(r.suite_fingerprint),
                                "items": None if _missing(r.items) else int(r.items)}})
        left_out = len(group) - len(points)
        series.append({"suite": suite, "model": model, "metric": metric, "points": points,
                       **({"left_out": {"runs": left_out, "why": why}} if left_out else {})})
    return {"runs": int(history["run"].nunique()), "series": series}


def _breaks(row, now: dict) -> list[str]:
    """Why a past point is not on this run's line: what it was measured on that differs."""
    out = []
    base = _text(row.base_fingerprint)
    if base is None or now["base"] is None:
        out.append("base model not recorded")  # stored completions (harness score) name none
    elif base != now["base"]:
        # as a baseline's check: a hash is compared only with one of the same recipe (an endpoint's
        # identity never equals a folder's file hash; recipe 1 and 2 hash other files)
        recipe = _text(getattr(row, "base_fingerprint_recipe", None))
        if recipe != now["base_recipe"]:
            out.append(f"fingerprint recipe differs ({recipe or 'unrecorded'}, this run "
                       f"{now['base_recipe'] or 'unrecorded'})")
        else:
            out.append("another base model")
    recipe = 1 if _missing(row.suite_fingerprint_recipe) else int(row.suite_fingerprint_recipe)
    suite = _text(row.suite_fingerprint)
    if suite is None or now["suite"].get(str(recipe)) is None:
        out.append("suite version not recorded")
    elif now["suite"][str(recipe)] != suite:
        out.append("another suite version")
    if _missing(row.items) or now["items"] is None:
        # as the base model and suite version: a count either side lacks is not "another" one
        # (a results file without its items read "another item count (3, this run None)")
        out.append("item count not recorded")
    elif int(row.items) != now["items"]:
        out.append(f"another item count ({int(row.items)}, this run {now['items']})")
    return out


def _missing(value) -> bool:
    """None, NaN, NaT or pd.NA: a cell the run did not record."""
    import pandas as pd

    return value is None or bool(pd.isna(value))


def _text(value) -> str | None:
    """A text cell, or None for a missing one (NaN after a CSV round trip, not a string)."""
    return value if isinstance(value, str) else None
