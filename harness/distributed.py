"""Evaluation across processes on MLX's distributed layer (``mlx.launch``).

Under ``mlx.launch -n N -- harness eval ...`` every rank loads the model and applies the
same adapters in turn. For each suite and model, rank 0 looks items up in its completion
cache and tells every rank which items to generate; the items are dealt out round-robin
(item j to rank j mod N, so long and short prompts spread evenly), each rank generates
its share, and the completions are gathered to every rank in item order. Rank 0 writes
the cache, scores, and writes the reports; the other ranks only generate.

Python objects travel as JSON bytes in an ``all_gather`` (padded to the longest), which
works on every backend ``mlx.launch`` offers (ring over TCP on one or several Macs, MPI,
JACCL).

Training (``train/loop.py``) takes its group here too and guards its collectives with the
same ``collective_guard``: the gradient sums are inside the compiled step, so each step's
evaluation is guarded as a whole (``step_s``: its deadline follows the rank's longest step).

Every collective is guarded (``collective_guard``): a rank that waits far longer than
plausible gives up with one line on stderr and exit 3 (no verdict), instead of waiting
forever. What happens without it (mlx 0.32.4, ring backend, measured here): a rank that
*exits* before a collective closes its sockets and the others' ``all_gather`` raises
``RuntimeError("[ring] connection to a peer was lost")`` at once (and ``mlx.launch`` ends
the others when a rank exits non-zero); but a rank that is alive and never joins (stuck
in its own work, stopped, a host gone without closing its connection) keeps the others
waiting forever, and a rank that arrives after its peer left *in the middle of* a
collective either spins in the next ``all_gather`` (ml-explore/mlx#4060) or gets
unfilled memory back with no error (so every part carries a marker, its length and a
CRC-32: ``check_headers``, ``check_rows``). The ring also deadlocks now and then on its
own (ml-explore/mlx#4475; seen in this project's CI with rank 0 done and rank 1 spinning
inside an ``all_gather``). ``mlx.launch`` does nothing about a rank that exited 0 while
another hangs.

The wait cannot be interrupted from Python: while MLX blocks in a collective the GIL is
released (another Python thread runs) but a signal handler only runs once the C call
returns (measured: SIGALRM due at 2.5 s ran at 8.0 s, when the late peer arrived). So the
guard is ``bounded.time_limit``'s watchdog thread, which writes the line and ends the
process with ``os._exit``; a stuck thread inside MLX cannot be unwound, and a process
group with a missing rank cannot go on, so this holds in a host program too. Each rank
has its own guard, so after one gives up the others end too.
"""

from __future__ import annotations

import json
import math
import os
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator

from .bounded import time_limit
from .errors import CollectiveFailed, HarnessError, printable

# The deadline of one collective wait: max(FLOOR_S, FACTOR x this rank's longest own work
# between two collectives so far, the current stretch included). Ranks get equal shares
# (round-robin), so the wait is the other ranks' extra time. Measured on the shipped suites
# (fixture model, base + 2 adapters, 2 ranks on 2 loaded cores, 54 collectives each): the
# worst wait was 9.5 s, and wait / longest own work at most 1.18 (an all_gather whose other
# rank took 2.8x as long on the shared CPU). Against the *current* stretch alone the ratio
# was unbounded: rank 1 waits at a suite's first collective while rank 0 alone scores the
# previous suite (9.5 s after 0.16 s of its own work), work that the previous suite's
# generation bounds. FACTOR 5 leaves room for Macs of different speed; the floor for
# stretches with little own work (startup: loading a model from a slower disk).
FLOOR_S = 300.0
FACTOR = 5.0
TIMEOUT_ENV = "HARNESS_COLLECTIVE_TIMEOUT"


@lru_cache(maxsize=1)
def group() -> Any:
    """The process group (size 1 when not launched, or when MLX has no distributed backend).

    Launched (``MLX_RANK`` set, as ``mlx.launch`` does for ring and JACCL), a rank that
    cannot connect is exit 3 with one line (eval and ``harness train`` take their group here): the ring gives up after ~31 s, and the harness
    used to go on alone as a one-process run, writing its own PASS report with
    ``world_size`` 1 while rank 0 waited for it (measured). Connecting is not guarded by a
    deadline: rank 0 waits in MLX's init holding the GIL (measured: a Python thread stops
    ticking), so no thread of ours could end it; ``mlx.launch`` ends it when another rank
    exits non-zero, which a rank that cannot connect now does."""
    try:
        import mlx.core as mx
    except ImportError:
        return None
    launched = os.environ.get("MLX_RANK", "").strip()
    if not launched:
        try:
            world = mx.distributed.init()
        except Exception:  # no backend in this build: one process
            return None
    else:
        started = time.monotonic()
        try:
            world = mx.distributed.init(strict=True)
        except RuntimeError as exc:
            raise CollectiveFailed(
                f"rank {launched}{_of_size()} could not connect to the other ranks at startup after "
                f"{time.monotonic() - started:.1f} s: {exc}; a rank did not start (its own message is "
                f"above) or the hosts cannot reach each other; no results were written, rerun "
                f"(exit 3, no verdict)") from exc
    _CLOCK.last = time.monotonic()  # this rank's own work starts now
    return world


