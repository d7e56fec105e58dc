"""Gates: the suite's policy applied to its metrics, giving pass/fail verdicts with reasons.

Policy (the suite's ``gates:`` mapping, metric name -> options; schema in
``schemas/suite.schema.json``):

``min`` / ``max``
    Absolute floor / ceiling on the candidate's point estimate (its interval is
    shown in the reason).
``max_drop_vs_base``
    Non-inferiority margin against the base, in the metric's units: passes when the
    bound of the paired interval of (candidate - base) on the worse side clears
    -margin (the lower bound for higher-is-better metrics), never on the point estimate.
``min_gain_vs_base``
    Superiority: the better-side bound must be beyond +gain (0: significantly better).
``max_drop_vs_baseline`` / ``min_gain_vs_baseline``
    The same non-inferiority / superiority tests against the approved baseline's model of
    the same name ("better than the last release").
``rel_tolerance_vs_base`` / ``rel_tolerance_vs_baseline``
    A margin given as a fraction of the reference value (latency, memory: ``0.25``
    allows 25% worse).
``higher_is_better``
    Direction; defaults to what the metric reports, i.e. ``harness.metrics.higher_is_better``
    (``repetition``, the share not collapsed: higher; ``repetition.seq_rep``, latency: lower).
``categories``
    ``{CATEGORY: options}``: the same options (all but ``critical``) applied to the items
    of one category alone, with their own paired intervals; the gate's metric is
    ``METRIC[CATEGORY]`` (``keywords[architecture]``), in results.json, junit.xml and
    summary.md. A category that can regress alone is gated alone. The defaults are
    suite-wide: a category gets only the options written for it, so it must set a bound.
``critical``
    Item ids that must never flip from pass to fail (pass/fail metrics only), against
    the base and against the baseline.

*Candidates* are the adapters, or the base when the run has no adapter. The base is
the reference, so base-only gates (``min``) apply to it only in a base-only run.

Defaults apply whether or not the suite has a ``gates:`` key, because the default
must catch the regression: every pass/fail metric (a scorer's own name) of every
candidate gets ``max_drop_vs_base: 0.05`` and ``max_drop_vs_baseline: 0.05`` unless the
suite's entry for that metric sets the option itself (another margin, or ``null`` to
drop that one gate). Turning gating off is explicit: ``metric: false`` (no gates on that
metric), ``gates: false`` (none in the suite).

A gate the suite writes on a scorer the run skipped (no model: ``harness score``,
``--endpoint``) fails as ``unmeasured``: it checked nothing, and a warning let the run PASS.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any


from .compare import (ModelView, flip_change, flip_label, fmt, has_interval, higher_is_better, is_binary, model_view,
                      paired_delta, suite_comparisons)
from .errors import HarnessError
from .stats import expected_discordance, power_warning, smallest_margin, wilson
from .yamlpos import node_line

if TYPE_CHECKING:  # typing only: suites import gates, never the reverse
    from .suite import Suite

DEFAULT_MARGIN = 0.05
DEFAULT_POLICY = {"max_drop_vs_base": DEFAULT_MARGIN, "max_drop_vs_baseline": DEFAULT_MARGIN}
# the options that make a gate (``higher_is_better`` alone makes none), each with which way
# it gives: True where a larger value lets more through (policy_changes: a loosened gate)
_LOOSER_WHEN_LARGER = {"min": False, "max": True, "max_drop_vs_base": True, "min_gain_vs_base": False,
                       "rel_tolerance_vs_base": True, "max_drop_vs_baseline": True, "min_gain_vs_baseline": False,
                       "rel_tolerance_vs_baseline": True}
BOUNDS = tuple(_LOOSER_WHEN_LARGER)
_EPS = 1e-12

__all__ = ["evaluate_gates", "written_baseline_bounds", "comparisons_for", "policy", "policy_changes", "policy_change_gates", "validate_policy", "DEFAULT_MARGIN"]


def validate_policy(suite: Suite) -> None:
    """Check the policy against the suite itself: metrics come from its scorers, and
    critical ids are its cases. Raises HarnessError naming the file, line and field.

    (The shapes are already checked by the suite schema.)
    """
    gates = (suite.raw or {}).get("gates") or {}
    scorer_names = {s.name for s in suite.scorers}
    case_ids = {c.id for c in suite.cases}
    for metric, options in gates.items():
        scorer = metric.split(".", 1)[0]
        if scorer not in scorer_names:
            raise HarnessError(f"gate on {metric!r}, but the suite has no scorer {scorer!r}",
                               path=suite.path, line=node_line(suite.root, ["gates", metric]),
                               field=f"gates.{metric}",
                               hint=f"metrics are named after scorers: {', '.join(sorted(scorer_names))}")
        _check_metric_name(suite, metric, scorer)
        _check_direction(suite, metric, options, ["gates", metric])
        known = {c.category for c in suite.cases if c.category is not None}
        for category, cat_options in ((options or {}).get("categories") or {}).items():
            where = dict(path=suite.path, line=node_line(suite.root, ["gates", metric, "categories", category]),
                         field=f"gates.{metric}.categories.{category}")
            _check_direction(suite, metric, cat_options, ["gates", metric, "categories", category])
            if str(category) not in known:
                raise HarnessError(f"gate on {metric!r} in category {category!r}, which no case has", **where,
                                   hint=f"categories of this suite: {', '.join(sorted(known)) or 'none'}")
            if not set(cat_options or {}) & set(BOUNDS):  # no defaults there: it would gate nothing, silently
                raise HarnessError(f"category {category!r} of the gate on {metric!r} sets no bound, so it gates "
                                   f"nothing (a category gets only the options written for it)", **where,
                                   hint=f"give one of {', '.join(BOUNDS)}, e.g. max_drop_vs_base: 0.05")
        critical = (options or {}).get("critical")
        if critical:
            if "." in metric:
                raise HarnessError("`critical` needs a pass/fail metric (a scorer's own name)",
                                   path=suite.path, line=node_line(suite.root, ["gates", metric, "critical"]),
                                   field=f"gates.{metric}.critical")
            unknown = [str(i) for i in critical if str(i) not in case_ids]
            if unknown:
                raise HarnessError(f"critical item {unknown[0]!r} is not a case of the suite",
                                   path=suite.path, line=node_line(suite.root, ["gates", metric, "critical"]),
                                   field=f"gates.{metric}.critical",
                                   hint="use the cases' `id` values")


def _check_metric_name(suite: Suite, metric: str, scorer: str) -> None:
    """A gate on a metric its scorer never produces gated nothing until the run ended: it failed
    after generating everything, as 'the run produced no value' (``repetition.seqrep``)."""
    from .scorers import scorer_class

    keys = scorer_class(scorer).metric_keys
    if keys is None or metric == scorer:
        return
    samples = getattr(getattr(suite, "generation", None), "samples", 1) or 1
    known = set(keys) | ({f"pass@{samples}", f"pass^{samples}"} if samples > 1 else set())
    if metric.split(".", 1)[1] in known:
        return
    names = ", ".join([scorer] + [f"{scorer}.{k}" for k in sorted(known)])
    raise HarnessError(f"gate on {metric!r}, a metric scorer {scorer!r} does not produce", path=suite.path,
                       line=node_line(suite.root, ["gates", metric]), field=f"gates.{metric}",
                       hint=f"its metrics: {names} (docs/scorers.md)")


def _check_direction(suite: Suite, metric: str, options: Any, keys: list) -> None:
    """A gate's ``higher_is_better`` against the direction the metric's scorer states: reversed,
    every drop gate on it passes the regression it is there to catch (``repetition: {max_drop_vs_base:
    0.2, higher_is_better: false}``, written by someone who read 'repetition' as the bad thing,
    passed the looping adapter at 0.031 against the base's 1.000). Only a scorer that states no
    direction (a plugin) takes it from the gate."""
    if not isinstance(options, dict) or "higher_is_better" not in options:
        return
    from .metrics import declared_direction

    stated = declared_direction(metric)
    if stated is None or bool(options["higher_is_better"]) == stated:
        return
    raise HarnessError(f"gate on {metric!r} sets higher_is_better: {str(options['higher_is_better']).lower()}, but "
                       f"{metric} is {'higher' if stated else 'lower'}-is-better (its scorer says so); reversed, "
                       f"the gate would pass the regression it is there to catch",
                       path=suite.path, line=node_line(suite.root, [*keys, "higher_is_better"]),
                       field=".".join(str(k) for k in keys) + ".higher_is_better",
                       hint="remove higher_is_better (every metric's direction is listed in docs/scorers.md)")


def _require_direction(suite: Suite, metric: str) -> None:
    """A drop, tolerance or gain gate on a metric whose scorer states no direction (a plugin
    setting neither ``lower_is_better`` nor ``higher_is_better``) and whose gate sets none:
    higher would be assumed, and a plugin's toxicity share doubling (0.09 -> 0.20 on the
    looping adapter) passed ``max_drop_vs_base: 0.01``. A pass rate is higher-is-better by
    the scorer contract, so only other metrics need this; checked once the kind is known."""
    from .metrics import declared_direction

    if declared_direction(metric) is not None:
        return
    keys = getattr(suite, "gate_keys", None) or ["gates", metric]
    root = getattr(suite, "root", None)
    raise HarnessError(f"gate on {metric!r}: its scorer does not say whether higher or lower is better, and "
                       f"the gate does not either, so a drop cannot be told from a gain",
                       path=getattr(suite, "path", None), line=node_line(root, keys) if root is not None else None,
                       field=".".join(str(k) for k in keys),
                       hint="add higher_is_better: true or false to the gate (or, in the scorer, "
                            "lower_is_better = frozenset({...}) naming its lower-is-better metrics)")


def policy(suite: Suite, suite_result: dict, defaults: bool = True) -> dict[str, dict]:
    """metric -> options: the suite's gates, with the defaults filled in on pass/fail metrics
    (``defaults=False``: the options as written, for a category's gates).

    Each options dict gets ``_source`` (``"suite"`` when the suite names the metric, else
    ``"default"``) and ``_defaulted`` (the option names taken from the defaults). Options
    set to ``null`` are dropped; a metric set to ``false`` and ``gates: false`` turn
    gating off.
    """
    named = (suite.raw or {}).get("gates", suite.gates)
    if named is False:
        return {}
    out: dict[str, dict] = {}
    for metric, opts in (named or {}).items():
        if opts is not False:
            out[metric] = dict({k: v for k, v in (opts or {}).items() if v is not None},
                               _source="suite", _defaulted=())
    if not defaults:
        return out
    for model in (suite_result.get("models") or {}).values():
        for metric, info in (model.get("metrics") or {}).items():
            if "." in metric or info.get("kind") != "proportion" or (named or {}).get(metric) is False:
                continue
            if metric not in out:
                out[metric] = {"_source": "default", "_defaulted": ()}
            own = (named or {}).get(metric) or {}
            filled = tuple(k for k in DEFAULT_POLICY if k not in own and k not in out[metric])
            out[metric].update({k: DEFAULT_POLICY[k] for k in filled})
            out[metric]["_defaulted"] = tuple(sorted(set(out[metric]["_defaulted"]) | set(filled)))
    return out


def written_baseline_bounds(suite: Suite) -> list[str]:
    """The bounds against the baseline the suite's policy writes (``keywords max_drop_vs_baseline``,
    ``keywords[sql] rel_tolerance_vs_baseline``), the defaults left out: a run without a baseline
    checks none of them, and said nothing of it (``harness.baseline.unchecked_baseline_note``)."""
    kinds = ("max_drop_vs_baseline", "min_gain_vs_baseline", "rel_tolerance_vs_baseline")
    out = []
    for metric, opts in policy(suite, {}, defaults=False).items():
        out += [f"{metric} {kind}" for kind in kinds if kind in opts]
        for category, cat_opts in (opts.get("categories") or {}).items():
            out += [f"{metric}[{category}] {kind}" for kind in kinds if (cat_opts or {}).get(kind) is not None]
    return out


def comparisons_for(suite_result: dict, baseline_suite: dict | None) -> dict:
    """Every metric's paired delta vs base and vs baseline (JSON-ready), for gates and reports."""
    return _jsonable(suite_comparisons(suite_result, baseline_suite))


