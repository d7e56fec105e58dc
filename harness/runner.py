"""`harness eval` and `harness score` end to end: suites x models -> results -> exit code.

    suites (validated) -> base loaded once -> per model (base, each adapter applied in
    turn): per suite: prompts -> cache lookup -> batched generation -> integrity check
    -> scorers -> metrics -> (all models done) gates -> results.json + reports

Generation and scoring are separate steps: ``score_model`` works the same on completions
generated now and on completions read from a file (``harness score``).
"""

from __future__ import annotations

import copy
import dataclasses

import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import __version__, integrity
from .cache import CompletionCache, WriteBehind, completion_key
from .checks import (adapter_prompt_format, format_warning, logit_effect, no_effect_warning, probe_logits,
                     suite_checks, suite_prompt_format)
from .distributed import all_gather_json, broadcast_json, rank_and_size, shard, unshard
from .errors import HarnessError, printable
from .files import bytes_digest, read_input, require_utf8_name
from .generation import Completion, GenerationConfig, Progress, generate
from .metrics import cluster_adjust, suite_metrics
from .models import (MODEL_FINGERPRINT_RECIPE, Base, adapter_applied, check_adapter_base, check_adapter_fits,
                     check_ids_fit, load_base)
from .positions import eval_overrun, model_positions
from .preflight import read_adapter_config
from .prefix import SharedPrefixes
from .progress import Progress as LiveProgress
from .prompts import check_chat_suites, encode_prompt, format_differences
from .reasoning import answer_of, unfinished_warning
from .results import ModelInfo, item_record, new_results, suite_entry
from .scorers import REGISTRY, Item, Score, Scorer, make_scorer
from .suite import Suite, check_unique_names, load_suite
from .validation import RESULTS_SCHEMA, check_output


@dataclass
class ModelSpec:
    name: str
    adapter_path: Path | None = None  # None: the base model itself


def log(message: str) -> None:
    if rank_and_size()[0] == 0:  # under mlx.launch only rank 0 speaks
        from .errors import terminal  # suite, model and item names come from files: no raw escapes

        print(terminal(message), file=sys.stderr, flush=True)