def _of_size() -> str:
    """" of N" from the ring's hostfile (one entry per rank), for the line before a group exists."""
    try:
        with open(os.environ["MLX_HOSTFILE"], encoding="utf-8") as f:
            hosts = json.load(f)
        return f" of {len(hosts)}" if isinstance(hosts, list) else ""
    except (KeyError, OSError, ValueError):
        return ""


def rank_and_size() -> tuple[int, int]:
    g = group()
    return (g.rank(), g.size()) if g is not None else (0, 1)


def all_gather_json(obj: Any, what: str = "data") -> list[Any]:
    """``obj`` from every rank, in rank order (JSON-serialisable values only). ``what`` names
    what is gathered (suite and model) for the line a guard writes when the wait is too long."""
    import mlx.core as mx
    import numpy as np

    g = group()
    if g is None or g.size() == 1:
        return [obj]
    with collective_guard(f"in a collective ({what})", f"rank {g.rank()} of {g.size()}"):
        data = json.dumps(obj, separators=(",", ":")).encode()
        heads = mx.distributed.all_gather(mx.array([header(data)], dtype=mx.int32), group=g, stream=mx.cpu)
        heads = heads.tolist()
        check_headers(heads)
        longest = max(h[1] for h in heads)
        mine = np.frombuffer(data.ljust(longest, b" "), dtype=np.uint8)
        everyone = mx.distributed.all_gather(mx.array(mine)[None], group=g, stream=mx.cpu)
        payloads = check_rows(heads, np.array(everyone))
    return [json.loads(p) for p in payloads]


# A rank that leaves in the middle of a collective can make MLX's ring return uninitialised
# memory instead of an error (mlx 0.32.4, measured: rank 0 exits after sending its part of the
# first all_gather; on rank 1 the first returns the right values, the second a row of garbage,
# no exception). Each rank's part carries a marker, its length and its CRC-32, checked on
# arrival; a mismatch is a lost rank (RuntimeError, which the guard reports as one).
_MARK = 0x6D6C7868  # b"mlxh"


def header(data: bytes) -> list[int]:
    """[marker, length, CRC-32] of one rank's part, as int32 values."""
    crc = zlib.crc32(data)
    return [_MARK, len(data), crc - (1 << 32) if crc >= 1 << 31 else crc]


def check_headers(heads: list[list[int]]) -> None:
    for r, head in enumerate(heads):
        if len(head) != 3 or head[0] != _MARK or head[1] < 0:
            raise RuntimeError(f"rank {r}'s part arrived as garbage (MLX returned unfilled memory: "
                               f"that rank left in the middle of the collective)")


def check_rows(heads: list[list[int]], rows: Any) -> list[bytes]:
    """Each rank's bytes, checked against its header."""
    payloads = []
    for r, (_, n, crc) in enumerate(heads):
        data = rows[r, :n].tobytes()
        if header(data)[2] != crc:
            raise RuntimeError(f"rank {r}'s part arrived corrupt (CRC-32 mismatch: MLX returned unfilled "
                               f"memory, that rank left in the middle of the collective)")
        payloads.append(data)
    return payloads


def broadcast_json(obj: Any, what: str = "data") -> Any:
    """Rank 0's ``obj`` on every rank."""
    return all_gather_json(obj, what)[0]


# --- the guard on collective waits ---------------------------------------------------

@dataclass
class WorkClock:
    """This rank's own work between collectives: what a wait is measured against."""

    last: float  # when this rank last left a collective (or finished connecting)
    longest: float = 0.0  # the longest stretch of own work so far

    def stretch(self, now: float) -> tuple[float, float]:
        """(own work since the last collective, the longest stretch so far, this one included)."""
        own = max(0.0, now - self.last)
        return own, max(self.longest, own)

    def left_collective(self, entered: float, now: float) -> None:
        self.longest = self.stretch(entered)[1]
        self.last = now


_CLOCK = WorkClock(time.monotonic())
_UNREAD = object()
_timeout: Any = _UNREAD  # the user's override once read (--collective-timeout, else the env var)


def collective_deadline(own_s: float, longest_s: float, override: float | None = None) -> float | None:
    """Seconds a rank waits in one collective before it gives up; None: no limit.

    ``override`` (``--collective-timeout`` / ``HARNESS_COLLECTIVE_TIMEOUT``) replaces the
    derived deadline, 0 meaning no guard. Otherwise max(``FLOOR_S``, ``FACTOR`` x the longest
    of ``own_s`` (this rank's work since the last collective) and ``longest_s`` (its longest
    such stretch before)): a fixed deadline would fire on a legitimately slow generation,
    and the current stretch alone would fire where the others' extra work does not scale
    with it (rank 0 scoring the previous suite while the others wait).
    """
    if override is not None:
        return override if override > 0 else None
    return max(FLOOR_S, FACTOR * max(own_s, longest_s))