def evaluate_gates(suite: Suite, suite_result: dict, baseline_suite: dict | None,
                   comparisons: dict | None = None, *, defaults: bool = True) -> tuple[list[dict], list[str]]:
    """Apply the suite's policy to one suite's results.

    ``suite_result`` is the suite entry of results.json (models with metrics and
    items); ``baseline_suite`` the same suite in the approved baseline (see
    ``harness.baseline.baseline_suite``) or None. Returns (gates, warnings); each gate
    is ``{suite, model, metric, kind, passed, reason, details}``.

    ``comparisons`` is ``comparisons_for(suite_result, baseline_suite)`` when the caller
    already has it (the runner stores it for the reports); nothing is written here.
    ``defaults=False`` applies the written options only (a category's gates).
    """
    models = suite_result.get("models") or {}
    if comparisons is None:
        comparisons = comparisons_for(suite_result, baseline_suite)
    views = {name: model_view(m) for name, m in models.items()}
    baseline_views = {n: model_view(m) for n, m in ((baseline_suite or {}).get("models") or {}).items()}
    candidates = [n for n in models if n != "base"] or [n for n in models if n == "base"]
    skipped = {n: s.get("skipped") for n, s in (suite_result.get("scorers") or {}).items()
               if isinstance(s, dict) and s.get("skipped")}
    name = suite_result.get("name") or suite.name
    gates: list[dict] = []
    warnings: list[str] = []
    powered: set[tuple[str, str]] = set()

    def warn(text: str) -> None:
        if text not in warnings:
            warnings.append(text)

    # A candidate or suite the baseline lacks: harness.baseline.baseline_coverage (warning or,
    # with --strict-baseline, a failed gate), checked by runner.finish.

    for metric, opts in policy(suite, suite_result, defaults).items():
        scorer = metric.split(".", 1)[0]
        if scorer in skipped:
            found = _unmeasured_gates(suite, name, metric, opts, skipped[scorer], candidates, models,
                                      baseline_suite is not None)
            gates += found
            if not found:  # a default gate, or one that would have checked nothing in this run anyway
                warn(f"gates on {metric} not checked: scorer {scorer} was skipped ({skipped[scorer]})")
            continue
        source = opts.get("_source", "suite")
        for cand in candidates:
            view = views[cand]
            hib = opts.get("higher_is_better", higher_is_better(metric, view))

            def gate(kind: str, passed: bool, reason: str, details: dict) -> None:
                origin = "default" if kind in opts.get("_defaulted", ()) else source
                # the option as written (a margin, a floor): a baseline keeps it, so a later run
                # can say that a gate was loosened since approval (policy_changes)
                limit = {"limit": float(opts[kind])} if kind in BOUNDS else {}
                gates.append({"suite": name, "model": cand, "metric": metric, "kind": kind,
                              "passed": bool(passed), "reason": reason,
                              "details": _jsonable(dict(details, policy=origin, higher_is_better=hib, **limit))})

            if metric not in view.metrics or view.metrics[metric].get("value") is None:
                # a default gate too when a reference has the metric: a pass/fail scorer that gave
                # the candidate no value at all (None for every empty answer) made no gate, and
                # the run said 'no gate applied ... measured, not gated', exit 0
                references = ([views.get("base")] if cand != "base" else []) + [baseline_views.get(cand)]
                if source == "suite" or any(r is not None and (r.metrics.get(metric) or {}).get("value") is not None
                                            for r in references):
                    gate("missing", False, f"{metric}: the run produced no value for this gated metric "
                         f"(metrics: {', '.join(sorted(view.metrics)) or 'none'})", {})
                continue
            info = view.metrics[metric]
            if "higher_is_better" not in opts and info.get("kind") != "proportion" \
                    and any(k.startswith(("max_drop_", "rel_tolerance_", "min_gain_")) for k in opts):
                _require_direction(suite, metric)
            bounds = [kind for kind in ("min", "max") if kind in opts]
            unscored = _unscored(metric, cand, views, baseline_views) if bounds else []
            for kind in bounds:
                passed, reason, details = _bound_gate(metric, info, kind, float(opts[kind]), unscored, hib,
                                                      is_binary(view, metric))
                gate(kind, passed, reason, details)

            refs: list[tuple[str, str, ModelView | None, str]] = []
            if cand != "base":
                refs.append(("base", "base", views.get("base"), "vs_base"))
            if baseline_suite is not None:
                refs.append(("baseline", f"baseline {cand}", baseline_views.get(cand), "vs_baseline"))
            for ref_kind, ref_label, ref_view, key in refs:
                if ref_view is None:
                    continue
                delta = comparisons.get(cand, {}).get(metric, {}).get(key)
                suffix = f"vs_{ref_kind}"
                wanted = [k for k in (f"max_drop_{suffix}", f"rel_tolerance_{suffix}", f"min_gain_{suffix}")
                          if k in opts]
                if wanted and delta is None:
                    warn(f"{ref_label} has no {metric}; gates against it not checked")
                    continue
                if wanted and delta.get("approximate"):
                    warn(f"{metric} vs {ref_kind}: {delta['approximate']}")
                missing = delta.get("missing") if wanted else None
                if missing and "." in metric:  # a per-item number a scorer gives only where it applies
                    warn(f"{metric} vs {ref_kind}: {_missing_text(missing, ref_label, cand)}")
                for kind in wanted:
                    passed, reason, details = _delta_gate(metric, cand, ref_label, delta, kind, float(opts[kind]), hib)
                    if missing and "." not in metric:
                        # a scorer's own metric with no value where the reference has one: the
                        # interval cannot speak for those items (a plugin giving None for an empty
                        # answer passed a candidate that answered nothing on 10 of 20 items)
                        passed = False
                        reason += f"; {_missing_text(missing, ref_label, cand)}"
                    # a drop on a pass/fail metric: its margin decides whether the items could show it
                    # (a mean whose every value is 0 or 1 was compared as one: its flips are in the delta)
                    drop = kind != f"min_gain_{suffix}" and (is_binary(ref_view, metric) or "flipped_down" in delta)
                    margin = _margin(kind, float(opts[kind]), delta, hib) if drop else 0.0
                    if drop and not passed:
                        reason += _too_few_items(delta, margin, hib)
                    worst = _worst_case(metric, ref_view, view, delta, kind, float(opts[kind]), hib) if drop else None
                    if worst is not None:
                        details["worst_case"] = worst
                    gate(kind, passed, reason, details)
                    if drop and (ref_kind, metric) not in powered:
                        powered.add((ref_kind, metric))
                        # clustered suites: the effective item count (n / design effect)
                        n_eff = int(delta.get("n_eff") or delta["n"])
                        text = power_warning(n_eff, margin, delta["ref_value"]) if margin > 0 else None
                        if text and n_eff < delta["n"]:
                            text = (f"{text} (clustered: {delta['n']} items in {delta.get('clusters')} clusters, "
                                    f"design effect {delta['design_effect']:.2f})")
                        if text:
                            warn(f"{metric} vs {ref_kind}: {text}")
                if opts.get("critical") and delta is not None:
                    gate(f"critical_{suffix}", *_critical_gate(metric, cand, ref_label, delta,
                                                              [str(i) for i in opts["critical"]],
                                                              ref_view, view, hib))
    for metric, opts in (suite.gates or {}).items():
        for category, cat_opts in ((opts or {}).get("categories") or {}).items():
            cat_gates, cat_warnings = _category_gates(suite, name, suite_result, baseline_suite, metric,
                                                      str(category), cat_opts or {})
            gates += cat_gates
            for text in cat_warnings:
                warn(text)
    if gates:
        cases = getattr(suite, "cases", None) or []
        hint = (getattr(suite, "cluster_warning", None) if getattr(suite, "cluster", None)
                else cluster_hint(cases))
        if hint:
            warn(hint)
    return gates, warnings


