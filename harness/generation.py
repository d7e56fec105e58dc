"""The generation engine: token-id prompts in, completions with timings out.

Built on mlx-lm's ``BatchGenerator`` (continuous batching, per-sequence KV caches), the
same machinery as ``mlx_lm.batch_generate``, so a suite of many prompts decodes together
instead of one by one. On top of it the engine adds what an evaluation needs: stop
strings matched on decoded text (robust to how a stop word tokenizes), a
``finish_reason`` per item, token counts, time to first token and decode speed, and
seeded sampling.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable


@dataclass(frozen=True)
class GenerationConfig:
    """Everything that changes a generated output (part of the completion cache key).

    Owned by the engine; a suite's ``generation:`` mapping is read into it."""

    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float | None = None
    stop: tuple[str, ...] = ()
    seed: int = 0
    batch_size: int = 32
    samples: int = 1  # completions drawn per item (a suite's `generation.samples`; needs temperature > 0)
    sample: int = 0   # which of them this config draws (drawn with seed + sample)

    def cache_key(self) -> dict:
        key = {k: getattr(self, k) for k in ("max_tokens", "temperature", "top_p",
                                              "repetition_penalty", "stop")}
        key["stop"] = list(self.stop)
        if self.temperature > 0:
            key["seed"] = self.seed  # greedy output does not depend on the seed
            key["sample"] = self.sample  # k draws per item are k cache entries
        return key

if TYPE_CHECKING:
    from .prefix import SharedPrefixes


@dataclass
class Completion:
    """One generated answer and how it was produced."""

    output: str
    finish_reason: str  # "stop" (EOS or a stop string) or "length" (hit max_tokens)
    prompt_tokens: int
    output_tokens: int
    output_token_ids: list[int] = field(default_factory=list)
    stopped_by: str = "length"  # "eos", "stop_string" or "length"
    ttft_s: float | None = None
    decode_tps: float | None = None
    prompt_tps: float | None = None
    total_s: float | None = None
    peak_memory_gb: float | None = None
    cached: bool = False
    # The prompt it answered (token ids), for token-level scorers; not stored in the cache,
    # whose key already is the prompt.
    prompt_token_ids: list[int] | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Completion":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _sampler(config: GenerationConfig):
    from mlx_lm.sample_utils import make_sampler

    return make_sampler(temp=config.temperature, top_p=config.top_p if config.top_p < 1.0 else 0.0)


def _logits_processors(config: GenerationConfig):
    from mlx_lm.sample_utils import make_logits_processors

    if not config.repetition_penalty:
        return None
    return make_logits_processors(repetition_penalty=config.repetition_penalty)


class _Sequence:
    """Book-keeping for one prompt while it decodes."""

    __slots__ = ("index", "prompt_len", "tokens", "t_start", "t_first", "t_last", "stopped_by", "text")

    def __init__(self, index: int, prompt_len: int, t_start: float):
        self.index = index
        self.prompt_len = prompt_len
        self.tokens: list[int] = []
        self.t_start = t_start
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.stopped_by: str | None = None
        self.text: str | None = None


def _stop_hit(tokenizer: Any, tokens: list[int], stop: tuple[str, ...], window: int) -> bool:
    """Does a stop string end the decoded tail? Only the tail is decoded: O(1) per step."""
    tail = tokenizer.decode(tokens[-window:])
    return any(s in tail for s in stop)


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    cut = min((text.find(s) for s in stop if s in text), default=-1)
    return text[:cut] if cut >= 0 else text


Progress = Callable[[int, int, int], None]  # (items done, items in all, tokens generated so far)
OnItem = Callable[[int, Completion], None]  # (prompt index, its finished completion)