def parse_collective_timeout(text: str, field: str) -> float:
    """Seconds (>= 0, finite) from the option or the environment variable; bad input is exit 2."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise HarnessError(f"{text!r} is not a number of seconds", field=field,
                           hint="give seconds a rank may wait in one collective, e.g. 1800, or 0 for no limit")
    return value


def set_collective_timeout(option: str | None) -> None:
    """The override for this process: ``option`` (``--collective-timeout``), else
    ``HARNESS_COLLECTIVE_TIMEOUT``, else None (the derived deadline). Read before any model
    loads, so a bad value is exit 2 at once."""
    global _timeout
    if option is not None:
        value: float | None = parse_collective_timeout(option, "--collective-timeout")
    elif os.environ.get(TIMEOUT_ENV, "").strip():
        value = parse_collective_timeout(os.environ[TIMEOUT_ENV].strip(), TIMEOUT_ENV)
    else:
        value = None
    _timeout = value


def _override() -> float | None:
    if _timeout is _UNREAD:
        set_collective_timeout(None)
    return _timeout


def gave_up_line(who: str, where: str, waited_s: float, limit: str) -> str:
    """The one line a rank writes when it stops waiting."""
    return (f"{who} waited {waited_s:.1f} s for the other ranks {where} "
            f"and gave up (exit 3, no verdict): another rank died or is stuck, or MLX's ring backend hung "
            f"(ml-explore/mlx#4475, #4060); rerun, or if the other ranks are only slow, raise the limit "
            f"({limit}) with --collective-timeout SECONDS or {TIMEOUT_ENV}=SECONDS (0: no limit)")


# What MLX's backends put before the errors they raise for a peer that went (ring: "[ring]
# connection to a peer was lost"); any other RuntimeError in a guarded training step is the
# step's own (out of memory) and passes through as it is.
BACKEND_ERRORS = ("[ring]", "[mpi]", "[jaccl]", "[nccl]")


def guard_deadline(entered: float, step_s: float | None = None) -> tuple[float | None, str]:
    """(seconds a collective entered at ``entered`` may wait, None: no limit; the limit as the
    gave-up line names it). ``step_s``: the longest training step of this rank so far, for a
    guarded block that holds the rank's own work as well as the collective."""
    own, longest = _CLOCK.stretch(entered)
    if step_s is not None:
        longest = max(longest, step_s)
    override = _override()
    what = "work between collectives" + (" or training step" if step_s is not None else "")
    limit = (f"{override:g} s, set by --collective-timeout or {TIMEOUT_ENV}" if override is not None else
             f"max({FLOOR_S:g} s, {FACTOR:g} x this rank's longest own {what}, {longest:.1f} s)")
    return collective_deadline(own, longest, override), limit


@contextmanager
def collective_guard(where: str, who: str, step_s: float | None = None) -> Iterator[None]:
    """Around one collective: give up (one line, exit 3) once the wait passes its deadline;
    a peer lost on the way (MLX raises RuntimeError) is the same kind of failure, one line.

    The watchdog thread ends the process (``os._exit``, nothing more is written; rank 0
    writes its reports only after its last collective). A collective that returns late
    raises ``CollectiveFailed`` with the same line.

    ``step_s`` (training): the block is a whole compiled step, this rank's forward and
    backward pass with the gradient sums inside one graph, so its own work and its wait
    cannot be timed apart; the deadline is max(``FLOOR_S``, ``FACTOR`` x the longest step
    so far), ``step_s`` being that longest step (the wait for a slower rank included: what a
    step of this group takes).
    """
    entered = time.monotonic()
    deadline, limit = guard_deadline(entered, step_s)
    where = printable(where)  # suite and model names come from the user's files
    line = gave_up_line(who, where, deadline or 0.0, limit)
    try:
        with time_limit(deadline, where, signals=False, grace=0.0, exit_code=CollectiveFailed.exit_code,
                        last_words=f"harness: error: {line}",
                        error=lambda _: CollectiveFailed(
                            gave_up_line(who, where, time.monotonic() - entered, limit))):
            yield
    except RuntimeError as exc:  # the backend saw a peer go (a closed connection) or none come
        if step_s is not None and not str(exc).startswith(BACKEND_ERRORS):
            raise
        raise CollectiveFailed(
            f"{who} lost the other ranks {where} after {time.monotonic() - entered:.1f} s: {exc}; "
            f"a rank ended (its own message is above), never started, or the network dropped; "
            f"no results were written, rerun (exit 3, no verdict)") from exc
    _CLOCK.left_collective(entered, time.monotonic())


def shard(n_items: int, rank: int, size: int) -> list[int]:
    """The item positions this rank generates: round-robin, so prompt lengths spread evenly."""
    return list(range(rank, n_items, size))


def unshard(per_rank: list[list[Any]], n_items: int) -> list[Any]:
    """Per-rank results (each in its shard's order) back in item order."""
    size = len(per_rank)
    return [per_rank[j % size][j // size] for j in range(n_items)]