def _unmeasured_gates(suite: Suite, name: str, metric: str, opts: dict, why: str, candidates: list[str],
                      models: dict, has_baseline: bool) -> list[dict]:
    """A failed ``unmeasured`` gate per candidate for a gate the suite wrote on a metric whose
    scorer this run skipped (``harness score`` has no model; an endpoint returns text only, no
    logits or timings). It was a warning, and the run said PASS: ``latency: {max: 2.0}`` run
    through ``--endpoint`` was a green verdict that checked nothing. Only the options that
    would have been checked in this run (a drop gate against the base needs a candidate that
    is not the base; against the baseline, a baseline) count; the defaults stay a warning."""
    if opts.get("_source", "suite") != "suite":
        return []
    written = [k for k in opts if k in BOUNDS and k not in opts.get("_defaulted", ())]
    written += ["critical"] if opts.get("critical") else []
    keys = getattr(suite, "gate_keys", None) or ["gates", metric]
    root = getattr(suite, "root", None)
    line = node_line(root, keys) if root is not None else None
    path = getattr(suite, "path", None)
    where = f"{path}:{line}" if path and line else str(path or f"suite {name!r}")
    out = []
    for cand in candidates:
        kinds = [k for k in written if _checked_in_run(k, cand != "base" and "base" in models, has_baseline)]
        if not kinds:
            continue
        out.append({"suite": name, "model": cand, "metric": metric, "kind": "unmeasured", "passed": False,
                    "reason": f"suite {name!r} gates {metric} ({', '.join(kinds)}), but scorer "
                              f"{metric.split('.', 1)[0]} was skipped in this run ({why}), so nothing was "
                              f"checked: measure it with `harness eval --model` on the weights themselves (a "
                              f"loaded model, generating afresh), or remove the gate ({where}, "
                              f"{'.'.join(str(k) for k in keys)})",
                    "details": {"policy": "suite", "skipped": why, "written": kinds}})
    return out


