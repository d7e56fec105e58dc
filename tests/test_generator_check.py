"""`harness check-generator` and its Python API: a right loop passes, a context-losing loop
fails (exit 1), stored token ids are checked the same way, bad input is exit 2."""

from __future__ import annotations

import json

import mlx.core as mx

import pytest
from conftest import FIXTURE_MODEL, ROOT, run_harness

from harness.errors import HarnessError
from harness.generator_check import check_generator, load_callable

USER_LOOPS = str(ROOT / "catalog" / "user_generators.py")
cached_loop = load_callable(USER_LOOPS + ":cached_loop")
lost_context_loop = load_callable(USER_LOOPS + ":lost_context_loop")

PROMPTS = ["What port does the gateway use?", "SELECT name FROM people WHERE id = 3"]


def test_python_api(fixture_base):
    base = fixture_base
    good = check_generator(lambda ids, n: cached_loop(base.model, base.tokenizer, ids, n), base,
                           PROMPTS, max_tokens=16, template="chat")
    assert good.passed, good.detail
    assert [i.first_engine_difference for i in good.items] == [None, None]
    bad = check_generator(lambda ids, n: lost_context_loop(base.model, base.tokenizer, ids, n), base,
                          PROMPTS, max_tokens=16, template="chat")
    assert not bad.passed and bad.mismatches >= 1
    assert "full-context recomputation" in bad.detail
    assert any(i.first_engine_difference is not None for i in bad.items)