def generate(model: Any, tokenizer: Any, prompts: list[list[int]], config: GenerationConfig,
             progress: Progress | None = None,
             prefixes: "SharedPrefixes | bool | None" = True,
             on_item: OnItem | None = None) -> list[Completion]:
    """Generate one completion per prompt (token ids), in the order given.

    ``config.batch_size == 1`` decodes prompts one at a time, so that time to first token
    and peak memory belong to one prompt (latency suites); otherwise prompts share
    continuous batches and ``ttft_s`` includes waiting for the batch.

    ``prefixes``: shared prompt prefixes are prefilled once and copied into each row
    (``harness.prefix``); pass a ``SharedPrefixes`` built for these prompts to reuse its
    caches afterwards (the integrity check does), or False to prefill every row in full.
    One-at-a-time decoding never shares, so a latency item's numbers are its own.

    ``on_item(i, completion)`` is called as each item finishes (the completion cache
    commits them then, so a killed run resumes item by item); ``progress`` after every
    decoding step.
    """
    import mlx.core as mx

    if not prompts:
        return []
    mx.random.seed(config.seed)
    if config.batch_size == 1:
        out: list[Completion] = []
        tokens = 0
        for i, p in enumerate(prompts):
            mx.reset_peak_memory()
            done = _generate_batch(model, tokenizer, [p], config, batch_size=1)[0]
            out.append(done)
            tokens += done.output_tokens
            if on_item:
                on_item(i, done)
            if progress:
                progress(i + 1, len(prompts), tokens)
        return out
    if prefixes is True:
        from .prefix import SharedPrefixes

        prefixes = SharedPrefixes(model, prompts)
    if not prefixes or not prefixes.cascade:
        return _generate_batch(model, tokenizer, prompts, config, batch_size=config.batch_size,
                               progress=progress, prefixes=prefixes or None, on_item=on_item)
    # Cascade attention (harness.cascade): each top-level prefix group decodes in its own
    # batches, so a batch reads its one shared prefix once per step.
    results: list[Completion | None] = [None] * len(prompts)
    done = tokens = 0
    for rows in prefixes.root_groups():
        group = [prompts[i] for i in rows]
        batch_size = cascade_batch_size(config, group, prefixes.root_length(rows[0]))

        def part_progress(d: int, _total: int, k: int, done=done, tokens=tokens) -> None:
            if progress:
                progress(done + d, len(prompts), tokens + k)

        def part_item(j: int, c: Completion, rows=rows) -> None:
            if on_item:
                on_item(rows[j], c)

        part = _generate_batch(model, tokenizer, group, config,
                               batch_size=batch_size, progress=part_progress,
                               prefixes=prefixes, rows=rows, on_item=part_item, cascade=True)
        for i, c in zip(rows, part):
            results[i] = c
        done += len(rows)
        tokens += sum(c.output_tokens for c in part)
    return results  # type: ignore[return-value]


CASCADE_MAX_BATCH = 4  # times the suite's batch_size, at most


def cascade_batch_size(config: GenerationConfig, prompts: list[list[int]], shared: int) -> int:
    """Rows decoded together behind one shared prefix of ``shared`` tokens.

    ``batch_size`` rows of full context is the KV memory a suite allows. With cascade
    attention a row holds only its own tokens (the prefix is kept once), so as many rows
    as fit in that memory decode together, up to ``CASCADE_MAX_BATCH`` x ``batch_size``:
    a decoding step costs about the same for 32 rows as for 48 here, so fewer, fuller
    steps are faster.
    """
    if not shared:
        return config.batch_size
    own = max(len(p) for p in prompts) - shared + config.max_tokens  # the most a row holds itself
    fits = config.batch_size * (shared + own) // own
    return max(config.batch_size, min(fits, CASCADE_MAX_BATCH * config.batch_size))


def _completion(tokenizer: Any, seq: _Sequence, stop: tuple[str, ...], peak_gb: float) -> Completion:
    text = tokenizer.decode(seq.tokens)
    if seq.stopped_by == "stop_string":
        text = cut_at_stop(text, stop)
    n = len(seq.tokens)
    ttft = (seq.t_first - seq.t_start) if seq.t_first else None
    decode_s = (seq.t_last - seq.t_first) if seq.t_first and seq.t_last else 0.0
    return Completion(
        output=text,
        finish_reason="length" if seq.stopped_by in (None, "length") else "stop",
        prompt_tokens=seq.prompt_len,
        output_tokens=n,
        output_token_ids=list(seq.tokens),
        stopped_by=seq.stopped_by or "length",
        ttft_s=ttft,
        decode_tps=((n - 1) / decode_s) if n > 1 and decode_s > 0 else None,
        prompt_tps=(seq.prompt_len / ttft) if ttft else None,
        total_s=(seq.t_last - seq.t_start) if seq.t_last else None,
        peak_memory_gb=peak_gb,
    )