def _checked_in_run(kind: str, vs_base: bool, has_baseline: bool) -> bool:
    """Whether a gate option would be checked in this run had its metric been measured: a
    drop gate against the base needs a candidate besides the base, one against the baseline
    a baseline (its absence is ``baseline.unchecked_baseline_note``'s), ``critical`` either."""
    if kind.endswith("_vs_base"):
        return vs_base
    if kind.endswith("_vs_baseline"):
        return has_baseline
    return kind in ("min", "max") or vs_base or has_baseline


# the failed gates --strict-baseline makes of policy_changes: no item is behind them
POLICY_GATE_KINDS = ("policy_dropped", "policy_loosened", "cluster_removed")


def policy_changes(suite: Suite, suite_result: dict, baseline_suite: dict | None) -> list[str]:
    """Gates the baseline was approved under that the suite's policy now drops or loosens.

    Gates are policy, not content (the suite's hashes leave them out, so editing a margin does
    not void a baseline); but ``keywords: false``, ``gates: false`` or a margin widened from
    0.25 to 0.9 in a pull request let the regression through that the approved gates caught,
    and the run said PASS with nothing said. Named per (metric, kind), for the candidates the
    run and the baseline share; a loosened margin only where the baseline kept it (``limit``).
    """
    return [text for text, _ in _policy_findings(suite, suite_result, baseline_suite)]


def policy_change_gates(suite: Suite, suite_result: dict, baseline_suite: dict | None) -> list[dict]:
    """``policy_changes`` as failed gates, one per (candidate, metric, kind), for
    ``--strict-baseline``: a pull request that loosens a gate against the approved baseline is
    what a strict CI blocks. Each names the gate and both limits (``approved`` and ``now``;
    ``now`` None for a gate that is gone)."""
    gates = []
    for _, found in _policy_findings(suite, suite_result, baseline_suite):
        for model, metric, kind, gate_kind, approved, now, reason in found:
            gates.append({"suite": suite.name, "model": model, "metric": metric, "kind": kind, "passed": False,
                          "reason": reason + " (--strict-baseline)",
                          "details": {"gate": gate_kind, "approved": approved, "now": now}})
    return gates


def _policy_findings(suite: Suite, suite_result: dict, baseline_suite: dict | None) -> list[tuple[str, list[tuple]]]:
    """(warning text, [(model, metric, kind, the approved gate's kind, approved limit, limit now,
    gate reason)]) per change; kinds ``POLICY_GATE_KINDS``."""
    if not baseline_suite:
        return []
    run_models = set(suite_result.get("models") or {})
    current = policy(suite, suite_result)
    written = (suite.raw or {}).get("gates", suite.gates)
    written = written if isinstance(written, dict) else {}
    gone: dict[tuple[str, str], list[tuple[str, Any]]] = {}
    looser: dict[tuple[str, str, float, float], list[str]] = {}
    shared: list[str] = []
    for g in baseline_suite.get("gates") or []:
        model, metric, kind = g.get("model"), str(g.get("metric") or ""), str(g.get("kind") or "")
        if model not in run_models or model == "base" and len(run_models) > 1:
            continue
        if kind not in BOUNDS and not kind.startswith("critical_vs_"):
            continue  # integrity, baseline_missing, a backend's own, a strict run's policy gates
        if str(model) not in shared:
            shared.append(str(model))
        if metric.endswith("]") and "[" in metric:  # a category gate: only the options written for it
            name, category = metric[:-1].split("[", 1)
            entry = written.get(name)
            opts = ((entry or {}).get("categories") or {}).get(category) if isinstance(entry, dict) else None
            opts = {k: v for k, v in (opts or {}).items() if v is not None}
        else:
            opts = current.get(metric) or {}
        present = bool(opts.get("critical")) if kind.startswith("critical_vs_") else kind in opts
        if not present:
            gone.setdefault((metric, kind), []).append((str(model), g.get("limit")))
            continue
        approved = g.get("limit")
        if isinstance(approved, (int, float)) and kind in _LOOSER_WHEN_LARGER:
            now = float(opts[kind])
            if (now > approved) if _LOOSER_WHEN_LARGER[kind] else (now < approved):
                looser.setdefault((metric, kind, float(approved), now), []).append(str(model))
    out: list[tuple[str, list[tuple]]] = []
    clustered = any(i.get("cluster") is not None for m in (baseline_suite.get("models") or {}).values()
                    if isinstance(m, dict) for i in m.get("items") or [])
    if clustered and not getattr(suite, "cluster", None):  # intervals count items again, not clusters
        text = ("the baseline was approved with `cluster:` and the suite no longer declares it: the "
                "intervals against the base count items as independent again, narrower than the approved "
                "gates' (re-approve the baseline if the change is meant)")
        models = shared or sorted(m for m in run_models if m != "base" or len(run_models) == 1)
        out.append((text, [(m, "cluster", "cluster_removed", None, "declared", None,
                            "`cluster:` removed since the baseline was approved (approved: declared; now: none): "
                            "the intervals against the base count items as independent again") for m in models]))
    if gone:
        listed = "; ".join(f"{metric} {kind} ({', '.join(m for m, _ in found)})" for (metric, kind), found in gone.items())
        out.append((f"gates the baseline was approved under are gone from the suite's policy: {listed}; a "
                    f"regression they caught passes unseen (re-approve the baseline if the change is meant)",
                    [(model, metric, "policy_dropped", kind, limit, None,
                      f"gate {metric} {kind} dropped since the baseline was approved (approved: "
                      f"{_limit_text(limit)}; now: none)")
                     for (metric, kind), found in gone.items() for model, limit in found]))
    for (metric, kind, approved, now), models in looser.items():
        out.append((f"gate {metric} {kind} loosened since the baseline was approved: {fmt(approved)} -> {fmt(now)} "
                    f"({', '.join(models)}; re-approve the baseline if the change is meant)",
                    [(model, metric, "policy_loosened", kind, approved, now,
                      f"gate {metric} {kind} loosened since the baseline was approved (approved: {fmt(approved)}; "
                      f"now: {fmt(now)})") for model in models]))
    return out