def test_cli_callable_and_stored_tokens(tmp_path, fixture_base):
    common = ["check-generator", "--model", str(FIXTURE_MODEL), "--suite", str(ROOT / "suites" / "smoke.yaml"),
              "--limit", "3", "--max-tokens", "12"]
    good = run_harness(*common, "--generator", "catalog.user_generators:cached_loop")
    assert good.returncode == 0, good.stderr
    assert "PASS" in good.stderr and good.stdout.count(" ok") == 3
    report = tmp_path / "report.json"
    bad = run_harness(*common, "--generator", str(ROOT / "catalog" / "user_generators.py") + ":lost_context_loop",
                      "--out", str(report))
    assert bad.returncode == 1, bad.stderr
    assert "MISMATCH" in bad.stdout and "FAIL" in bad.stderr
    assert json.loads(report.read_text())["mismatches"] >= 1
    # the same loop's output stored as token ids
    base = fixture_base
    from harness.prompts import encode_prompt

    rows = []
    for text in PROMPTS:
        ids = encode_prompt(base.tokenizer, text, "chat")
        rows.append({"prompt_token_ids": ids, "output_token_ids": lost_context_loop(base.model, base.tokenizer, ids, 12)})
    stored = tmp_path / "outputs.jsonl"
    stored.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = run_harness("check-generator", "--model", str(FIXTURE_MODEL), "--completions", str(stored),
                       "--max-tokens", "12")
    assert done.returncode == 1, done.stderr
    rows[0]["output_token_ids"] = [10 ** 7]
    stored.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = run_harness("check-generator", "--model", str(FIXTURE_MODEL), "--completions", str(stored))
    assert done.returncode == 2 and "outside the model's vocabulary" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--generator", "nomodule_xyz:fn", "--prompt", "hi"], "cannot import"),
    (["--generator", "catalog.user_generators:cached_loop"], "needs prompts"),
    (["--generator", "catalog.user_generators"], "MODULE:FUNCTION"),
    # a slice took it: --limit -63 checked the domain suite's first prompt and reported "1 of 1"
    (["--generator", "catalog.user_generators:cached_loop", "--suite", str(ROOT / "suites" / "smoke.yaml"),
      "--limit", "-2"], "--limit must be at least 1"),
])
def test_cli_bad_input_is_exit_2(args, message):
    done = run_harness("check-generator", "--model", str(FIXTURE_MODEL), *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("source, message", [
    ("raise RuntimeError('boom')\ndef f(m, t, p, n): return []\n", "raised RuntimeError: boom"),
    ("def f(:\n", "SyntaxError"),
    ("import sys\nsys.exit(0)\n", "exited"),  # rc 0 and no check at all: a silent pass
])
def test_generator_module_that_fails_to_load_is_bad_input(tmp_path, source, message):
    """The user's module raising, not parsing or exiting on import was exit 3 (or a silent exit 0)."""
    (tmp_path / "user_gen.py").write_text(source)
    with pytest.raises(HarnessError, match=message) as err:
        load_callable(f"{tmp_path / 'user_gen.py'}:f")
    assert err.value.field == "--generator"


def test_generator_signature_is_checked_by_calling_convention(tmp_path):
    """A loop with an extra defaulted parameter is callable as fn(model, tokenizer, ids, n) and
    was refused; a builtin with no signature gave exit 3; a non-callable names the attribute."""
    (tmp_path / "user_gen.py").write_text("def f(m, t, p, n, temp=0.0): return []\n"
                                          "def g(*args): return []\nh = 5\n")
    load_callable(f"{tmp_path / 'user_gen.py'}:f")
    load_callable(f"{tmp_path / 'user_gen.py'}:g")
    load_callable("builtins:max")  # no signature to check: it is called and judged by its output
    with pytest.raises(HarnessError, match="not callable"):
        load_callable(f"{tmp_path / 'user_gen.py'}:h")


class UserBaseError(BaseException):
    pass


def _raise(exc):
    def loop(ids, n):
        raise exc
    return loop


@pytest.mark.parametrize("loop, message", [
    (_raise(ValueError("user bug")), "raised ValueError: user bug"),
    (_raise(UserBaseError("odd")), "raised UserBaseError: odd"),  # was a traceback and rc 1
    (_raise(SystemExit(0)), "raised SystemExit"),  # was rc 0 with no report: a silent pass
    (lambda ids, n: None, "returned NoneType"),
    (lambda ids, n: "Paris", "returned str"),  # text, not ids: was exit 3 (int('P'))
    (lambda ids, n: 5, "returned int"),
    (lambda ids, n: [[1, 2]], "not a token id"),
    (lambda ids, n: [1.5], "not a token id"),  # was truncated to 1 and checked
    (lambda ids, n: ["560"], "not a token id"),  # was int('560') and checked
    (lambda ids, n: [True], "not a token id"),
])
def test_generator_that_raises_or_returns_no_ids_is_bad_input(fixture_base, loop, message):
    """Whatever the user's loop raises or returns is one clear error naming the prompt, never
    exit 3, a traceback or the loop's own exit code."""
    with pytest.raises(HarnessError, match=message) as err:
        check_generator(loop, fixture_base, PROMPTS, max_tokens=4, template="chat")
    assert "prompt 0" in str(err.value)


def test_generator_outputs_as_arrays_iterators_and_endless_streams(fixture_base):
    """A right loop returning a generator object was failed ('returned no tokens': the
    vocabulary check had consumed it); an endless iterator hung the run. Arrays are ids too."""
    import itertools

    import mlx.core as mx
    import numpy as np

    base = fixture_base

    def right(ids, n):
        return cached_loop(base.model, base.tokenizer, ids, n)

    for wrap in (iter, np.array, mx.array, lambda ts: (mx.array(t) for t in ts)):
        done = check_generator(lambda ids, n, wrap=wrap: wrap(right(ids, n)), base, PROMPTS, max_tokens=8, template="chat")
        assert done.passed, done.detail
    endless = check_generator(lambda ids, n: itertools.chain(right(ids, n), itertools.repeat(5)), base,
                              PROMPTS, max_tokens=8, template="chat")
    assert endless.passed and all(len(i.tokens) <= 8 for i in endless.items)


def test_generator_changing_the_working_directory_does_not_move_the_report(tmp_path, monkeypatch):
    """A loop that ran os.chdir('/') made a relative --out land in /: the run wrote outside
    the folder it was given. The working directory is put back after every call."""
    (tmp_path / "roaming.py").write_text(
        "import os, sys\nsys.path.insert(0, %r)\nfrom catalog.user_generators import cached_loop\n"
        "def f(m, t, p, n):\n    os.chdir(os.sep)\n    return cached_loop(m, t, p, n)\n" % str(ROOT))
    done = run_harness("check-generator", "--model", str(FIXTURE_MODEL), "--prompt", "hi", "--max-tokens", "4",
                       "--generator", "roaming:f", "--out", "report.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report.json").is_file()


def test_generator_that_never_returns_is_stopped(tmp_path):
    """A loop that slept forever hung the run (no limit at all); --timeout (default 300 s per
    prompt) stops it with one exit-2 line, even if the loop catches everything."""
    (tmp_path / "stuck.py").write_text(
        "import time\ndef f(m, t, p, n):\n    while True:\n        try:\n            time.sleep(3600)\n"
        "        except BaseException:\n            pass\n")
    done = run_harness("check-generator", "--model", str(FIXTURE_MODEL), "--prompt", "hi", "--timeout", "1",
                       "--generator", str(tmp_path / "stuck.py") + ":f", timeout=120)
    assert done.returncode == 2 and "did not return within 1 s" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_python_api_timeout(fixture_base):
    """The Python API has the same limit, off by default; the host's SIGALRM handler is put back."""
    import signal
    import time

    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(HarnessError, match="did not return within 0.5 s"):
        check_generator(lambda ids, n: time.sleep(3600), fixture_base, PROMPTS, timeout=0.5)
    assert signal.getsignal(signal.SIGALRM) is before


def test_generator_printing_or_closing_stdout_leaves_the_report_alone(tmp_path):
    """A loop that printed mixed its lines into the report on stdout; one that closed
    sys.stdout ended the run with a traceback and rc 1 (a failed gate). Its output goes to
    stderr now, and its close() closes nothing of the harness's."""
    (tmp_path / "noisy.py").write_text(
        "import sys\nsys.path.insert(0, %r)\nfrom catalog.user_generators import cached_loop\n"
        "def f(m, t, p, n):\n    print('noise')\n    sys.stdout.close()\n    sys.stderr.close()\n"
        "    return cached_loop(m, t, p, n)\n" % str(ROOT))
    done = run_harness("check-generator", "--model", str(FIXTURE_MODEL), "--prompt", "hi", "--prompt", "yo",
                       "--max-tokens", "4", "--generator", str(tmp_path / "noisy.py") + ":f")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("prompt ") == 2 and "noise" not in done.stdout
    assert done.stderr.count("noise") == 2 and "PASS" in done.stderr


def test_completions_id_outside_vocabulary_names_file_and_line(tmp_path):
    """An out-of-vocabulary id in a stored file said only 'output 1 has token id 99999' (a
    0-based row, blank lines not counted, no file): the error names the file, line and field."""
    stored = tmp_path / "outputs.jsonl"
    stored.write_text('{"prompt_token_ids": [1, 5], "output_token_ids": [2]}\n\n'
                      '{"prompt_token_ids": [1, 5], "output_token_ids": [7, 99999]}\n')
    done = run_harness("check-generator", "--model", str(FIXTURE_MODEL), "--completions", str(stored))
    assert done.returncode == 2, done.stderr
    assert f"{stored}:3 [output_token_ids]" in done.stderr and "99999" in done.stderr, done.stderr


def _off_by_one(model, tok, ids, n, shift=1):
    """A loop whose generated tokens sit ``shift`` positions late (the cache offset bumped after
    the prefill): a subtle bug, which moves the logits a little."""
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    logits = model(mx.array([ids]), cache=cache)[0, -1]
    for c in cache:
        c.offset += shift
    out = []
    for _ in range(n):
        out.append(int(mx.argmax(logits).item()))
        if out[-1] in tok.eos_token_ids:
            break
        logits = model(mx.array([[out[-1]]]), cache=cache)[0, -1]
    return out


def test_float32_catches_a_position_off_by_one_that_bfloat16_near_ties_hide():
    """On the fixture in bfloat16 with the sql adapter, a bfloat16 recomputation's near-ties
    (16 rounding units of the largest logit) hide the off-by-one loop on every one of 24
    domain prompts (measured: 0 of 24); the same model with its float weights in float32
    (what --float32 does) shows it on 5, and a right loop still passes there."""
    from mlx_lm.tuner.utils import load_adapters

    from harness.models import load_base
    from harness.suite import load_suite

    base = load_base(str(FIXTURE_MODEL))
    base.model.set_dtype(mx.bfloat16)
    load_adapters(base.model, str(ROOT / "fixtures" / "adapters" / "sql"))
    prompts = [c.prompt for c in load_suite(ROOT / "suites" / "domain_qa.yaml").cases[:24]]

    def mismatches():
        report = check_generator(lambda ids, n: _off_by_one(base.model, base.tokenizer, ids, n), base, prompts,
                                 max_tokens=16, template="chat")
        return sum(1 for it in report.items if it.problem)

    blunt = mismatches()
    base.model.set_dtype(mx.float32)
    sharp = mismatches()
    assert sharp >= 3 and sharp >= blunt + 3, (blunt, sharp)
    right = check_generator(lambda ids, n: _off_by_one(base.model, base.tokenizer, ids, n, shift=0), base,
                            prompts[:8], max_tokens=16, template="chat")
    assert right.passed, right.detail


def test_float32_flag_hands_the_loop_a_float32_model(tmp_path):
    from mlx_lm import load
    from mlx_lm.utils import save

    model, tok = load(str(FIXTURE_MODEL))
    model.set_dtype(mx.bfloat16)
    bf16 = tmp_path / "bf16"
    save(bf16, str(FIXTURE_MODEL), model, tok, json.loads((FIXTURE_MODEL / "config.json").read_text()))
    seen = tmp_path / "seen.txt"
    loops = tmp_path / "loops.py"
    loops.write_text(
        "import mlx.core as mx\nfrom mlx_lm.generate import generate_step\n\n"
        "def greedy(model, tok, ids, n):\n"
        f"    open({str(seen)!r}, 'a').write(str(model.parameters()['model']['norm']['weight'].dtype) + '\\n')\n"
        "    out = []\n"
        "    for t, _ in generate_step(mx.array(ids), model, max_tokens=n):\n"
        "        out.append(int(t))\n"
        "        if out[-1] in tok.eos_token_ids:\n            break\n"
        "    return out\n")
    args = ["check-generator", "--model", str(bf16), "--prompt", "Once upon a time", "--max-tokens", "8",
            "--generator", f"{loops}:greedy"]
    assert run_harness(*args).returncode == 0
    assert run_harness(*args, "--float32").returncode == 0
    assert seen.read_text().split() == ["mlx.core.bfloat16", "mlx.core.float32"]


def test_float32_needs_a_generator(tmp_path):
    stored = tmp_path / "c.jsonl"
    stored.write_text('{"prompt_token_ids": [1, 2], "output_token_ids": [3]}\n')
    done = run_harness("check-generator", "--model", str(FIXTURE_MODEL), "--completions", str(stored), "--float32")
    assert done.returncode == 2 and "--float32 needs --generator" in done.stderr
