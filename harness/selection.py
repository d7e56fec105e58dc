"""Pick items for a run: ``--ids`` (named cases) and ``--only-failing RUN`` (the cases
that failed in an earlier run), for `harness eval` and `harness score`.

A suite with none of its cases picked is left out of the run; an id that is in no suite,
or a selection that leaves nothing to run, is bad input (exit 2).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from .errors import HarnessError


@dataclass
class Selection:
    ids: set[str] | None = None  # --ids: these ids, in whichever suite has them
    failing: dict[str, set[str]] | None = None  # --only-failing: suite name -> ids that failed
    source: str = ""

    def __bool__(self) -> bool:
        return self.ids is not None or self.failing is not None

    def wanted(self, suite_name: str, case_id: str) -> bool:
        if self.ids is not None and case_id not in self.ids:
            return False
        if self.failing is not None and case_id not in self.failing.get(suite_name, set()):
            return False
        return True

    def apply(self, suites: list) -> list:
        """The suites with only the picked cases (suites left with none are dropped)."""
        if not self:
            return suites
        out = []
        seen: set[str] = set()
        for suite in suites:
            cases = [c for c in suite.cases if self.wanted(suite.name, str(c.id))]
            seen.update(str(c.id) for c in suite.cases)
            if cases:
                clone = copy.copy(suite)
                clone.cases = cases
                out.append(clone)
        if self.ids is not None:
            unknown = sorted(self.ids - seen)
            if unknown:
                raise HarnessError(f"--ids: {unknown[0]!r} is not a case of any suite in this run"
                                   + (f" (+{len(unknown) - 1} more)" if len(unknown) > 1 else ""),
                                   field="--ids", hint="ids are the cases' `id` values")
        if not out:
            what = "--ids and --only-failing together" if self.ids is not None and self.failing is not None \
                else ("--ids" if self.ids is not None else f"--only-failing {self.source}")
            hint = None
            if self.failing is not None:
                names = {s.name for s in suites}
                elsewhere = sorted(n for n, ids in self.failing.items() if ids and n not in names)
                hint = (f"its items failed only in suites this run does not have: {', '.join(elsewhere)}"
                        if elsewhere and self.ids is None else "nothing failed in that run")
            raise HarnessError(f"{what} picked no case of these suites", field="--only-failing"
                               if self.failing is not None else "--ids", hint=hint)
        return out


def parse_ids(values: list[str] | None) -> set[str] | None:
    """``--ids a,b --ids c`` -> {"a", "b", "c"}; None when not given."""
    if not values:
        return None
    ids = {part.strip() for value in values for part in str(value).split(",") if part.strip()}
    if not ids:
        raise HarnessError("--ids names no id", field="--ids", hint="--ids q1,q2 (comma-separated, repeatable)")
    return ids


def failing_ids(run: str | Path) -> dict[str, set[str]]:
    """Per suite, the ids of items that failed (any pass/fail scorer false, any model) in a
    run folder or results.json."""
    from .files import read_json, require_utf8_name
    from .results import check_results
    from .run_marker import check_finished

    p = Path(run)
    if p.is_dir():
        p = p / "results.json"
    require_utf8_name(p, "run", field="--only-failing")  # the new run's results name it
    check_finished(p.parent)  # a run that died there: its failures are an earlier run's
    data = read_json(p, what="run (--only-failing)", finite=True)
    if not isinstance(data.get("suites"), list):
        raise HarnessError("not a results.json (no `suites`)", path=p, field="--only-failing",
                           hint="pass a run folder written by harness eval or harness score")
    check_results(data, p, "run (--only-failing)")
    out: dict[str, set[str]] = {}
    for suite in data["suites"]:
        if not isinstance(suite, dict):
            continue
        ids = out.setdefault(str(suite.get("name")), set())
        for model in (suite.get("models") or {}).values():
            for item in (model or {}).get("items") or []:
                scores = (item or {}).get("scores") or {}
                if any(isinstance(s, dict) and s.get("passed") is False for s in scores.values()):
                    ids.add(str(item.get("id")))
    return out


def from_args(ids: list[str] | None, only_failing: str | Path | None) -> Selection:
    return Selection(ids=parse_ids(ids), failing=failing_ids(only_failing) if only_failing else None,
                     source=str(only_failing or ""))