def _limit_text(limit: Any) -> str:
    """An approved gate's limit: its number, or 'in force' where the baseline kept none (a
    critical-items gate, or a baseline approved before limits were recorded)."""
    if isinstance(limit, (int, float)) and not isinstance(limit, bool):
        return fmt(limit)
    return "in force"


# A record field that names what several items are about (a table, a document): its items
# are not independent evidence, and without `cluster:` the intervals are too narrow (a drop
# gate at the margin passed 13% of the time at 10 clusters, intra-cluster correlation 0.3;
# docs/ci-gating.md).
_GROUP_FIELD = re.compile(r"(?:^|_)(?:id|table|doc|document|source|context|passage|article|file|"
                          r"conversation|thread|repo|repository)$", re.IGNORECASE)


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def cluster_hint(cases: list) -> str | None:
    """A warning when items share values of a field such as ``table_id`` (or ``meta.table_id``,
    one mapping down) and the suite has no ``cluster:``; None when no field looks like a
    grouping (about two items per value or more). Field names only: a group written inside a
    text field is the author's to declare (``cluster: "{{ text.split('\\n')[0] }}"``)."""
    n = len(cases)
    if n < 4:
        return None
    values: dict[tuple[str, ...], list[str]] = {}
    for case in cases:
        for key, value in (getattr(case, "record", None) or {}).items():
            if key in ("id", "category"):
                continue
            if _scalar(value):
                values.setdefault((str(key),), []).append(str(value))
            elif isinstance(value, dict):
                for inner, leaf in value.items():
                    if _scalar(leaf):
                        values.setdefault((str(key), str(inner)), []).append(str(leaf))
    for path, found in values.items():
        key, groups = path[-1], len(set(found))
        if len(found) == n and _GROUP_FIELD.search(key) and 2 <= groups <= n // 2:
            inner = path[1] if len(path) > 1 else ""
            # YAML the author can paste: a name as is, anything else (a template) JSON-quoted
            spec = key if len(path) == 1 else ("{{ " + path[0] + (
                f".{inner}" if inner.isidentifier() else f"[{json.dumps(inner)}]") + " }}")
            line = "cluster: " + (spec if spec.isidentifier() else json.dumps(spec, ensure_ascii=False))
            return (f"{n} items share {groups} values of `{'.'.join(path)}`: items about one {key} are not "
                    f"independent evidence, and the intervals then read too narrow; if so, set "
                    f"`{line}` (docs/ci-gating.md, Clustered items)")
    return None


def idle_cluster(cases: list, spec: str) -> str | None:
    """A warning when a declared ``cluster:`` cannot cluster: every item in one cluster (the
    intervals cannot count clusters: a template that renders the same text for every record)
    or each item its own (it changes nothing: a template that renders the whole record)."""
    n = len(cases)
    groups = len({getattr(case, "cluster", None) for case in cases})
    if n < 4 or 1 < groups < n:
        return None
    what = (f"puts all {n} items in one cluster: intervals need two or more clusters to count them"
            if groups == 1 else f"gives each of the {n} items a cluster of its own: it changes no interval")
    shown = json.dumps(spec, ensure_ascii=False) if "{{" in spec else spec  # a template's \\n stays one line
    return (f"`cluster: {shown}` {what}; if the items do share groups (a table, a document), make "
            f"`cluster:` give each record its group (docs/ci-gating.md, Clustered items)")


def category_slice(suite_result: dict | None, category: str) -> dict | None:
    """The suite's results restricted to one category: its metrics and its items."""
    if suite_result is None:
        return None
    models = {}
    for name, m in (suite_result.get("models") or {}).items():
        models[name] = dict(m, metrics=dict(((m.get("categories") or {}).get(category)) or {}),
                            items=[i for i in m.get("items") or [] if i.get("category") == category])
    return dict(suite_result, models=models)


def _category_gates(suite: Suite, name: str, suite_result: dict, baseline_suite: dict | None, metric: str,
                    category: str, options: dict) -> tuple[list[dict], list[str]]:
    """``gates: {METRIC: {categories: {CAT: options}}}``: the options applied to the items of
    one category alone (its own paired intervals); gate metric ``METRIC[CAT]``. Only those
    options: the suite-wide defaults would add gates on every other pass/fail metric (named
    ``METRIC[CAT]`` all the same) and 0.05 drop gates that a category's few items cannot pass."""
    from types import SimpleNamespace

    sub = category_slice(suite_result, category)
    if not any(m["items"] for m in sub["models"].values()):
        return [], [f"gates on {metric} in category {category!r} not checked: this run has no items in it"]
    policy_only = SimpleNamespace(name=name, raw={"gates": {metric: options}}, gates={metric: options},
                                  path=getattr(suite, "path", None), root=getattr(suite, "root", None),
                                  gate_keys=["gates", metric, "categories", category])
    gates, warnings = evaluate_gates(policy_only, sub, category_slice(baseline_suite, category),  # type: ignore[arg-type]
                                     defaults=False)
    for g in gates:
        g["metric"] = f"{metric}[{category}]"
        g["reason"] = f"category {category}: {g['reason']}"
        g["details"]["category"] = category
    return gates, [f"category {category}: {w}" for w in warnings]