def _generate_batch(model: Any, tokenizer: Any, prompts: list[list[int]], config: GenerationConfig,
                    batch_size: int, progress: Progress | None = None,
                    prefixes: "SharedPrefixes | None" = None, on_item: OnItem | None = None,
                    rows: list[int] | None = None, cascade: bool = False) -> list[Completion]:
    """``rows``: which of ``prefixes``' prompts these are (default: all, in order);
    ``cascade``: rows with a shared prefix read it once per step (``harness.cascade``)."""
    import mlx.core as mx
    from mlx_lm.generate import BatchGenerator

    rows = rows if rows is not None else list(range(len(prompts)))
    cascade = cascade and prefixes is not None and any(prefixes.length(i) for i in rows)
    if cascade:
        from .cascade import installed
    else:
        from contextlib import nullcontext as installed  # type: ignore[assignment]

    gen = BatchGenerator(
        model,
        stop_tokens=[[t] for t in tokenizer.eos_token_ids],
        sampler=_sampler(config),
        logits_processors=_logits_processors(config),
        completion_batch_size=batch_size,
        prefill_batch_size=min(8, batch_size),
    )
    stop = tuple(config.stop)
    window = 4 * max((len(s) for s in stop), default=0) + 2
    results: list[Completion | None] = [None] * len(prompts)
    t0 = time.perf_counter()
    try:
        if prefixes is not None:  # each row starts from its shared prefix's cache (a copy, or shared)
            cut = [prefixes.length(i) for i in rows]
            uids = gen.insert([p[n:] for p, n in zip(prompts, cut)], [config.max_tokens] * len(prompts),
                              caches=[prefixes.cascade_cache(i) if cascade else prefixes.cache(i) for i in rows],
                              all_tokens=[list(p[:n]) for p, n in zip(prompts, cut)])
        else:
            uids = gen.insert(prompts, [config.max_tokens] * len(prompts))
        seqs = {uid: _Sequence(i, len(prompts[i]), t0) for i, uid in enumerate(uids)}
        done = tokens = 0
        with installed(model):
            while responses := gen.next_generated():
                now = time.perf_counter()
                finished = []
                for r in responses:
                    seq = seqs[r.uid]
                    if seq.t_first is None:
                        seq.t_first = now
                    seq.t_last = now
                    if r.finish_reason == "stop":  # an EOS token: not part of the text
                        seq.stopped_by = "eos"
                        finished.append(r.uid)
                        continue
                    seq.tokens.append(r.token)
                    tokens += 1
                    if stop and _stop_hit(tokenizer, seq.tokens, stop, window):
                        seq.stopped_by = "stop_string"
                        finished.append(r.uid)
                    elif r.finish_reason is not None:
                        seq.stopped_by = "length"
                        finished.append(r.uid)
                live = [u for u in finished if seqs[u].stopped_by == "stop_string"]
                if live:
                    gen.remove(live)  # the generator would otherwise keep decoding them
                if finished:
                    peak = mx.get_peak_memory() / 1e9
                    for uid in finished:
                        seq = seqs[uid]
                        results[seq.index] = _completion(tokenizer, seq, stop, peak)
                        if on_item:
                            on_item(seq.index, results[seq.index])
                done += len(finished)
                if progress:
                    progress(done, len(prompts), tokens)
                if done == len(prompts):
                    break
    finally:
        gen.close()
    if any(c is None for c in results):
        raise RuntimeError("mlx-lm's BatchGenerator stopped before every prompt finished")
    return results  # type: ignore[return-value]