def environment() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    env = {"python": platform.python_version(), "platform": platform.platform(),
           "machine": platform.machine(), "harness": __version__}
    for pkg in ("mlx", "mlx-lm"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = None
    env["world_size"] = rank_and_size()[1]
    try:
        import mlx.core as mx

        env["device"] = str(mx.default_device())
        from .blas import blas_in_use

        env["blas"] = blas_in_use() if sys.platform.startswith("linux") else "Accelerate"
    except Exception as exc:  # report, don't fail the run over diagnostics
        env["device"] = f"unavailable ({type(exc).__name__})"
    from .history import git_commit

    env.setdefault("git_commit", git_commit())  # for `harness history` trends by commit
    return env


def _check_model_name(name: str) -> None:
    """An adapter's name goes into every report, junit.xml's test names and the pytest
    plugin's node ids (``suite.yaml::model: gate``): a line break, a control character or
    ``::`` there split them (a node id with ``::`` in the name cannot rerun its gate), and
    spaces at either end are invisible in the scorecard."""
    import unicodedata

    bad = next((ch for ch in name if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs")), None)
    problem = ("holds a control or invisible character " + printable(repr(bad)) if bad is not None else
               "holds '::' (pytest's node-id separator)" if "::" in name else
               "starts or ends with a space" if name != name.strip() else
               f"is {len(name)} characters long (at most 100)" if len(name) > 100 else None)
    if problem:
        raise HarnessError(f"adapter name {printable(name[:100])!r} {problem}", field="--adapter",
                           hint="name it with letters, digits and - _ . (for example --adapter v2=adapters/v2)")


def parse_adapter_args(values: list[str]) -> list[ModelSpec]:
    specs, seen = [], {"base"}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise HarnessError(f"--adapter {value!r} must be NAME=PATH", field="--adapter",
                               hint="for example --adapter sql=fixtures/adapters/sql")
        _check_model_name(name)
        if name in seen:
            raise HarnessError(f"model name {name!r} is used twice", field="--adapter",
                               hint="give every adapter its own name (and not 'base')")
        seen.add(name)
        specs.append(ModelSpec(name, Path(path)))
    return specs


# --- scoring (shared by eval and score) -------------------------------------------

@dataclass
class ScoreReuse:
    """Where model-computed scores of an unchanged re-run are kept: the completion cache,
    and the identity of the model that computed them."""

    cache: CompletionCache
    model_fingerprint: str
    adapter_fingerprint: str | None


def _scored(scorer: Scorer, items: list[Item], model: Base | None, reuse: ScoreReuse | None) -> list[Score]:
    """``scorer.score_all``, or for a ``reuse_scores`` scorer the scores stored under a key
    of everything they are computed from (a changed model, suite, output or scorer misses)."""
    if reuse is None or not (scorer.needs_model and scorer.reuse_scores and scorer.uses_cache):
        return scorer.score_all(items, model)
    from .cache import score_key

    key = score_key(scorer.name, scorer.version, scorer.options, reuse.model_fingerprint,
                    reuse.adapter_fingerprint,
                    [[it.case.id, it.case.prompt, it.case.target, it.case.record, it.stats.get("prompt_token_ids"),
                      it.output, it.finish_reason] for it in items], reuse.cache.versions)
    stored = reuse.cache.get_json(key)
    if isinstance(stored, list) and len(stored) == len(items):
        try:
            return [Score(d["value"], d["passed"], d["detail"], dict(d.get("metrics") or {}),
                          dict(d.get("extra") or {})) for d in stored]
        except (TypeError, KeyError):
            pass  # not what we wrote: recompute
    result = scorer.score_all(items, model)
    if len(result) == len(items):
        reuse.cache.put_json(key, [s.to_json() for s in result])
    return result


STORED_HAVE_NO_MODEL = "stored completions were scored without one"  # why `harness score` skips


def _answers(completions: list[dict], model: Base | None) -> list:
    """Each completion's answer without a reasoning block (``harness.reasoning``)."""
    tokenizer = model.tokenizer if model is not None else None
    return [answer_of(c, tokenizer) for c in completions]


def _score(suite: Suite, scorers: list[Scorer], completions: list[dict],
           model: Base | None, reuse: ScoreReuse | None = None,
           no_model: str = STORED_HAVE_NO_MODEL, answers: list | None = None
           ) -> tuple[dict[str, list[Score]], dict[str, str]]:
    """Each scorer's per-item scores of one set of completions, and the scorers skipped, each
    with what it needed (``Scorer.model_needs``) and why this run lacked it (``no_model``)."""
    tokenizer = model.tokenizer if model is not None else None
    # a reasoning model's thinking is not its answer (harness.reasoning); a scorer of how the
    # model generates (repetition: a loop inside the thinking is a loop) reads all of it
    whole = [Item(case=case, output=c["output"], finish_reason=c["finish_reason"], stats=c,
                  tokenizer=tokenizer, suite_dir=suite.dir)
             for case, c in zip(suite.cases, completions)]
    answers = answers if answers is not None else _answers(completions, model)
    answered = [item if not a.reasoning_chars else dataclasses.replace(item, output=a.text)
                for item, a in zip(whole, answers)]
    scores: dict[str, list[Score]] = {}
    skipped: dict[str, str] = {}
    for scorer in scorers:
        if scorer.needs_model and model is None:
            skipped[scorer.name] = f"needs a loaded model for {scorer.model_needs}; {no_model}"
            continue
        if not scorer.uses_cache and any(c.get("cached") for c in completions):
            skipped[scorer.name] = "measures live generation; these completions came from a cache or file"
            continue
        spec = next((s for s in suite.scorers if s.name == scorer.name), None)
        where = dict(path=suite.path, field=spec.field if spec else f"scorers: {scorer.name}",
                     hint="fix the scorer, or uninstall the package whose mlx_harness.scorers entry point provides it")
        items = whole if scorer.reads_reasoning else answered
        try:
            result = _scored(scorer, items, model, reuse)
        except HarnessError:
            raise
        except Exception as exc:  # a plugin's bug: say which scorer, not a bare internal error
            if scorer.name in REGISTRY:
                raise
            raise HarnessError(f"plugin scorer {scorer.name!r} raised {type(exc).__name__}: {exc}", **where) from None
        if len(result) != len(items):
            raise RuntimeError(f"scorer {scorer.name} returned {len(result)} scores for {len(items)} items")
        for item, score in zip(items, result):
            why = (score.problem() or scorer.range_problem(score) if isinstance(score, Score)
                   else f"it returned {type(score).__name__}, not a Score")
            if why:  # NaN was an internal error ('not JSON compliant: nan') naming no scorer and no item
                text = f"scorer {scorer.name!r} gave item {item.case.id!r} a score it cannot count: {why}"
                if scorer.name in REGISTRY:
                    raise RuntimeError(text)
                raise HarnessError(f"plugin {text}", **where)
        scores[scorer.name] = result
    return scores, skipped


def score_model(suite: Suite, scorers: list[Scorer], completions: list[dict], fingerprint: str,
                model: Base | None, reuse: ScoreReuse | None = None,
                no_model: str = STORED_HAVE_NO_MODEL) -> tuple[dict, dict]:
    """Score one model's completions (dicts as Completion.to_json) on one suite.

    Returns (the results.json model object, {scorer: skip reason}); ``no_model``: why a
    run without a model has none (stored completions, a served endpoint).
    """
    answers = _answers(completions, model)
    scores, skipped = _score(suite, scorers, completions, model, reuse, no_model, answers)
    records = [item_record(case, c, a) for case, c, a in zip(suite.cases, completions, answers)]
    return _model_result(suite, scorers, scores, records, fingerprint), skipped


def _model_result(suite: Suite, scorers: list[Scorer], scores: dict[str, list[Score]], records: list[dict],
                  fingerprint: str) -> dict:
    for name, per_item in scores.items():
        for record, score in zip(records, per_item):
            record["scores"][name] = score.to_json()
    metrics, categories = suite_metrics(scorers, scores, [case.category for case in suite.cases])
    if getattr(suite, "cluster", None):
        metrics = cluster_adjust(metrics, scores, [case.cluster for case in suite.cases])
    return {"fingerprint": fingerprint, "metrics": metrics, "categories": categories, "items": records}


def score_sampled(suite: Suite, scorers: list[Scorer], draws: list[list[dict]], fingerprint: str,
                  model: Base | None, reuse: ScoreReuse | None = None,
                  no_model: str = STORED_HAVE_NO_MODEL) -> tuple[dict, dict]:
    """Score k completions per item (``draws[j]``: draw j of every case; see harness.sampling).

    Items keep draw 0 as ``output`` and every draw under ``samples``; scores are the
    per-item combination of the k draws; pass/fail metrics are sampled proportions.
    """
    from .sampling import combine, sampled_proportion

    first = _answers(draws[0], model)  # item records show draw 0
    per_draw = [_score(suite, scorers, completions, model, reuse, no_model, first if j == 0 else None)
                for j, completions in enumerate(draws)]
    skipped = per_draw[0][1]
    names = [n for n in per_draw[0][0]]
    scores = {name: [combine([per_draw[j][0][name][i] for j in range(len(draws))])
                     for i in range(len(suite.cases))] for name in names}
    records = [item_record(case, c, a) for case, c, a in zip(suite.cases, draws[0], first)]
    for i, record in enumerate(records):
        record["samples"] = [{"output": draws[j][i]["output"], "finish_reason": draws[j][i]["finish_reason"],
                              "passed": {name: per_draw[j][0][name][i].passed for name in names}}
                             for j in range(len(draws))]
    result = _model_result(suite, scorers, scores, records, fingerprint)
    for name in names:
        verdicts = [[per_draw[j][0][name][i].passed for j in range(len(draws))] for i in range(len(suite.cases))]
        if all(v is not None for row in verdicts for v in row):
            result["metrics"][name] = dict(sampled_proportion(verdicts),
                                           higher_is_better=result["metrics"].get(name, {}).get("higher_is_better", True))
    return result, skipped


# --- generation --------------------------------------------------------------------

def encode_suite(base: Base, suite: Suite) -> list[list[int]]:
    """Every case's prompt as token ids, refused when an id is past the model's vocabulary
    (``models.check_ids_fit``): whatever generates them (this runner, ``--parity``) checks alike."""
    prompts = [encode_prompt(base.tokenizer, case.prompt, suite.template, suite.system,
                             suite.chat_template_kwargs) for case in suite.cases]
    check_ids_fit(base, ((f"suite {suite.name!r}, case {case.id!r}: the prompt has", ids)
                         for case, ids in zip(suite.cases, prompts)), suite.path)
    return prompts


def generate_suite(suite: Suite, base: Base, fingerprint: str, adapter_fp: str | None,
                   cache: CompletionCache | None, live: bool,
                   progress: Progress | None = None, show_progress: bool = False, model: str = "base"
                   ) -> tuple[list[Completion], dict]:
    """Completions for every case (cache first unless ``live``), and the integrity result.

    New completions are committed to the cache as they finish (``WriteBehind``), so a run
    killed mid-suite takes everything finished so far from the cache when re-run.
    Under ``mlx.launch`` (``harness.distributed``) rank 0 decides what to generate, every
    rank generates its round-robin share, and all ranks get every completion back
    (``model`` names the model in what a rank says when it gives up waiting for the others).
    """
    rank, size = rank_and_size()
    where = f"suite {suite.name!r}, model {model!r}"
    tokenizer = base.tokenizer
    prompts = [encode_prompt(tokenizer, case.prompt, suite.template, suite.system,
                             suite.chat_template_kwargs)
               for case in suite.cases]  # their ids were checked against the model by check_prompts_fit
    gen_cfg = suite.generation
    if cache is not None:
        gen_key = gen_cfg.cache_key()
        keys = [completion_key(fingerprint, adapter_fp, p, gen_key, cache.versions) for p in prompts]
    else:
        keys = [str(i) for i in range(len(prompts))]
    found, unchecked = cache.get_many_with_status(keys) if (cache is not None and not live) else ({}, set())
    if size > 1:  # only rank 0 reads the cache: an unchecked entry is generated again
        found = {k: c for k, c in found.items() if k not in unchecked}
    todo = [i for i, k in enumerate(keys) if k not in found]
    resumed = [i for i, k in enumerate(keys) if k in found and k in unchecked] \
        if suite.integrity_samples > 0 else []
    if size > 1:
        todo = broadcast_json(todo, f"rank 0's list of items to generate, {where}")  # rank 0's cache decides
        pending = set(todo)
        found = {keys[i]: found.get(keys[i]) for i in range(len(keys)) if i not in pending}
    if todo and live:
        generate(base.model, tokenizer, prompts[:1], GenerationConfig(max_tokens=4, batch_size=1))  # warm-up
    t0 = time.perf_counter()
    todo_prompts = [prompts[i] for i in todo]
    mine = shard(len(todo), rank, size)
    my_prompts = [todo_prompts[j] for j in mine]
    prefixes = SharedPrefixes(base.model, my_prompts) if my_prompts and gen_cfg.batch_size > 1 else None
    writer = WriteBehind(cache, unchecked=suite.integrity_samples > 0) if cache is not None else None
    label = f"  {suite.name}" + (f" (rank {rank} of {size})" if size > 1 else "")
    bar = LiveProgress(len(mine), label=label, enabled=show_progress and rank == 0,
                       max_tokens=gen_cfg.max_tokens)

    def report(done: int, total: int, tokens: int) -> None:
        bar.update(done, tokens)
        if progress is not None:
            progress(done, total, tokens)

    try:
        fresh = generate(base.model, tokenizer, my_prompts, gen_cfg, progress=report,
                         prefixes=prefixes if prefixes is not None else False,
                         on_item=(lambda k, c: writer.add(keys[todo[mine[k]]], c)) if writer else None
                         ) if my_prompts else []
    finally:  # an interrupted run keeps what it finished
        bar.close()
        if writer is not None:
            writer.flush()
    if size > 1:  # every rank gets every completion, in item order
        shares = all_gather_json([c.to_json() for c in fresh], f"gathering the completions, {where}")
        shares[rank] = fresh
        shares = [[c if isinstance(c, Completion) else Completion.from_json(c) for c in share]
                  for share in shares]
        fresh = unshard(shares, len(todo))
        if writer is not None:
            for j, c in enumerate(fresh):
                if j % size != rank:
                    writer.add(keys[todo[j]], c)
            writer.flush()
    elapsed = time.perf_counter() - t0
    by_index = dict(zip(todo, fresh))
    completions = [by_index[i] if i in by_index else found[keys[i]] for i in range(len(keys))]
    for i, c in enumerate(completions):
        if c is not None:  # None: a cached item on a rank other than 0 (only rank 0 reads the cache)
            c.prompt_token_ids = prompts[i]  # for token-level scorers
    n_tokens = sum(c.output_tokens for c in fresh)
    extra = []
    if prefixes and prefixes.saved_tokens:
        extra.append(f"shared prefixes saved {prefixes.saved_tokens - prefixes.prefilled_tokens} of "
                     f"{sum(len(p) for p in my_prompts)} prompt tokens" + (" on rank 0" if size > 1 else ""))
        _say_cascade_fallback_once(base.model)
    if size > 1:
        extra.append(f"{size} processes")
    log(f"  {suite.name}: {len(prompts)} items, {len(found)} from cache, {len(fresh)} generated"
        + (f" ({', '.join([f'{n_tokens} tokens', f'{n_tokens / elapsed:.0f} tok/s', *extra])})"
           if fresh and elapsed > 0 else ""))
    if resumed:
        log(f"  {suite.name}: {len(resumed)} of the cached items are from a run that stopped before "
            f"its integrity check: checking them now")
    if not fresh and not resumed:
        return completions, {"checked": 0, "passed": True,
                             "detail": "all outputs from the cache (checked when they were generated)"}
    checked = check_integrity(suite, base, todo_prompts, fresh, prefixes, rank, size, where) if fresh else None
    if resumed:
        again = check_integrity(suite, base, [prompts[i] for i in resumed], [completions[i] for i in resumed])
        again["detail"] = f"{len(resumed)} resumed item(s): {again['detail']}"
        checked = again if checked is None else {
            "checked": checked["checked"] + again["checked"], "passed": checked["passed"] and again["passed"],
            "detail": "; ".join(d for d in (checked["detail"], again["detail"]) if d)}
    stored = [*todo, *resumed]
    if writer is not None and writer.unchecked and checked["passed"]:
        cache.mark_checked(keys[i] for i in stored)
    if not checked["passed"] and cache is not None:
        # Committed as they finished, before the check: a later run must not serve them as
        # "checked when they were generated".
        cache.delete_many(keys[i] for i in stored)
    return completions, checked


_CASCADE_TOLD: set[int] = set()


def _say_cascade_fallback_once(model) -> None:
    """Once per model: why rows read a copy of the shared prefix instead of cascade attention."""
    from .cascade import why_not

    reason = why_not(model)
    if reason and id(model) not in _CASCADE_TOLD:
        _CASCADE_TOLD.add(id(model))
        log(f"  cascade attention off ({reason}): each row reads its own copy of the shared prefix")


def check_integrity(suite: Suite, base: Base, prompts: list[list[int]], fresh: list[Completion],
                    prefixes: SharedPrefixes | None = None, rank: int = 0, size: int = 1,
                    where: str = "") -> dict:
    """Check a spread sample of this run's greedy outputs against full recomputation.

    Greedy outputs are checked as generated; a sampling suite gets greedy re-runs of the
    sample. With several processes each sampled item is checked on the rank that generated
    it (``prefixes`` are that rank's), and the results are combined.
    """
    idx = integrity.sample_indices(len(prompts), suite.integrity_samples)
    if not idx:
        return {"checked": 0, "passed": True, "detail": "integrity check disabled (samples: 0)"}
    idx = [j for j in idx if j % size == rank]
    result = {"checked": 0, "passed": True, "detail": ""}
    if idx:
        sample = [prompts[i] for i in idx]
        produced = [fresh[i] for i in idx]
        sample_prefixes = prefixes.subset([j // size for j in idx]) if prefixes is not None else None
        if suite.generation.temperature > 0 or suite.generation.repetition_penalty:
            greedy = GenerationConfig(max_tokens=suite.integrity_max_tokens, batch_size=max(2, len(sample)))
            produced = generate(base.model, base.tokenizer, sample, greedy,
                                prefixes=sample_prefixes if sample_prefixes is not None else False)
        eos = next(iter(base.tokenizer.eos_token_ids), None)
        tokens = [c.output_token_ids + ([eos] if c.stopped_by == "eos" and eos is not None else [])
                  for c in produced]
        result = integrity.check(base.model, base.tokenizer, sample, tokens, suite.integrity_max_tokens,
                                 sample_prefixes).to_json()
    if size == 1:
        return result
    results = all_gather_json(result, f"gathering the integrity checks, {where}")
    failed = [(r, res) for r, res in enumerate(results) if not res["passed"]]
    checked = sum(res["checked"] for res in results)
    if failed:
        return {"checked": checked, "passed": False, "detail": f"rank {failed[0][0]}: {failed[0][1]['detail']}"}
    return {"checked": checked, "passed": True,
            "detail": f"{checked} prompts on {size} processes: cached greedy decoding matches full recomputation"}


# --- the run -----------------------------------------------------------------------

def load_suites(paths: list[Path], limit: int | None, select=None) -> list[Suite]:
    """The suites, each cut to ``limit`` cases, then to the picked ones (``select``: a
    ``harness.selection.Selection``)."""
    suites = [load_suite(p) for p in paths]
    if select:
        suites = select.apply(suites)
    suites = [s.limited(limit) for s in suites]
    check_unique_names(suites)
    return suites


def check_prompts_fit(base: Base, suites: list[Suite]) -> dict[str, str]:
    """Every prompt of every suite against the model, tokenized once, before any suite
    generates (a refusal after the first suites have generated throws their hours away):
    a token id past the embedding refuses (``models.check_ids_fit``), and so do items past
    a learned position table, since MLX does not bounds-check either gather. Returns, per
    suite, the warning about items whose prompt + ``generation.max_tokens`` go past RoPE
    positions (config.json; ``harness.positions``). Adapters change neither the tokenizer
    nor the positions, so one pass covers every model."""
    return encode_suites_fit(base, suites)[1]


def encode_suites_fit(base: Base, suites: list[Suite]) -> tuple[dict[str, list[list[int]]], dict[str, str]]:
    """``check_prompts_fit``, also returning each suite's prompt ids, for a caller that
    generates them (``--parity``) without tokenizing every suite a second time."""
    positions = model_positions(base.config)
    encoded, out = {}, {}
    for suite in suites:
        encoded[suite.name] = encode_suite(base, suite)
        text = eval_overrun(positions, [(case.id, len(ids)) for case, ids in zip(suite.cases, encoded[suite.name])],
                            suite.generation.max_tokens, suite.path)
        if text:
            log(f"warning: {text}")
            out[suite.name] = text
    return encoded, out


def run_eval(suites: list[Suite] | list[Path], model_path: str, adapters: list[ModelSpec], *,
             limit: int | None = None, use_cache: bool = True, cache_dir: str | None = None,
             baseline: dict | None = None, allow_fingerprint_mismatch: bool = False,
             allow_base_mismatch: bool = False, command: list[str] | None = None,
             quiet: bool = False) -> dict:
    """Every suite on the base and each adapter; returns results.json (before gates).

    ``suites`` are loaded suites (gate them with the same objects: ``finish``), or paths.
    """
    if not all(isinstance(s, Suite) for s in suites):
        suites = load_suites(list(suites), limit)  # all input checked before any model loads
    from .preflight import check_adapter, check_model_folder

    model_config = check_model_folder(model_path) if Path(model_path).expanduser().is_dir() else None
    for spec in adapters:
        if not spec.adapter_path.is_dir():
            raise HarnessError("adapter folder not found", path=spec.adapter_path, field=f"--adapter {spec.name}")
        check_adapter(spec.adapter_path, model_config, str(model_path))  # config, rank, finite weights, block count
    log(f"loading {model_path}")
    base = load_base(model_path)
    base_warnings = []
    for spec in adapters:  # weights and shapes against the loaded base, before anything generates
        check_adapter_fits(base, spec.name, spec.adapter_path, allow_base_mismatch)  # shapes, then base
        base_warnings += check_adapter_base(base, spec.adapter_path, read_adapter_config(spec.adapter_path),
                                            allow_base_mismatch)
    # after the adapters: an adapter made for another base is the thing to fix first
    check_chat_suites(base.tokenizer, suites, str(model_path))
    overruns = check_prompts_fit(base, suites)  # bad ids, learned-position overruns: before any generation
    cache = CompletionCache(cache_dir) if use_cache and rank_and_size()[0] == 0 else None  # rank 0's cache
    scorer_sets = {s.name: [make_scorer(spec, s.dir) for spec in s.scorers] for s in suites}
    results = new_results(
        [suite_entry(s, scorer_sets[s.name]) for s in suites],
        {"base": ModelInfo(path=str(model_path), adapter_path=None, fingerprint=base.fingerprint,
                           fingerprint_recipe=MODEL_FINGERPRINT_RECIPE,
                           weights_fingerprint=base.weights_fingerprint, base_fingerprint=None,
                           training_log=None)},
        environment(), command, base_warnings)
    for header in results["suites"]:
        if header["name"] in overruns:
            header["warnings"].append(overruns[header["name"]])
    for spec in adapters:
        from .models import adapter_fingerprint

        config = read_adapter_config(spec.adapter_path)
        log_file = spec.adapter_path / "train_log.jsonl"
        results["models"][spec.name] = {
            "path": str(model_path), "adapter_path": str(spec.adapter_path),
            "fingerprint": adapter_fingerprint(spec.adapter_path), "base_fingerprint": base.fingerprint,
            "trained_on": config.get("base_fingerprint"),
            "training_log": str(log_file) if log_file.is_file() else None,
        }
        from .train.log import read_warnings

        for text in read_warnings(log_file):
            results["warnings"].append(f"adapter {spec.name}: its training log warns: {text}")
        trained = adapter_prompt_format(config, base.tokenizer)
        results["models"][spec.name]["prompt_format"] = trained
        results["models"][spec.name]["prompt_format_differences"] = {
            suite.name: format_differences(trained, suite_prompt_format(suite, base.tokenizer))
            for suite in suites} if trained else {}
        for suite, header in zip(suites, results["suites"]):
            diffs = results["models"][spec.name]["prompt_format_differences"].get(suite.name)
            if diffs:
                header["warnings"].append(format_warning(spec.name, suite.name, diffs))
    if baseline is not None:
        from .baseline import check_baseline

        check_baseline(baseline, results, allow_fingerprint_mismatch)
        results["baseline"] = {"path": baseline.get("_path"), "created": baseline.get("created")}

    probe = next((encode_prompt(base.tokenizer, s.cases[0].prompt, s.template, s.system,
                                s.chat_template_kwargs)
                  for s in suites if s.cases), None)
    base_logits = probe_logits(base, probe) if probe and adapters else None
    for spec in [ModelSpec("base")] + adapters:
        log(f"[{spec.name}]")
        if spec.adapter_path is None:
            _eval_model(spec.name, suites, scorer_sets, base, None, cache, results, quiet)
        else:
            with adapter_applied(base, spec.name, spec.adapter_path, allow_base_mismatch) as adapter_fp:
                if base_logits is not None:
                    effect = logit_effect(base, probe, base_logits)
                    results["models"][spec.name]["logit_effect"] = effect
                _eval_model(spec.name, suites, scorer_sets, base, adapter_fp, cache, results, quiet)
            text = no_effect_warning(spec.name, results["models"][spec.name].get("logit_effect"),
                                     results["suites"])
            if text:
                results["warnings"].append(text)
    if cache is not None:
        cache.close()
    return results


def suite_draws(suite: Suite) -> list[Suite]:
    """The suite once per draw: ``samples: k`` gives k copies, draw j seeded ``seed + j``
    (its own cache key via ``sample``); an unsampled suite is its own single draw."""
    if suite.generation.samples <= 1:
        return [suite]
    draws = []
    for j in range(suite.generation.samples):
        drawn = copy.copy(suite)
        drawn.generation = dataclasses.replace(suite.generation, seed=suite.generation.seed + j, sample=j)
        draws.append(drawn)
    return draws


def combine_integrity(checks: list[dict]) -> dict:
    """One result for a suite's draws: failed if any draw failed (its detail first), the
    checked counts summed. (Each draw has its own cache entries, so any one can fail.)"""
    failed = [c for c in checks if not c["passed"]]
    head = failed[0] if failed else checks[0]
    if len(checks) == 1:
        return head
    return {**head, "checked": sum(c["checked"] for c in checks),
            "detail": f"{head['detail']} ({len(failed)} of {len(checks)} draws failed)" if failed
            else f"{head['detail']} (draw 1 of {len(checks)}; every draw passed)"}


def _eval_model(name: str, suites: list[Suite], scorer_sets: dict, base: Base, adapter_fp: str | None,
                cache: CompletionCache | None, results: dict, quiet: bool = False) -> None:
    for suite, header in zip(suites, results["suites"]):
        scorers = scorer_sets[suite.name]
        live = any(not s.uses_cache for s in scorers)
        draws, checks = [], []
        for drawn in suite_draws(suite):
            completions, integrity_j = generate_suite(drawn, base, base.fingerprint, adapter_fp, cache, live,
                                                      show_progress=not quiet, model=name)
            checks.append(integrity_j)
            draws.append([c.to_json() for c in completions])
        integrity_result = combine_integrity(checks)
        if rank_and_size()[0] != 0:
            continue  # under mlx.launch, rank 0 scores and reports
        reuse = ScoreReuse(cache, base.fingerprint, adapter_fp) if cache is not None else None
        if len(draws) > 1:
            model_result, skipped = score_sampled(suite, scorers, draws, adapter_fp or base.fingerprint, base, reuse)
        else:
            model_result, skipped = score_model(suite, scorers, draws[0], adapter_fp or base.fingerprint, base, reuse)
        model_result["integrity"] = integrity_result
        header["models"][name] = model_result
        cut = unfinished_warning(name, suite.name, model_result["items"], suite.generation.max_tokens)
        if cut:
            header.setdefault("warnings", []).append(cut)
        for scorer_name, why in skipped.items():
            header["scorers"][scorer_name]["skipped"] = why
        if not integrity_result["passed"]:
            log(f"  INTEGRITY FAILED: {integrity_result['detail']}")


def finish(results: dict, suites: list[Suite], out_dir: Path, baseline: dict | None,
           strict_baseline: bool = False, mark: bytes | None = None,
           baseline_flag: str = "--baseline FILE") -> int:
    """Gates, verdict, outputs (each written atomically); returns the exit code.

    With a baseline, a suite or candidate the baseline lacks (a rename) is a warning
    naming both sides; ``strict_baseline`` makes it a failed ``baseline_missing`` gate instead, and
    makes gates dropped or loosened since approval (and a removed ``cluster:``) failed gates
    (``gates.policy_change_gates``) where they are otherwise warnings.
    ``mark``: what ``run_marker.start`` wrote into ``out_dir``, retired with the results.
    Without a baseline, gates the suites write against one are a run warning
    (``baseline.unchecked_baseline_note``; ``baseline_flag`` is how the caller gives one).
    """
    from .baseline import baseline_coverage, baseline_outputs, baseline_suite
    from .gates import comparisons_for, evaluate_gates, policy_change_gates, policy_changes
    from .reports import write_reports

    failed = False
    for suite, header in zip(suites, results["suites"]):
        reference = baseline_suite(baseline, suite.name) if baseline else None
        header["comparisons"] = comparisons_for(header, reference)
        gates, warnings = evaluate_gates(suite, header, reference, header["comparisons"])
        # under --strict-baseline each shortfall is a failed gate and not also a warning: summary.md
        # listed every one twice (the terminal's baseline_notes already left them out)
        if strict_baseline:
            gates += policy_change_gates(suite, header, reference)
        else:
            warnings += policy_changes(suite, header, reference)
        if baseline is not None:
            for model, reason in baseline_coverage(baseline, header):
                if strict_baseline:
                    gates.append({"suite": suite.name, "model": model, "metric": "baseline",
                                  "kind": "baseline_missing", "passed": False,
                                  "reason": reason + " (--strict-baseline)", "details": {}})
                else:
                    warnings.append(reason)
        for name, model_result in header["models"].items():
            check = model_result.get("integrity")
            if check and not check["passed"]:
                gates.append({"suite": suite.name, "model": name, "metric": "generation_integrity",
                              "kind": "integrity", "passed": False, "reason": check["detail"], "details": {}})
        gates.extend(header.pop("extra_gates", None) or [])  # a backend's own gates (endpoint requests, parity)
        extra_gates, extra_warnings = suite_checks(suite, header, results.get("models") or {})
        gates += extra_gates
        header["gates"] = gates
        if reference is not None:  # what the report shows of the baseline's outputs
            header["baseline_outputs"] = baseline_outputs(reference, header)
        header["warnings"] = list(header.get("warnings") or []) + warnings + extra_warnings
        failed |= any(not g["passed"] for g in gates)
    if baseline is None:  # gates the suites write against a baseline, none checked
        from .baseline import unchecked_baseline_note

        if (note := unchecked_baseline_note(suites, baseline_flag)) is not None:
            results["warnings"] = list(results.get("warnings") or []) + [note]
    else:  # what the baseline approved and this run left out
        from .baseline import baseline_unused

        results["warnings"] = list(results.get("warnings") or []) + [
            w for w in baseline_unused(baseline, results) if w not in (results.get("warnings") or [])]
    results["verdict"] = "fail" if failed else "pass"
    results["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    check_output(results, RESULTS_SCHEMA, out_dir / "results.json")  # before anything is written
    write_reports(results, out_dir, mark)  # results.json and the reports as one set (atomic.write_folder)
    return 1 if failed else 0


def read_completions(path: Path, suite: Suite) -> tuple[dict[str, list[dict]], str]:
    """Stored completions by model name, in the suite's case order (for `harness score`),
    and the digest of the bytes they were read from (their fingerprint: the file was read
    again to hash it, which could be of another version of it)."""
    by_model: dict[str, dict] = {}
    ids = {c.id for c in suite.cases}
    samples = max(1, suite.generation.samples)  # sampled suites: lines carry "sample": 0..k-1
    from .suite import parse_json_line, split_jsonl  # \n-only lines, BOM, UTF-8, bounded depth

    require_utf8_name(path, "completions file", field="--completions")  # the run's results name it
    data = read_input(path, "completions file")
    for number, line in split_jsonl(data, path, "completions file"):
        row = parse_json_line(line, path, number)
        if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("output"), str):
            raise HarnessError('each line needs {"id": ..., "output": "..."}', path=path, line=number)
        reason = row.get("finish_reason", "stop")
        if reason not in ("stop", "length"):
            raise HarnessError(f"finish_reason must be 'stop' or 'length', got {reason!r}",
                               path=path, line=number, field="finish_reason")
        case_id, model = str(row["id"]), str(row.get("model", "base"))
        if case_id not in ids:
            raise HarnessError(f"id {case_id!r} is not a case of suite {suite.name}", path=path,
                               line=number, field="id", hint="ids are the cases' `id`, else their 0-based index")
        draw = row.get("sample", 0)
        if not isinstance(draw, int) or isinstance(draw, bool) or not 0 <= draw < samples:
            raise HarnessError(f"sample must be a whole number from 0 to {samples - 1}, got {draw!r}",
                               path=path, line=number, field="sample",
                               hint=f"the suite draws generation.samples = {samples} per item")
        key = case_id if samples == 1 else (case_id, draw)
        if key in by_model.setdefault(model, {}):
            raise HarnessError(f"id {case_id!r}{f' sample {draw}' if samples > 1 else ''} appears twice for "
                               f"model {model!r}", path=path, line=number)
        by_model[model][key] = {"output": row["output"], "finish_reason": reason, "cached": True}
    if "base" not in by_model:
        raise HarnessError(f"no completions for model 'base' (the file has: {', '.join(sorted(by_model)) or 'none'})",
                           path=path,
                           hint="every model is compared with the base: add its completions (lines without "
                                "`model`, or \"model\": \"base\"; a base named otherwise: rename it to base)")
    out = {}
    for model, rows in by_model.items():
        keys = [c.id if samples == 1 else (c.id, j) for j in range(samples) for c in suite.cases]
        missing = [k for k in keys if k not in rows]
        if missing:
            raise HarnessError(f"model {model!r} has no completion for {len(missing)} case(s), "
                               f"first {missing[0]!r}", path=path)
        if samples == 1:
            out[model] = [rows[c.id] for c in suite.cases]
        else:  # draws: out[model][j][i] is draw j of case i
            out[model] = [[rows[(c.id, j)] for c in suite.cases] for j in range(samples)]
    return out, bytes_digest(data)


def run_score(suite_path: Path, completions_path: Path, command: list[str] | None = None,
              select=None) -> tuple[dict, Suite]:
    suite = load_suite(suite_path)
    stored, digest = read_completions(completions_path, suite)
    if select:  # score the picked cases only (the file may hold them all)
        full = suite
        (suite,) = select.apply([full])
        keep = {c.id for c in suite.cases}
        if suite.generation.samples > 1:
            stored = {m: [[r for r, c in zip(draw, full.cases) if c.id in keep] for draw in draws]
                      for m, draws in stored.items()}
        else:
            stored = {m: [r for r, c in zip(rows, full.cases) if c.id in keep] for m, rows in stored.items()}
    scorers = [make_scorer(spec, suite.dir) for spec in suite.scorers]
    header = suite_entry(suite, scorers)
    fingerprint = "stored:" + digest[:16]  # stored outputs: no model of their own
    for model, rows in sorted(stored.items(), key=lambda kv: kv[0] != "base"):
        if suite.generation.samples > 1:
            model_result, skipped = score_sampled(suite, scorers, rows, f"{fingerprint}:{model}", None)
        else:
            model_result, skipped = score_model(suite, scorers, rows, f"{fingerprint}:{model}", None)
        header["models"][model] = model_result
        cut = unfinished_warning(model, suite.name, model_result["items"], None)
        if cut:
            header.setdefault("warnings", []).append(cut)
        for name, why in skipped.items():
            header["scorers"][name]["skipped"] = why
    results = new_results(
        [header],
        {m: ModelInfo(path=None, adapter_path=None, fingerprint=f"{fingerprint}:{m}", base_fingerprint=None,
                      training_log=None, completions=str(completions_path)) for m in stored},
        environment(), command)
    return results, suite


__all__ = ["run_eval", "run_score", "finish", "parse_adapter_args", "load_suites", "ModelSpec",
           "environment"]