def _missing_text(missing: list[str], ref_label: str, cand: str) -> str:
    shown = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
    return (f"{len(missing)} item(s) scored for {ref_label} have no value for {cand} ({shown}): left out of the "
            f"interval, where a failure the scorer gave no value would hide")


def _unscored(metric: str, cand: str, views: dict, baseline_views: dict) -> list[str]:
    """The candidate's items with no value for a scorer's own metric that another model of the
    run, or the baseline's same model, has one for: a scorer's None where an answer failed (a
    plugin's 'nothing to score' for an empty answer). A floor counted only the scored items."""
    if "." in metric:  # a per-item number (Score.metrics) may apply to some items only
        return []
    own = views[cand].series.get(metric) or {}
    others = [v for name, v in views.items() if name != cand] + [baseline_views.get(cand)]
    scored = {i for v in others if v is not None for i in (v.series.get(metric) or {})}
    return [i for i in views[cand].categories if i not in own and i in scored]


def _bound_gate(metric: str, info: dict, kind: str, limit: float, unscored: list[str] | None = None,
                hib: bool = True, binary: bool = False) -> tuple[bool, str, dict]:
    """A floor or ceiling. ``unscored`` (``_unscored``): on a pass/fail metric each counts as a
    failed item (the proportion over all the items); on another metric the gate fails, as a
    drop gate does, since no value stands for them."""
    value = float(info["value"])
    ci = _ci_text(info.get("ci_low"), info.get("ci_high"))
    n = info.get("n")
    extra: dict = {}
    if unscored and binary and isinstance(n, int) and n >= 0:
        passes = round(value * n) if hib else n - round(value * n)  # the items that passed
        n += len(unscored)
        value = passes / n if hib else 1 - passes / n
        low, high = wilson(passes, n)
        if not hib:
            low, high = 1 - high, 1 - low
        ci = _ci_text(low, high)
        extra = {"ci_low": low, "ci_high": high, "unscored": unscored}
    if kind == "min":
        passed = value >= limit - _EPS
        verdict = f"at or above the floor {fmt(limit)}" if passed else f"below the floor {fmt(limit)}"
    else:
        passed = value <= limit + _EPS
        verdict = f"at or below the ceiling {fmt(limit)}" if passed else f"above the ceiling {fmt(limit)}"
    reason = f"{metric} = {fmt(value)} ({ci}n={n}), {verdict}"
    if unscored:
        shown = ", ".join(unscored[:5]) + (", …" if len(unscored) > 5 else "")
        if binary:
            reason += f"; {len(unscored)} item(s) with no value counted as failed ({shown})"
        else:
            passed = False
            reason += (f"; {len(unscored)} item(s) another model has a value for have none here ({shown}): "
                       "no value stands for them")
    details = {"value": value, "ci_low": info.get("ci_low"), "ci_high": info.get("ci_high"), "n": n,
               "threshold": limit}
    details.update(extra)
    return passed, reason, details


def _margin(kind: str, value: float, delta: dict, hib: bool) -> float:
    if kind.startswith("rel_tolerance"):
        return value * abs(delta["ref_value"])
    return value


def _too_few_items(delta: dict, margin: float, hib: bool = True) -> str:
    """For a failed drop gate that its items could not have passed: the clause that says so,
    so the FAILED line names the cause (too few items) and not only the bound.

    Not when the point estimate itself is past the margin: then the measured drop, not the
    item count, failed the gate (any number of items would fail it), and "an equally good
    model would likely fail this gate too: widen the margin" sent a user whose adapter lost
    every item (keywords 1.000 -> 0.000 on 30 items) to loosen the gate instead."""
    n_eff = int(delta.get("n_eff") or delta["n"])
    if n_eff <= 0 or margin <= 0 or power_warning(n_eff, margin, delta["ref_value"]) is None:
        return ""
    diff = delta.get("diff")
    if diff is not None and (diff < -margin - _EPS if hib else diff > margin + _EPS):
        return ""
    shows = smallest_margin(n_eff, expected_discordance(delta["ref_value"]))
    items = f"{n_eff} effective items" if n_eff < delta["n"] else f"{n_eff} items"
    return (f"; {items} can only show a margin of about {shows:.3f}, so an equally good model "
            f"would likely fail this gate too: add items, or widen the margin (see the warnings)")


def _within_margin(delta: dict, margin: float, hib: bool) -> bool:
    """A drop or tolerance gate's rule: the worse-side bound of the paired interval clears the
    margin. One place, so the gate and its worst case (``_worst_case``) can never disagree."""
    return delta["ci_low"] >= -margin - _EPS if hib else delta["ci_high"] <= margin + _EPS


def _worst_candidate(ref: ModelView, cand: ModelView, series: str, bad: float) -> ModelView:
    """The candidate at its worst on the items it shares with the reference: every paired item
    at the metric's bad value (``bad``), nothing else changed (its clusters, categories and
    metric kinds kept, no outputs, so no item counts as an identical output)."""
    ids = [i for i in (ref.series.get(series) or {}) if i in (cand.series.get(series) or {})]
    return ModelView(metrics=cand.metrics, series={series: {i: bad for i in ids}},
                     categories=cand.categories, clusters=cand.clusters)


def _worst_case(metric: str, ref: ModelView, cand: ModelView, delta: dict, kind: str, value: float,
                hib: bool) -> dict | None:
    """Whether a drop or tolerance gate on a pass/fail-compared metric could fail at all: the
    worst candidate on the same paired items (every item the reference passes flipped to fail,
    nothing gained) run through the same ``paired_delta`` and rule as the gate, clusters and
    design effect included. A reference passing 9 of 64 items cannot drop by more than 0.141,
    and Tango's lower bound for losing all nine is -0.246: at ``max_drop_vs_base: 0.25`` a
    candidate failing every item passed (domain_qa ``keywords``), and the green badge said
    the gate vouched for something. None where it does not apply (not pass/fail, a gain gate,
    a gate whose direction is not the one the flips count in)."""
    if "flipped_down" not in delta or kind.startswith("min_gain") or not delta.get("series"):
        return None
    lower_better = delta.get("worse") == "0→1"
    if lower_better == hib:  # the flips count the other way than the gate reads them
        return None
    worst = paired_delta(ref, _worst_candidate(ref, cand, delta["series"], 1.0 if lower_better else 0.0), metric)
    if worst is None or "flipped_down" not in worst or worst.get("n") != delta.get("n") or worst.get("flipped_up"):
        return None
    if any(worst.get(k) is None or math.isnan(worst[k]) for k in ("ci_low", "ci_high")):
        return None
    out = {"passes": len(worst["flipped_down"]), "n": worst["n"], "ci_low": worst["ci_low"],
           "ci_high": worst["ci_high"], "passed": _within_margin(worst, _margin(kind, value, delta, hib), hib)}
    if worst.get("design_effect") is not None:
        out["design_effect"] = worst["design_effect"]
    return out


