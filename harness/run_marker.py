"""The mark a run leaves in a reused ``--out`` folder until it has written its results.

``mlx.launch`` exits 0 whatever its ranks return, so CI takes the verdict from the folder
(``harness verdict``). A reused folder (a CI cache, a rerun in the same workspace) still
holds the previous run's results.json when the new run stops before writing its own (a
crash, an OOM kill, bad input, a rank that gave up or never connected): verdict read that
earlier run and said PASS.

``harness eval``, ``harness score`` and the pytest plugin's ``harness_run`` (the writing
process: rank 0, or a process alone) write ``run-in-progress.json`` into a folder that
already holds results (or another run's mark) before anything else can fail. Their results leave it out of the new set in
the same swap that brings them in (``atomic.write_folder``'s ``retire``): the folder
turns from "unfinished" to "finished" in one rename, never back. A run that is killed
(SIGKILL, the collective guard's ``os._exit``) or stops on an error leaves it, and
``harness verdict`` refuses the folder (exit 2), as do ``baseline approve``, ``compare``
and ``--only-failing``, which would take the earlier run's results for this one's. A fresh folder gets no mark, so a run
refused for bad input writes nothing there: with no results.json, verdict already says
the run did not finish.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import datetime, timezone
from pathlib import Path

from .atomic import json_text, write_bytes
from .errors import HarnessError
from .results import command_line

MARKER = "run-in-progress.json"

# The rank a launcher gives a process, read before MLX connects the group (a rank that
# never connects must have left its mark): mlx.launch's ring and JACCL backends set
# MLX_RANK, its MPI backend runs mpirun (Open MPI, MPICH / PMIx).
_RANK_VARS = ("MLX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")


def writes_results() -> bool:
    """Whether this process writes the run's folder: rank 0 of a launch, or a process alone.
    An unreadable rank counts as 0 (a mark too many fails safe; one missing passes a stale run)."""
    for var in _RANK_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            try:
                return int(value) == 0
            except ValueError:
                return True
    return True


def start(out_dir: str | Path, command: list[str] | None = None) -> bytes | None:
    """Mark ``out_dir`` as holding a run in progress when it holds results a reader could take
    for this run's; returns the mark's content, which ``runner.finish`` retires with the
    results (None: nothing was marked)."""
    folder = Path(out_dir)
    if not writes_results() or not any(os.path.lexists(folder / name) for name in ("results.json", MARKER)):
        return None
    mark = {"run_id": uuid.uuid4().hex, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "pid": os.getpid(), "host": socket.gethostname(), "command": command_line(list(command or []))}
    content = json_text(mark).encode("utf-8")
    write_bytes(folder / MARKER, content)
    return content


def unfinished(folder: str | Path) -> dict | None:
    """The mark of a run that started into ``folder`` and wrote no results since, or None.
    A mark that cannot be read is still a mark (``{}``): something left it there."""
    path = Path(folder) / MARKER
    if not os.path.lexists(path):
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def check_finished(folder: str | Path) -> None:
    """Refuse (exit 2) a folder whose last run started and did not finish: its results.json,
    if any, is an earlier run's."""
    mark = unfinished(folder)
    if mark is None:
        return
    folder = Path(folder)

    def field(key: str) -> str:
        value = mark.get(key)
        return str(value)[:100] if value not in (None, "") else "?"

    try:
        created = json.loads((folder / "results.json").read_text(encoding="utf-8")).get("created")
        previous = f"the results.json here is an earlier run's, of {str(created)[:40] if created else 'unknown date'}"
    except FileNotFoundError:
        previous = "there is no results.json"
    except (OSError, ValueError, AttributeError):
        previous = "the results.json here is not this run's"
    raise HarnessError(
        f"the run started at {field('started')} (pid {field('pid')} on {field('host')}) into this folder did not "
        f"finish: it wrote no results after it started (a crash, a kill, bad input, or a distributed rank that "
        f"gave up); {previous}", path=folder,
        hint=f"look at the launcher's log and rerun; {MARKER} goes when a run writes its results")


__all__ = ["MARKER", "writes_results", "start", "unfinished", "check_finished"]
