"""Per-item views for the scorecard: which items failed which gate, their outputs side by
side with the differences marked, and the rows of the full item table.

Everything here returns plain values (or ``Markup`` whose every piece of model text was
escaped here); ``templates/_items.html.j2`` and ``_failures.html.j2`` lay them out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from markupsafe import Markup, escape

from . import visible
from ..compare import flip_change, flip_label
from ..gates import POLICY_GATE_KINDS

MAX_WORSE_SHOWN = 20  # for a gate on a mean metric: the items that got worse the most
MAX_EXTRA_CHARS = 240
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


def _esc(text: str) -> Markup:
    return escape(visible(text))


def diff_markup(ref: str, cand: str) -> tuple[Markup, Markup]:
    """Both texts, escaped, with word-level differences wrapped in <del> (ref) and <ins> (cand)."""
    a, b = _TOKEN.findall(ref), _TOKEN.findall(cand)
    if len(a) * len(b) > 4_000_000:  # very long outputs: no highlighting rather than a slow page
        return _esc(ref), _esc(cand)
    left: list[Markup] = []
    right: list[Markup] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        sa, sb = "".join(a[i1:i2]), "".join(b[j1:j2])
        if tag == "equal":
            left.append(_esc(sa))
            right.append(_esc(sb))
            continue
        if sa:
            left.append(Markup("<del>") + _esc(sa) + Markup("</del>"))
        if sb:
            right.append(Markup("<ins>") + _esc(sb) + Markup("</ins>"))
    return Markup("").join(left), Markup("").join(right)


# --- the item model -------------------------------------------------------------------------

def verdict(item: dict) -> str | None:
    """'fail' when any scorer failed, 'pass' when one passed and none failed, else None."""
    passed = [s.get("passed") for s in (item.get("scores") or {}).values() if s.get("passed") is not None]
    if not passed:
        return None
    return "pass" if all(passed) else "fail"


def scorer_flips(ref: dict | None, cand: dict, lower: frozenset[str] | set[str]) -> tuple[list[str], list[str]]:
    """Scorers whose verdict got worse and better from ``ref`` to ``cand``: pass->fail and
    fail->pass, the other way round for the scorers in ``lower`` (a pass rate where lower is
    better, as ``lower_is_better_scorers`` finds them): there a verdict going to pass (a leak
    found) is the regression, as ``paired_delta``'s flipped_down counts it. ``lower`` has no
    default: a caller that left it out would read a leak found as an item fixed."""
    if ref is None:
        return [], []
    ref_scores, scores = ref.get("scores") or {}, cand.get("scores") or {}
    down, up = [], []
    for name, score in scores.items():
        a, b = (ref_scores.get(name) or {}).get("passed"), score.get("passed")
        if name in lower:
            a, b = (None if a is None else not a), (None if b is None else not b)
        if a is True and b is False:
            down.append(name)
        elif a is False and b is True:
            up.append(name)
    return down, up


def lower_is_better_scorers(suite: dict) -> set[str]:
    """The suite's scorers whose pass rate is lower-is-better (results.json records each metric's
    direction): their flips count the other way in ``scorer_flips``."""
    return {name for model in (suite.get("models") or {}).values()
            for name, info in (model.get("metrics") or {}).items()
            if "." not in name and isinstance(info, dict) and info.get("higher_is_better") is False}


def flip_words(names: list[str], lower: set[str] | frozenset[str], worse: bool) -> str:
    """What an item did on the scorers ``names`` (``scorer_flips``' lists), in ``compare.flip_label``'s
    words: 'pass→fail' / 'fail→pass', 'got worse (0→1)' where every one is lower-is-better (its
    pass rate's delta says 0→1), 'got worse' where both kinds are among them. It said 'worse'
    where junit and ``harness compare`` said 'got worse (0→1)' of the same item."""
    changes = {flip_change({"worse": "0→1" if n in lower else "pass→fail"}, worse) for n in names}
    return flip_label(changes or {flip_change({"worse": "pass→fail"}, worse)}, worse)


def _extra_lines(extra: Any) -> list[tuple[str, str]]:
    if not isinstance(extra, dict):
        return []
    out = []
    for key, value in extra.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        if len(text) > MAX_EXTRA_CHARS:
            text = text[:MAX_EXTRA_CHARS] + f"… ({len(text)} characters)"
        out.append((str(key), visible(text)))
    return out


def score_view(score: dict | None) -> dict | None:
    if score is None:
        return None
    metrics = {k: v for k, v in (score.get("metrics") or {}).items()}
    return {"passed": score.get("passed"), "value": score.get("value"), "detail": visible(score.get("detail", "")),
            "metrics": metrics, "extra": _extra_lines(score.get("extra"))}


@dataclass
class Card:
    """One item of one model next to its reference (base, the baseline, or nothing)."""

    anchor: str
    suite: str
    model: str
    id: str
    category: str | None
    ref_kind: str  # "base" | "baseline" | ""
    ref_label: str
    change: str  # e.g. "pass→fail vs base", "failed"
    down: bool
    prompt: str
    target: str | None
    output: Markup
    finish: Any
    ref_output: Markup | None
    ref_finish: Any
    ref_note: str
    scorers: list[dict]
    gates: list[str] = field(default_factory=list)


class Cards:
    """Every card of the report, once each, keyed by (suite, model, id, reference)."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str, str, str], Card] = {}

    def get(self, key: tuple[str, str, str, str]) -> Card | None:
        return self.by_key.get(key)

    def make(self, suite: dict, model: str, item: dict, ref_kind: str, change: str, down: bool) -> Card:
        name = suite.get("name", "")
        key = (name, model, str(item["id"]), ref_kind)
        if key in self.by_key:
            return self.by_key[key]
        ref_item, ref_output, ref_note, ref_label = None, None, "", ""
        models = suite.get("models") or {}
        if ref_kind == "base":
            ref_item = _item_by_id(models.get("base")).get(str(item["id"]))
            ref_label = "base"
            if ref_item is None:
                ref_note = "base has no output for this item in this run"
        elif ref_kind == "baseline":
            ref_label = f"baseline {model}"
            stored = ((suite.get("baseline_outputs") or {}).get(model) or {}).get(str(item["id"]))
            if stored is not None:
                ref_item = {"output": stored.get("output"), "finish_reason": stored.get("finish_reason"),
                            "scores": {n: {"passed": p, "detail": ""} for n, p in (stored.get("passed") or {}).items()}}
                if stored.get("output") is None:
                    ref_note = ("the baseline was approved without outputs (re-approve it to keep them); "
                                f"its output hash is {stored.get('output_sha256', '?')}")
            else:
                ref_note = "the baseline has no stored output for this item"
        output = str(item.get("output", ""))
        if ref_item is not None and isinstance(ref_item.get("output"), str):
            ref_output, cand = diff_markup(ref_item["output"], output)
        else:
            cand = _esc(output)
        cand_scores = item.get("scores") or {}
        ref_scores = (ref_item or {}).get("scores") or {}
        scorers = [{"name": n, "ref": score_view(ref_scores.get(n)), "cand": score_view(cand_scores.get(n))}
                   for n in sorted(set(cand_scores) | set(ref_scores))]
        card = Card(anchor=f"item-{len(self.by_key) + 1}", suite=name, model=model, id=str(item["id"]),
                    category=item.get("category"), ref_kind=ref_kind, ref_label=ref_label, change=change,
                    down=down, prompt=visible(item.get("prompt", "")),
                    target=None if item.get("target") is None else visible(item["target"]),
                    output=cand, finish=item.get("finish_reason"), ref_output=ref_output,
                    ref_finish=(ref_item or {}).get("finish_reason"), ref_note=ref_note, scorers=scorers)
        self.by_key[key] = card
        return card


def _item_by_id(model: dict | None) -> dict[str, dict]:
    return {str(i["id"]): i for i in (model or {}).get("items") or []}


def _series_value(item: dict, metric: str) -> float | None:
    scorer, _, key = metric.partition(".")
    score = (item.get("scores") or {}).get(scorer)
    if not score:
        return None
    if not key:
        if score.get("passed") is not None:
            return 1.0 if score["passed"] else 0.0
        return score.get("value")
    return (score.get("metrics") or {}).get(key)


def split_category(metric: str) -> tuple[str, str | None]:
    """``keywords[architecture]`` (a per-category gate's metric) -> ("keywords", "architecture")."""
    m = re.fullmatch(r"(.+)\[(.+)\]", metric)
    return (m.group(1), m.group(2)) if m else (metric, None)


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


def gate_items(gate: dict, suite: dict) -> tuple[list[tuple[str, str, str]], str]:
    """The items behind a failed gate: ``[(item id, reference kind, change)]`` and a note;
    ``change`` is "" for a pass→fail flip or failure, else what got worse, as the gate's
    ``worse`` says in ``compare.flip_label``'s words (a lower-is-better metric's flip:
    ``METRIC got worse (0→1)``; a mean of 0/1 values: ``METRIC got worse (1→0)``).

    vs-base and vs-baseline gates: the items that flipped pass→fail (for a mean metric,
    the items that got worse the most); critical gates: the critical items that flipped;
    floors, ceilings and per-category gates: the candidate's failing items (of that
    category), next to base's output when there is a base.
    """
    kind = str(gate.get("kind") or "")
    metric, category = split_category(str(gate.get("metric") or ""))
    model = gate.get("model")
    details = gate.get("details") or {}
    category = details.get("category", category)
    models = suite.get("models") or {}
    cand = {i: it for i, it in _item_by_id(models.get(model)).items()
            if category is None or it.get("category") == category}
    ref_kind = "baseline" if kind.endswith("vs_baseline") else (
        "base" if (kind.endswith("vs_base") or "base" in models) and model != "base" else "")
    if kind in ("missing", "unmeasured", "integrity", *POLICY_GATE_KINDS):
        return [], ""  # nothing an item did (the suite's policy changed)
    if isinstance(details.get("flipped_down"), list) and (kind.endswith("vs_base") or kind.endswith("vs_baseline")):
        ids = [str(i) for i in details["flipped_down"] if str(i) in cand]
        if ids or kind.startswith("critical"):
            # what the items did, as the gate's delta says: "" for pass→fail (the caller says it
            # against its reference), else e.g. a lower-is-better metric's "leak got worse (0→1)"
            worse = flip_label({flip_change(details, worse=True)}, worse=True)
            change = "" if worse == "pass→fail" else f"{metric} {worse}"
            return [(i, ref_kind, change) for i in ids], ""
    if kind.endswith("vs_base") or kind.endswith("vs_baseline"):
        # a mean metric: rank the items by how much they got worse
        hib = details.get("higher_is_better", True)
        if ref_kind == "base":
            ref = {i: _series_value(it, metric) for i, it in _item_by_id(models.get("base")).items()}
        else:
            ref = {}
            for i, stored in ((suite.get("baseline_outputs") or {}).get(model) or {}).items():
                v = (stored.get("values") or {}).get(metric)
                ref[i] = v
        worse = []
        for i, it in cand.items():
            a, b = ref.get(i), _series_value(it, metric)
            if a is None or b is None:
                continue
            change = (b - a) if hib else (a - b)
            if change < 0:
                worse.append((change, i))
        worse.sort()
        note = ""
        if len(worse) > MAX_WORSE_SHOWN:
            note = (f"{MAX_WORSE_SHOWN} of {len(worse)} items that got worse on {metric} shown (the largest "
                    "changes); every item is in the item table")
        elif ref_kind == "baseline":
            note = (f"the items that got worse on {metric} the most (up to {MAX_WORSE_SHOWN}); "
                    "every item is in the item table")
        return [(i, ref_kind, f"worse on {metric}: {_num(ref.get(i))} → {_num(_series_value(cand[i], metric))}")
                for _, i in worse[:MAX_WORSE_SHOWN]], note
    scorer = metric.split(".", 1)[0]
    ids = [i for i, it in cand.items() if ((it.get("scores") or {}).get(scorer) or {}).get("passed") is False]
    return [(i, ref_kind, "") for i in ids], ""