def _delta_gate(metric: str, cand: str, ref_label: str, delta: dict, kind: str, value: float,
                hib: bool) -> tuple[bool, str, dict]:
    diff, low, high = delta["diff"], delta["ci_low"], delta["ci_high"]
    paired = delta.get("series") is not None
    no_interval = any(x is None or (isinstance(x, float) and math.isnan(x)) for x in (diff, low, high))
    # a point-only delta's bounds are the points (a peak memory's max): the rule reads them, the
    # reason does not call them an interval
    bounds = ("" if no_interval else  # the reason says so, and why
              f"95% CI {fmt(low, signed=True)} to {fmt(high, signed=True)}, " if has_interval(delta) else
              "point estimates only, no interval: the point decides, ")
    head = (f"{metric}: {cand} - {ref_label} = {fmt(diff, signed=True)} "
            f"({bounds}{'paired, ' if paired else 'unpaired, '}n={delta['n']}"
            f"{_cluster_text(delta)}; "
            f"{fmt(delta['cand_value'])} vs {fmt(delta['ref_value'])})")
    details = {k: delta.get(k) for k in ("diff", "ci_low", "ci_high", "n", "ref_value", "cand_value", "method",
                                         "mcnemar_p", "flipped_down", "flipped_up", "worse", "statistic",
                                         "clusters", "design_effect", "n_eff", "approximate", "missing")
               if k in delta}
    if no_interval:  # None: NaN once stored
        return False, f"{head}: no interval could be computed{_why_no_interval(delta)}", details
    if kind.startswith("min_gain"):
        gain = value
        passed = (low > gain + _EPS) if hib else (high < -gain - _EPS)
        bound_name = "lower" if hib else "upper"
        target = f"{'+' if hib else '-'}{fmt(gain)}"
        rule = f"required gain {fmt(gain)}: the {bound_name} bound is {'beyond' if passed else 'not beyond'} {target}"
        details.update(margin=gain)
    else:
        margin = _margin(kind, value, delta, hib)
        rel = f" ({value:.0%} of {fmt(delta['ref_value'])})" if kind.startswith("rel_tolerance") else ""
        passed = _within_margin(delta, margin, hib)
        if hib:
            rule = (f"allowed drop {fmt(margin)}{rel}: the lower bound is "
                    f"{'above' if passed else 'below'} -{fmt(margin)}")
        else:
            rule = (f"allowed increase {fmt(margin)}{rel}: the upper bound is "
                    f"{'below' if passed else 'above'} +{fmt(margin)}")
        details.update(margin=margin)
    reason = f"{head}; {rule}"
    if delta.get("approximate"):
        reason += f"; approximate: {delta['approximate']}"
    if "flipped_down" in delta:
        down, up = delta["flipped_down"], delta["flipped_up"]
        # the change the delta says its items went through: pass→fail on a pass rate, 1→0 on a
        # mean of 0/1 values, 0→1 where lower is better (a new leak is no pass→fail); the items
        # that got better in the same words (they read '3 better', with no change named)
        reason += f"; {len(down)} {_went(delta, worse=True)}"
        if down:
            reason += " (" + ", ".join(down[:8]) + (", …" if len(down) > 8 else "") + ")"
        reason += f", {len(up)} {_went(delta, worse=False)}; McNemar p={delta['mcnemar_p']:.3g}"
    return passed, reason, details


def _critical_gate(metric: str, cand: str, ref_label: str, delta: dict, critical: list[str],
                   ref: ModelView, view: ModelView, hib: bool) -> tuple[bool, str, dict]:
    """Critical items that got worse in ``hib``, the direction every gate on the metric reads
    (on a lower-is-better one, a plugin's leak rate or keywords.forbidden, 0→1; 1→0 there is a
    fix, and failed this gate). It re-read the metric's recorded direction, which a gate's own
    ``higher_is_better`` on a plugin scorer that states none does not change: it failed a fix
    and passed a new failure there. Its words are the delta's (a 0/1 mean's 1→0 read
    'pass→fail' here while the delta and the drop gate beside it said 1→0)."""
    series_ref, series_cand = ref.series.get(metric, {}), view.series.get(metric, {})
    checked = [i for i in critical if i in series_ref and i in series_cand]
    missing = [i for i in critical if i not in checked]
    good = 1.0 if hib else 0.0
    counted = delta  # its `worse`: the change of the items it counts as worse
    if "worse" in delta and (delta["worse"] == "0→1") == hib:
        # the delta counted in the recorded direction, this gate reads the other: its worse items
        # went 0→1 (a gate can only turn an unstated direction, assumed higher, to lower;
        # validate_policy refuses any other reversal)
        counted = {"worse": "0→1"} if not hib else {}
    went = _went(counted, worse=True)
    down = [i for i in checked if series_ref[i] == good and series_cand[i] == 1.0 - good]
    at_risk = [i for i in checked if series_ref[i] == good]  # only these can get worse
    if down:
        reason = (f"{metric}: critical item(s) {went} against {ref_label}: {', '.join(down)} "
                  f"({len(checked)} critical items checked)")
    else:
        reason = f"{metric}: none of {len(checked)} critical items {went} against {ref_label}"
        if checked and not at_risk:
            ref = ref_label.split(' ')[0]
            # lower is better: the reference "passes" them all (toxic, leaked), at the worse end
            reason += (f"; the {ref} passes none of them, so none could" if hib else
                       f"; the {ref} is already at 1, the worse value, on all of them, so none could")
    if missing:
        reason += f"; not in this run: {', '.join(missing)}"
    details = {"critical": critical, "checked": checked, "flipped_down": down, "missing": missing, "at_risk": at_risk}
    if "worse" in counted:  # as a delta's: what down did
        details["worse"] = counted["worse"]
    return not down, reason, details


