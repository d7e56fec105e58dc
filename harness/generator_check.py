"""Check a user's own generation loop against the reference engine (`harness check-generator`).

A hand-written decoding loop that loses the prompt's context (feeding the newest token
without its KV cache, a stale cache, an off-by-one position) writes fluent text that
ignores the prompt, and nothing downstream notices. Give this module the loop (a
callable) or what it produced (a JSONL file of token ids) and it compares the loop's
greedy tokens with

1. the harness's engine decoding the same prompt greedily (``generation.generate``), and
2. a full recomputation of the context at every step (``integrity.compare``: one
   uncached forward pass; near-ties within ``integrity.tie_tolerance`` are allowed: a
   few units of the weights' rounding, so a bfloat16 model's 1-ulp ties pass).

The verdict follows the recomputation: a token the full context would not choose is a
mismatch (a failed gate, exit 1). Where the loop and the engine part ways on a near-tie
both are right, and the report says so.

Python::

    from harness.generator_check import check_generator
    report = check_generator(my_generate, model="path/to/model", prompts=["Q: ...\\nA: "])
    assert report.passed, report.detail

``my_generate(prompt_ids, max_tokens) -> generated ids`` (greedy, EOS included or not).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import io
import itertools
import numbers
import os
import reprlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import integrity
from .bounded import time_limit
from .errors import HarnessError

Generator = Callable[[list[int], int], Sequence[int]]


@dataclass
class ItemCheck:
    index: int
    prompt_tokens: int
    tokens: list[int]  # the user's, cut at EOS and max_tokens
    engine_tokens: list[int]
    first_engine_difference: int | None  # step where the user's tokens leave the engine's
    problem: str | None  # the recomputation's objection, or None

    def to_json(self) -> dict:
        return {"index": self.index, "prompt_tokens": self.prompt_tokens, "tokens": self.tokens,
                "engine_tokens": self.engine_tokens,
                "first_engine_difference": self.first_engine_difference, "problem": self.problem}


@dataclass
class GeneratorReport:
    passed: bool
    detail: str
    items: list[ItemCheck] = field(default_factory=list)
    max_tokens: int = 0

    @property
    def mismatches(self) -> int:
        return sum(1 for i in self.items if i.problem)

    def to_json(self) -> dict:
        return {"passed": self.passed, "detail": self.detail, "max_tokens": self.max_tokens,
                "checked": len(self.items), "mismatches": self.mismatches,
                "items": [i.to_json() for i in self.items]}


def _cut(tokens: Sequence[int], eos: set[int], max_tokens: int) -> list[int]:
    out: list[int] = []
    for t in list(tokens)[:max_tokens]:
        out.append(int(t))
        if int(t) in eos:
            break
    return out


def _engine(base: Any, prompts: list[list[int]], max_tokens: int) -> list[list[int]]:
    from .generation import generate
    from .suite import GenerationConfig

    eos = next(iter(base.tokenizer.eos_token_ids), None)
    done = generate(base.model, base.tokenizer, prompts,
                    GenerationConfig(max_tokens=max_tokens, temperature=0.0, batch_size=max(2, len(prompts))))
    return [c.output_token_ids + ([eos] if c.stopped_by == "eos" and eos is not None else []) for c in done]


def compare_outputs(base: Any, prompts: list[list[int]], outputs: list[Sequence[int]],
                    max_tokens: int, path: str | Path | None = None,
                    lines: Sequence[int] | None = None) -> GeneratorReport:
    """Check stored greedy outputs (token ids) for ``prompts`` on the loaded ``base``;
    ``path`` and ``lines`` (each row's line, as ``read_outputs`` fills them) for errors."""
    eos = set(base.tokenizer.eos_token_ids)
    vocab = int((base.config or {}).get("vocab_size") or 0)
    for i, ids in enumerate([*prompts, *outputs]):
        bad_id = next((t for t in ids if not 0 <= int(t) < vocab), None) if vocab else None
        if bad_id is not None:
            row = i % len(prompts)
            key = "prompt_token_ids" if i < len(prompts) else "output_token_ids"
            which = f"{'prompt' if i < len(prompts) else 'output'} {row}"
            if path is not None and lines is not None:
                raise HarnessError(f"token id {bad_id} is outside the model's vocabulary (0..{vocab - 1})",
                                   path=path, line=lines[row], field=key,
                                   hint="check the generator against the model and tokenizer it uses")
            raise HarnessError(f"{which} has token id {bad_id}, outside the model's vocabulary (0..{vocab - 1})",
                               hint="check the generator against the model and tokenizer it uses")
    engine = _engine(base, prompts, max_tokens)
    rounding = integrity.rounding_unit(base.model)
    items = []
    for i, (prompt, produced, ref) in enumerate(zip(prompts, outputs, engine)):
        tokens = _cut(produced, eos, max_tokens)
        diff = next((k for k, (a, b) in enumerate(zip(tokens, ref)) if a != b), None)
        if diff is None and len(tokens) != len(ref) and min(len(tokens), len(ref)) < max_tokens:
            diff = min(len(tokens), len(ref))
        if not tokens:
            problem = None if (ref and ref[0] in eos) or not ref else (
                "the generator returned no tokens; the engine continues with token "
                f"{ref[0]}")
        else:
            problem = integrity.compare(base.model, prompt, tokens, rounding=rounding)
        items.append(ItemCheck(i, len(prompt), tokens, ref, diff, problem))
    bad = [it for it in items if it.problem]
    if bad:
        first = bad[0]
        detail = (f"{len(bad)} of {len(items)} prompts: the generator's greedy tokens disagree with "
                  f"full-context recomputation (prompt {first.index}: {first.problem}); "
                  f"the loop is dropping or corrupting context")
    else:
        ties = sum(1 for it in items if it.first_engine_difference is not None)
        detail = (f"{len(items)} prompts, up to {max_tokens} tokens each: the generator matches full "
                  f"recomputation" + (f" ({ties} part from the engine on near-ties)" if ties else
                                      " and the engine token for token"))
    return GeneratorReport(passed=not bad, detail=detail, items=items, max_tokens=max_tokens)


def check_generator(generator: Generator, model: str | Any, prompts: Sequence[str | Sequence[int]],
                    max_tokens: int = 32, template: str = "raw", system: str | None = None,
                    adapter: str | Path | None = None, name: str = "generator",
                    timeout: float | None = None, hard_timeout: bool = False) -> GeneratorReport:
    """Run ``generator(prompt_ids, max_tokens)`` on each prompt and check what it wrote.

    ``model`` is a model folder (loaded with mlx-lm) or a loaded ``harness.models.Base``;
    ``prompts`` are texts (encoded with ``template``/``system`` as ``harness eval`` does)
    or token-id lists; ``adapter`` puts an adapter on the base for the check; ``name`` is how
    errors call the generator. What it raises or returns that is not token ids is a
    ``HarnessError`` naming the prompt; so is a call running past ``timeout`` seconds
    (``None`` or 0: no limit; ``bounded.time_limit``: SIGALRM on the main thread, a trace
    function on any other, where a loop blocked in one long call is stopped when it returns;
    ``hard_timeout`` ends the process 5 s later if the loop swallows the interruption).
    """
    from .models import Base, adapter_applied, check_ids_fit, load_base
    from .prompts import encode_prompt

    if timeout is not None and not (timeout >= 0):  # NaN and negatives: no silent "no limit"
        raise HarnessError(f"timeout must be a number of seconds (0: no limit), not {timeout!r}",
                           field="timeout")
    timeout = timeout or None

    base = model if isinstance(model, Base) else load_base(str(model))
    ids = [list(p) if not isinstance(p, str) else encode_prompt(base.tokenizer, p, template, system)
           for p in prompts]
    if not ids:
        raise HarnessError("no prompts to check", field="prompts")
    check_ids_fit(base, ((f"prompt {i} has", p) for i, p in enumerate(ids)))

    def run() -> GeneratorReport:
        outputs = [_call(generator, i, p, max_tokens, name, timeout, hard_timeout) for i, p in enumerate(ids)]
        return compare_outputs(base, ids, outputs, max_tokens)

    if adapter is None:
        return run()
    with adapter_applied(base, "checked", adapter):
        return run()


class _NotTokenIds(Exception):
    pass


def _token_ids(produced: Any, max_tokens: int) -> list[int]:
    """The first ``max_tokens`` ids of what a loop returned (a list, an array, an iterator,
    even an endless one), or _NotTokenIds saying what it was instead."""
    if hasattr(produced, "tolist"):  # numpy and mlx arrays
        produced = produced.tolist()
    if isinstance(produced, (str, bytes, dict)) or not hasattr(produced, "__iter__"):
        raise _NotTokenIds(f"returned {type(produced).__name__}, not token ids")
    out = []
    for t in itertools.islice(iter(produced), max_tokens):
        value = t.tolist() if hasattr(t, "tolist") else t  # numpy and mlx scalars
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise _NotTokenIds(f"returned {reprlib.repr(t)}, not a token id (an int), at step {len(out)}")
        out.append(int(value))
    return out


class _LoopOutput(io.TextIOBase):
    """What a loop sees as sys.stdout and sys.stderr: writes go to the harness's stderr (stdout
    carries the report), and close() closes nothing of the harness's."""

    def __init__(self, target: Any):
        self.target = target

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()

    def close(self) -> None:
        self.flush()


class _TimedOut(BaseException):  # not an Exception: a loop's `except Exception` does not swallow it
    pass


def _call(generator: Generator, index: int, prompt: list[int], max_tokens: int, name: str,
          timeout: float | None = None, hard_timeout: bool = False) -> list[int]:
    """The user's loop on one prompt. What it raises (SystemExit included: an uncaught one ends
    the run with its code, 0 a silent pass) or returns instead of ids is one line of bad
    input; so is one that runs past ``timeout`` seconds; a working directory it changes is
    put back (a relative --out must not move), and what it prints goes to stderr."""
    cwd, streams = os.getcwd(), (sys.stdout, sys.stderr)
    late = HarnessError(f"on prompt {index} the generator did not return within {timeout:g} s", field=name,
                        hint="a loop that never stops? raise --timeout if it is only slow") if timeout else None
    try:
        sys.stdout = sys.stderr = _LoopOutput(sys.stderr)
        # re-raised every second (a loop's `except` meets it again), not an Exception (`except
        # Exception` lets it through), and in the command's own process the end of the line
        # 5 s later for a loop that swallows it all
        with time_limit(timeout, f"the generator on prompt {index}", error=_TimedOut, repeat=1.0,
                        last_words=f"harness: error: {late.one_line()}" if late and hard_timeout else None):
            return _token_ids(generator(list(prompt), max_tokens), max_tokens)
    except _TimedOut:
        raise late from None
    except _NotTokenIds as exc:
        raise HarnessError(f"on prompt {index} the generator {exc}", field=name,
                           hint="return the generated token ids: a list of ints") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise HarnessError(f"on prompt {index} the generator raised {type(exc).__name__}: {exc}",
                           field=name, hint="fix it, or rerun with --debug for its traceback") from exc
    finally:
        sys.stdout, sys.stderr = streams
        if os.getcwd() != cwd:
            os.chdir(cwd)


def load_callable(spec: str) -> Callable:
    """``module:function`` or ``path/to/file.py:function`` (the user's own code)."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise HarnessError(f"--generator {spec!r} must be MODULE:FUNCTION or FILE.py:FUNCTION",
                           field="--generator")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise HarnessError("generator file not found", path=path, field="--generator")
        module_spec = importlib.util.spec_from_file_location(f"_harness_user_{path.stem}", path)

        def load() -> Any:
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
            return module
    else:
        if os.getcwd() not in sys.path:  # the user's own modules, as `python -m` would see them
            sys.path.insert(0, os.getcwd())

        def load() -> Any:
            return importlib.import_module(target)
    try:
        module = load()
    except ImportError as exc:
        raise HarnessError(f"cannot import {target!r}: {exc}", field="--generator") from None
    except KeyboardInterrupt:
        raise
    except SystemExit as exc:  # an uncaught exit would end the check with its code: rc 0 = a pass
        raise HarnessError(f"importing {target!r} exited (sys.exit({exc.code!r}))", field="--generator",
                           hint="move script code under `if __name__ == \"__main__\":`") from exc
    except BaseException as exc:  # the user's code: their bug, told in one line (--debug: traceback)
        raise HarnessError(f"importing {target!r} raised {type(exc).__name__}: {exc}",
                           field="--generator", hint="fix the module, or rerun with --debug") from exc
    fn = getattr(module, name, None)
    if fn is None:
        raise HarnessError(f"{target} has no function {name!r}", field="--generator")
    if not callable(fn):
        raise HarnessError(f"{target}:{name} is a {type(fn).__name__}, not callable", field="--generator")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without one: judged by what it returns
        return fn
    try:
        signature.bind(None, None, [], 1)  # how it is called: defaults and *args are fine
    except TypeError:
        raise HarnessError(f"{spec} must take (model, tokenizer, prompt_ids, max_tokens)",
                           field="--generator", hint="return the generated token ids (greedy)") from None
    return fn


def read_outputs(path: Path, lines: list[int] | None = None) -> tuple[list[list[int]], list[list[int]]]:
    """(prompt ids, output ids) from JSONL lines ``{"prompt_token_ids": [...], "output_token_ids": [...]}``;
    each row's line number is appended to ``lines`` when given (for ``compare_outputs``' errors)."""
    prompts, outputs = [], []
    from .files import read_input

    try:
        text = read_input(path, "completions file").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(f"not UTF-8 text ({exc.reason})", path=path) from None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        from .suite import parse_json_line  # bounded depth and size, errors with the line

        row = parse_json_line(line, path, number)
        for key in ("prompt_token_ids", "output_token_ids"):
            value = row.get(key) if isinstance(row, dict) else None
            if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool)
                                                      for t in value):
                raise HarnessError(f"`{key}` must be a list of token ids", path=path, line=number,
                                   field=key, hint="store the ids your generator saw and wrote")
        if not row["prompt_token_ids"]:
            raise HarnessError("`prompt_token_ids` is empty", path=path, line=number, field="prompt_token_ids")
        prompts.append(row["prompt_token_ids"])
        outputs.append(row["output_token_ids"])
        if lines is not None:
            lines.append(number)
    if not prompts:
        raise HarnessError("the completions file has no rows", path=path)
    return prompts, outputs


__all__ = ["check_generator", "compare_outputs", "GeneratorReport", "ItemCheck", "load_callable",
           "read_outputs"]
