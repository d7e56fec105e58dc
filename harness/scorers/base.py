"""What a scorer is: per-item ``Score`` (value, passed, detail) from one ``Item``.

A scorer is a class with a ``name``, a ``version`` (part of a baseline's fingerprint:
bump it when a definition changes), an ``options_schema`` (JSON Schema, checked when the
suite loads) and ``score(item)``. A new scorer is one module plus one registry line in
``harness/scorers/__init__.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from ..case import Case


@dataclass
class Score:
    """One scorer's verdict on one item.

    ``value`` is the item's number for the scorer's main metric (1/0 for pass/fail
    scorers); ``passed`` is None where pass/fail does not apply (latency);
    ``metrics`` are extra per-item numbers averaged into ``<scorer>.<key>`` metrics;
    ``extra`` is shown in reports (a JSON class, an SQL error).
    """

    value: float | None
    passed: bool | None
    detail: str
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def problem(self) -> str | None:
        """Why this score cannot be counted, or None: a value or per-item number that is not a
        finite number (NaN would drop the item from its metric's mean: a failure vanishing),
        a verdict that is not a bool."""
        import math

        if self.passed is not None and not isinstance(self.passed, bool):
            return f"passed is {self.passed!r}, not True, False or None"
        numbers = [("value", self.value)] + [(f"metrics[{k!r}]", v) for k, v in (self.metrics or {}).items()]
        for name, x in numbers:
            if x is None:
                continue
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                return f"{name} is {x!r}, not a finite number"
        return None

    def to_json(self) -> dict:
        out: dict[str, Any] = {"value": self.value, "passed": self.passed, "detail": self.detail}
        if self.metrics:
            out["metrics"] = self.metrics
        if self.extra:
            out["extra"] = self.extra
        return out


@dataclass
class Item:
    """What a scorer sees of one generated (or stored) completion."""

    case: Case
    output: str
    finish_reason: str  # "stop" or "length"
    stats: dict[str, Any] = field(default_factory=dict)  # token counts, timings
    tokenizer: Any = None  # the model's tokenizer, None when scoring stored completions
    suite_dir: Path | None = None


class Scorer:
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    options_schema: ClassVar[dict] = {"type": "object", "additionalProperties": False}
    needs_model: ClassVar[bool] = False  # token_accuracy, latency: skipped by `harness score`
    # What a needs_model scorer reads from the loaded model, in a run without one: its skip
    # reason (results.json, the scorecard, a failed `unmeasured` gate) says what was missing
    # for this scorer, not one text for every skipped scorer.
    model_needs: ClassVar[str] = "the loaded model itself"
    uses_cache: ClassVar[bool] = True  # latency must measure real generation
    # Whether it reads a reasoning model's thinking too (harness.reasoning): the others see
    # only the answer after the block; repetition sees all of it (a loop there is a loop).
    reads_reasoning: ClassVar[bool] = False
    # A needs_model scorer whose scores are a pure function of the items and the model
    # (token_accuracy): on an unchanged re-run they come from the completion cache.
    reuse_scores: ClassVar[bool] = False
    # Keys of `Score.metrics` (and of `aggregate`, without the scorer's name) where lower is
    # better (seq_rep, seconds); the scorer's own name when its main metric is. Read only
    # through `higher_is_better`, the one place a metric's direction comes from.
    lower_is_better: ClassVar[frozenset[str]] = frozenset()
    # Every metric this scorer can produce beyond its own name (``name.KEY``: keys of
    # `Score.metrics` and of `aggregate`), so a gate on a misspelt one (``repetition.seqrep``)
    # is refused when the suite loads rather than failing after generation as 'no value'.
    # None: not stated (plugins), and then only the scorer's name is checked.
    metric_keys: ClassVar[frozenset[str] | None] = None
    # Keys (as in ``lower_is_better``: the scorer's own name for its main value) whose
    # per-item values are NOT confined to [0, 1]: seconds, tokens/s, GB, a log-likelihood.
    # Every other metric of a scorer that sets this is a share in [0, 1] (a pass rate, a
    # keyword credit, a repetition rate): its paired means get the interval for bounded
    # means (``harness.compare.continuous_interval``), and a value outside [0, 1] is
    # refused as a scorer bug. Read only through ``in_unit_interval``. None: not stated
    # (plugins); see there.
    unbounded: ClassVar[frozenset[str] | None] = None

    @classmethod
    def higher_is_better(cls, metric: str) -> bool:
        """The direction of one of this scorer's metrics (``name`` or ``name.key``).

        ``harness.metrics.higher_is_better`` resolves any metric name through this; it is
        what results.json, the reports, the gates and docs/scorers.md all use.
        """
        key = metric[len(cls.name) + 1:] if metric.startswith(cls.name + ".") else metric
        return key not in cls.lower_is_better

    @classmethod
    def in_unit_interval(cls, metric: str) -> bool | None:
        """Whether every per-item value of one of this scorer's metrics (``name`` or
        ``name.key``) lies in [0, 1] by its nature (True) or not (False); None where the
        scorer does not say (``unbounded`` unset, a plugin written before it existed).

        None is decided on each comparison's values (``harness.compare.continuous_interval``):
        values that all lie in [0, 1] take the bounded means' interval, each bound the
        wider of BCa's and Tango's. That is the default that catches a regression: every
        gate reads one bound (the worse side for a drop or tolerance, the better side for a
        gain), and the wider bound never lets more through, while BCa alone, should the
        metric be a share, passed a half-credit drop equal to the margin 8.2% of the time at
        24 items instead of 2.5%. Its price falls on a metric that is not a share, on the
        side towards no change, which no gate reads: ``harness compare`` (and its
        ``--fail-on-regression``) called WORSE 62% instead of 76% of 24-item runs of a
        latency around 0.3 s 9% slower; hence the built-in scorers all declare it.
        """
        if cls.unbounded is None:
            return None
        key = metric[len(cls.name) + 1:] if metric.startswith(cls.name + ".") else metric
        return key not in cls.unbounded

    @classmethod
    def range_problem(cls, score: Score) -> str | None:
        """Why a score's number cannot be one of this scorer's, or None: a value outside
        [0, 1] on a metric the scorer declares a share (``in_unit_interval``). Its
        comparisons would take the interval for shares on numbers that are none; the
        declaration or the scorer is wrong, and the run says so rather than guess."""
        numbers = [(cls.name, cls.name, "value", score.value)] if score.passed is None else []  # else 1/0 from passed
        numbers += [(f"{cls.name}.{k}", k, f"metrics[{k!r}]", v) for k, v in (score.metrics or {}).items()]
        for metric, key, what, x in numbers:
            if x is not None and cls.in_unit_interval(metric) and not 0.0 <= x <= 1.0:
                return (f"{what} is {x!r}, outside [0, 1], but the scorer declares {metric} a share in "
                        f"[0, 1] (add {key!r} to its `unbounded` if its values are not confined to [0, 1])")
        return None

    def __init__(self, options: dict, suite_dir: Path | None = None):
        self.options = options
        self.suite_dir = suite_dir

    def check(self, path: Path, line: int | None, field: str, cases: Sequence[Case] = ()) -> None:
        """Deeper checks at suite load, before any model loads: the options (a schema file
        exists, a regex compiles) and the cases' own data (``case.source``/``source_line``).

        Raise HarnessError(path=path, line=line, field=field) with the fix.
        """

    def gold_problems(self, cases: Sequence[Case]) -> list:
        """HarnessErrors (file, line, field, what to fix), one per case whose target this
        scorer cannot read: such an item is scored None on every run, so it can never pass.
        ``harness check-suite`` lists them; eval goes on and scores them None, as before.
        The scorer's own reading of the target, so check-suite and scoring cannot disagree."""
        return []

    def input_files(self) -> list[Path]:
        """Files this scorer reads besides the suite and its data (a JSON Schema and the files
        its ``$ref``s reach). Their digests are recorded beside the options, so a baseline is
        refused when one changed, as when the options did: the approved scores meant something else."""
        return []

    def score(self, item: Item) -> Score:
        raise NotImplementedError

    def score_all(self, items: list[Item], model: Any = None) -> list[Score]:
        """Score every item of one model. Override to batch (e.g. one forward pass)."""
        return [self.bounded(self.score, item) for item in items]

    @staticmethod
    def bounded(score: Callable[[Item], Score], item: Item) -> Score:
        """``score(item)``, or 0 with the reason when the item needs unbounded work (a regex
        that backtracks without end, JSON nested too deeply): one item never kills a run."""
        from ..bounded import MAX_OUTPUT_CHARS, TooMuchWork, item_budget

        if isinstance(item.output, str) and len(item.output) > MAX_OUTPUT_CHARS:
            why = f"the output is {len(item.output):,} characters, more than {MAX_OUTPUT_CHARS:,}"
            return Score(0.0, False, f"not scored: {why}", extra={"too_much_work": why})
        try:
            with item_budget():
                return score(item)
        except TooMuchWork as exc:
            return Score(0.0, False, f"not scored: {exc}", extra={"too_much_work": str(exc)})
        except RecursionError:
            why = "the output is nested too deeply to check"
            return Score(0.0, False, f"not scored: {why}", extra={"too_much_work": why})

    def aggregate(self, scores: list[Score]) -> dict[str, dict]:
        """Extra suite-level metrics beyond the defaults (p50/p95 latency, ...)."""
        return {}
