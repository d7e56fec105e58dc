"""Run history: many runs' ``results.json`` as one pandas table, and per-item exports.

``load(paths)`` gives one row per run, suite, model and metric (value, interval, n, the
run's time and commit), so a metric's trend across releases is one ``groupby`` away.
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
           "ci_high", "n", "kind", "higher_is_better", "gated", "gate_passed", "fingerprint"]


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
    from .files import read_json
    from .results import check_results

    data = read_json(path, "results file", finite=True)
    if not isinstance(data.get("suites"), list):
        raise HarnessError("not a harness results.json (no `suites` list)", path=path, field="suites")
    return dict(check_results(data, path, "results file", items=items))


def run_rows(results: dict, run: str) -> list[dict]:
    """The rows ``load`` makes of one results.json (dict)."""
    env = results.get("environment") or {}
    created, commit, verdict = results.get("created") or None, env.get("git_commit"), results.get("verdict")
    rows = []
    for suite in results["suites"]:
        if not isinstance(suite, dict):
            continue
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
                })
    return rows


def load(paths: Iterable[str | Path] | str | Path) -> "pd.DataFrame":
    """One row per run, suite, model and metric, oldest run first.

    ``paths``: results.json files, run folders, or folders searched for them. Columns:
    ``created`` (UTC timestamp), ``commit`` (git commit the run was made at, if known),
    ``run`` (the results.json path), ``verdict``, ``suite``, ``model``, ``metric``,
    ``value``, ``ci_low``, ``ci_high``, ``n``, ``kind``, ``higher_is_better``, ``gated``
    (a gate looked at this metric, or at its items in one category), ``gate_passed``,
    ``fingerprint`` (the model's).
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
    n = pd.to_numeric(df["n"], errors="coerce")
    df["n"] = n.where(n.abs() < 2 ** 53).astype("Int64")  # a count beyond that was edited in: unknown
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
        elif col == "n":
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
    ``max_points`` runs per series.
    """
    wanted = {(s.get("name"), model, metric)
              for s in results.get("suites") or []
              for model, r in (s.get("models") or {}).items()
              for metric in (r.get("metrics") or {})}
    series = []
    for (suite, model, metric), group in history.groupby(["suite", "model", "metric"], sort=True):
        if (suite, model, metric) not in wanted:
            continue
        group = group.sort_values("created", kind="stable", na_position="first").tail(max_points)
        points = [{"created": None if r.created is None or str(r.created) == "NaT" else r.created.isoformat(),
                   "commit": r.commit if isinstance(r.commit, str) else None,
                   "value": None if r.value != r.value else float(r.value)}
                  for r in group.itertuples()]
        series.append({"suite": suite, "model": model, "metric": metric, "points": points})
    return {"runs": int(history["run"].nunique()), "series": series}