def _went(delta: dict, worse: bool) -> str:
    """What a delta's flipped items did, as a gate's reason says it after their count: 'flipped
    pass→fail' / 'fail→pass' on a pass rate, else ``flip_label``'s 'got worse (1→0)', 'got better
    (0→1)' (the delta's ``worse`` through ``flip_change``: the words junit and compare use)."""
    change = flip_label({flip_change(delta, worse=worse)}, worse=worse)
    return f"flipped {change}" if change == "pass→fail" else change


def _why_no_interval(delta: dict) -> str:
    """Why a delta has no bounds, where it can be said: every paired item in one cluster (the
    bootstrap resamples clusters, and one cluster resamples to itself: ``stats``' NaN bounds),
    which a generic 'no interval' left the user to work out."""
    if delta.get("clusters") != 1 or delta.get("n", 0) < 2:
        return ""
    return (f": all {delta['n']} items are in one cluster, and an interval counts clusters (one cluster "
            f"has nothing to vary); give `cluster:` groups of fewer items each (two clusters or more), or "
            f"remove `cluster:` if the items are independent (a --limit or --only-failing subset may hold "
            f"a single cluster: run more of the suite)")


def _cluster_text(delta: dict) -> str:
    if delta.get("design_effect") is None:
        return ""
    return (f" in {delta.get('clusters')} cluster{'' if delta.get('clusters') == 1 else 's'}, design effect {delta['design_effect']:.2f}, "
            f"effective n={delta.get('n_eff', delta['n']):.0f}")


def _ci_text(low: Any, high: Any) -> str:
    if low is None or high is None:
        return ""
    return f"95% CI {fmt(low)}–{fmt(high)}, "


def _jsonable(obj: Any) -> Any:
    """NaN/inf to None so results.json stays strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def vacuous(gate: dict, info: dict | None = None) -> bool:
    """A bound no value can miss, so passing it says nothing: a floor at or below 0, a
    ceiling at or above 1 on a proportion, a drop gate whose reference already sits at a
    proportion's worst value (a base at 0.000 cannot be dropped below), or a critical-items
    gate with no critical item the reference passes (none in the run, or all failed there),
    or a drop gate on a pass/fail-compared metric that even the worst candidate passes (every
    item the reference passes flipped to fail: ``details.worst_case``, decided by the gate's own
    interval and rule when the gate was evaluated; a reference passing 9 of 64 under a 0.25 margin)."""
    kind = str(gate.get("kind") or "")
    details = gate.get("details") or {}
    # a mean compared as pass/fail (every value 0 or 1: its flips are in the details) is bounded
    # as a proportion is: a reference at 0 on every item cannot be dropped below
    proportion = (info or {}).get("kind") == "proportion" or (
        kind.startswith(("max_drop_vs_", "rel_tolerance_vs_")) and "flipped_down" in details)
    if kind.startswith("critical_vs_"):  # no critical item the reference passes: none can flip
        return details.get("at_risk") == []
    if kind.startswith(("max_drop_vs_", "rel_tolerance_vs_")):
        if (details.get("worst_case") or {}).get("passed") is True:
            return True
        return proportion and _reference_at_worst(details)
    threshold = details.get("threshold")
    if not isinstance(threshold, (int, float)):
        return False
    if kind == "min":
        return threshold <= 0
    if kind == "max":
        return proportion and threshold >= 1
    return False


def vacuous_bound(gate: dict, info: dict | None = None) -> bool:
    """A vacuous floor or ceiling: vacuous by its configuration, whatever the run scored."""
    return gate.get("kind") in ("min", "max") and vacuous(gate, info)


def vacuous_reason(gate: dict) -> str:
    """Why a vacuous gate could not fail, in a few words (for badges and summaries)."""
    details = gate.get("details") or {}
    if gate.get("kind") in ("min", "max"):
        return f"{'floor' if gate.get('kind') == 'min' else 'ceiling'} {fmt(details.get('threshold'))}"
    ref = "base" if str(gate.get("kind")).endswith("_vs_base") else "baseline"
    if str(gate.get("kind")).startswith("critical_vs_"):
        return f"{ref} passes no critical item" if details.get("checked") else "no critical item in this run"
    worst = details.get("worst_case") or {}
    if worst.get("passed") is True and not _reference_at_worst(details):
        return (f"even a candidate failing every item would pass: the {ref} passes only "
                f"{worst.get('passes')} of {worst.get('n')}")
    return f"{ref} already at {fmt(details.get('ref_value'))}"


def _reference_at_worst(details: dict) -> bool:
    """A drop gate's reference already at a proportion's worst value (0, or 1 where lower is
    better): no candidate can be worse. One test, for ``vacuous`` and ``vacuous_reason``."""
    ref = details.get("ref_value")
    if not isinstance(ref, (int, float)) or isinstance(ref, bool):
        return False
    return ref <= 0 if details.get("higher_is_better", True) else ref >= 1


def gate_info(suite_result: dict, gate: dict) -> dict | None:
    """The candidate's metric entry a gate was decided on (a category gate: its metric's)."""
    metric = str(gate.get("metric") or "").split("[", 1)[0]
    return (((suite_result.get("models") or {}).get(gate.get("model")) or {}).get("metrics") or {}).get(metric)


VACUOUS_PHRASE = "passed but could not have failed"  # one wording for these gates in every report


def could_not_fail(suite_result: dict, gate: dict) -> bool:
    """A passed gate that vouches for nothing (``vacuous`` on the candidate's metric): the
    one test the scorecard, summary.md, junit.xml and the console line all use."""
    return bool(gate.get("passed")) and vacuous(gate, gate_info(suite_result, gate))


def tally(results: dict) -> str:
    """One line on what the gates vouch for: how many passed, failed, and passed but could not
    have failed (the phrase summary.md, the scorecard and junit.xml use for them: they are not
    among the first count, so no one reads "23 of 44 passed; 21 ..." as 21 of the 23).

    A run with no gate (a base alone, no floor, no baseline) is measured, not gated; a
    bare PASS would read as a verdict it is not."""
    gates = [(s, g) for s in results.get("suites") or [] for g in s.get("gates") or []]
    if not gates:
        return "no gate applied: nothing to compare with and no floor; measured, not gated"
    failed = sum(1 for _, g in gates if not g.get("passed"))
    empty = sum(1 for s, g in gates if could_not_fail(s, g))
    text = f"{len(gates) - failed - empty} of {len(gates)} gates passed"
    if failed:
        text += f", {failed} failed"
    if empty:
        text += f"; {empty} {VACUOUS_PHRASE}, see summary.md"
    return text
