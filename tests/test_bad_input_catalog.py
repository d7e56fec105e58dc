"""The bad-input catalog (issue 10 item 7): well over 100 broken or hostile inputs across
every subcommand. Each must exit 2 with one `harness: error:` line (at most three lines
on stderr), no traceback, no "internal error", and write nothing.

Cases run in-process through ``harness.cli.main`` (fast); a few run as real processes at
the end to check the same contract from outside.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path
from typing import Callable

import pytest

from hostile_util import FIXTURE_MODEL, ROOT, assert_bad_input, cli, lora_adapter

SQL_ADAPTER = ROOT / "fixtures" / "adapters" / "sql"

GOOD_SUITE = """\
name: cat
prompt: "{{ q }}"
target: "{{ a }}"
template: raw
generation: {max_tokens: 4}
scorers:
  - exact_match: {}
gates: {}
cases:
  - {id: one, q: "1+1", a: "2"}
  - {id: two, q: "2+2", a: "4"}
"""


class Env:
    """A scratch folder with one good suite, completions, model copy, baseline ... ."""

    def __init__(self, root: Path):
        self.root = root
        (root / "in").mkdir()
        self.suite = self.write("in/suite.yaml", GOOD_SUITE)
        self.completions = self.write("in/c.jsonl", '{"id": "one", "output": "2"}\n{"id": "two", "output": "4"}\n')
        self.out = root / "out"

    def write(self, rel: str, text: str | bytes) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
        return p

    def suite_with(self, text: str, name: str = "in/s.yaml") -> Path:
        return self.write(name, text)

    def score(self, suite: Path | str, completions: Path | str | None = None, *extra: str) -> list[str]:
        return ["score", str(suite), "--completions", str(completions or self.completions),
                "--out", str(self.out), *extra]

    def model_copy(self) -> Path:
        dst = self.root / "in" / "model"
        if not dst.exists():
            shutil.copytree(FIXTURE_MODEL, dst)
        return dst

    def eval(self, *extra: str, model: Path | str = FIXTURE_MODEL, suite: Path | None = None) -> list[str]:
        return ["eval", str(suite or self.suite), "--model", str(model), "--out", str(self.out), "--no-cache",
                *extra]


def _suite(replace: dict[str, str] | None = None, append: str = "") -> str:
    text = GOOD_SUITE
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text + append


def _broken_model(change: Callable[[Path], None]) -> Callable[[Env], list[str]]:
    def build(env: Env) -> list[str]:
        model = env.model_copy()
        change(model)
        return env.eval(model=model)
    return build


def _broken_adapter(change: Callable[[Path], None] | None = None, **size) -> Callable[[Env], list[str]]:
    def build(env: Env) -> list[str]:
        adapter = lora_adapter(env.root / "in" / "adapter", **size)
        if change:
            change(adapter)
        return env.eval("--adapter", f"x={adapter}")
    return build


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        node, *rest = key.split(".")
        if rest:
            data[node][rest[0]] = value
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def _fifo(env: "Env", rel: str) -> Path:
    path = env.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _truncate(path: Path, n: int) -> None:
    path.write_bytes(path.read_bytes()[:n])


BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


_NOT_UTF8 = os.fsdecode(b"\xff")  # a byte no UTF-8 text holds, as Python reads it from a file name


def _too_large(text: str) -> str:
    """A valid YAML file one byte over the size limit (a comment pads it)."""
    from harness.yamlsafe import MAX_BYTES

    return text + "#" * (MAX_BYTES + 1 - len(text.encode()) - 1) + "\n"


def _completions(text: str | bytes) -> Callable[[Env], list[str]]:
    return lambda env: env.score(env.suite, env.write("in/bad.jsonl", text))


def _data(text: str | bytes) -> Callable[[Env], list[str]]:
    def build(env: Env) -> list[str]:
        env.write("in/d.jsonl", text)
        suite = env.suite_with(_suite().split("cases:")[0] + "data: d.jsonl\n")
        return env.score(suite, env.write("in/c0.jsonl", '{"id": "0", "output": "x"}\n'))
    return build


def _schema_suite(schema: str, files: dict[str, str] | None = None) -> Callable[[Env], list[str]]:
    def build(env: Env) -> list[str]:
        for name, text in (files or {}).items():
            env.write(name, text)
        return env.score(env.suite_with(_suite({"  - exact_match: {}": f"  - json_schema: {{schema: {schema}}}"})))
    return build


def _sql_setup(setup: str) -> Callable[[Env], list[str]]:
    def build(env: Env) -> list[str]:
        text = (_suite({"  - exact_match: {}": "  - sql_execution: {schema_field: setup}"}).split("cases:")[0]
                + "cases:\n  - " + json.dumps({"id": "one", "q": "x", "a": "SELECT 1", "setup": setup}) + "\n")
        return env.score(env.suite_with(text), env.write("in/c1.jsonl", '{"id": "one", "output": "SELECT 1"}\n'))
    return build


def _train_config(text: str | bytes, *extra: str) -> Callable[[Env], list[str]]:
    return lambda env: ["train", str(env.write("in/train.yaml", text)), *extra]


GOOD_TRAIN = (f"model: {FIXTURE_MODEL}\ndata: {ROOT / 'fixtures' / 'data' / 'wikisql'}\n"
              "num_layers: -1\nsteps: 2\nbatch_size: 2\n")


def _results_json(env: Env, verdict: str = "pass") -> Path:
    return env.write("in/run/results.json", json.dumps({"verdict": verdict, "suites": []}))


def _good_results() -> dict:
    """A small results.json that fits the schema: suite `cat`, model base, item `two` failed."""
    metric = {"value": 0.5, "ci_low": 0.1, "ci_high": 0.9, "n": 2, "kind": "proportion", "higher_is_better": True}
    items = [{"id": i, "category": None, "prompt": "q", "target": "t", "output": o, "finish_reason": "stop",
              "ttft_s": None, "scores": {"exact_match": {"value": v, "passed": bool(v), "detail": ""}}}
             for i, o, v in (("one", "2", 1.0), ("two", "5", 0.0))]
    return {"harness_version": "0", "verdict": "pass", "created": "2026-01-01T00:00:00+00:00", "command": [],
            "environment": {}, "models": {"base": {"fingerprint": "f"}}, "warnings": [],
            "suites": [{"name": "cat", "fingerprint": "s", "data_fingerprint": "d", "template": "raw",
                        "scorers": {"exact_match": {"version": "1", "options": {}}}, "generation": {},
                        "models": {"base": {"fingerprint": "f", "metrics": {"exact_match": metric},
                                            "items": items}},
                        "gates": []}]}


def _run_with(change: Callable[[dict], object] | None = None, text: Callable[[str], str] | None = None,
              rel: str = "in/bad/results.json") -> Callable[[Env], Path]:
    """A run folder from a pull request: the good results.json, changed (dict or text)."""
    def build(env: Env) -> Path:
        data = _good_results()
        if change:
            change(data)
        raw = json.dumps(data)
        return env.write(rel, text(raw) if text else raw).parent
    return build


def _item(data: dict, i: int = 0) -> dict:
    return data["suites"][0]["models"]["base"]["items"][i]


def _baseline_with(change: Callable[[dict], object] | None = None,
                   text: Callable[[str], str] | None = None) -> Callable[[Env], Path]:
    """A baseline file from a pull request: a passing run of the catalog's suite, approved (so
    its fingerprints match), then changed (dict or text)."""
    def build(env: Env) -> Path:
        from harness.cli import main

        run = env.root / "in" / "approved"
        assert main(env.score(env.suite)[:-1] + [str(run)]) == 0
        assert main(["baseline", "approve", str(run), "--to", str(env.root / "in" / "bl0.json")]) == 0
        data = json.loads((env.root / "in" / "bl0.json").read_text())
        if change:
            change(data)
        raw = json.dumps(data)
        return env.write("in/bl.json", text(raw) if text else raw)
    return build


def _reading(command: str, run: Callable[[Env], Path]) -> Callable[[Env], list[str]]:
    """The argv of a command that reads the (hostile) run or baseline ``run`` builds."""
    def build(env: Env) -> list[str]:
        path = run(env)
        good = env.write("in/good/results.json", json.dumps(_good_results())).parent
        return {
            "compare": ["compare", str(good), str(path), "--out", str(env.out)],
            "compare-a": ["compare", str(path), str(good), "--out", str(env.out), "--fail-on-regression"],
            "approve": ["baseline", "approve", str(path), "--to", str(env.root / "b.json")],
            "history": ["history", str(path), "--csv", str(env.root / "h.csv")],
            "export": ["export", str(path), "--csv", str(env.root / "e.csv")],
            "only-failing": env.score(env.suite, None, "--only-failing", str(path)),
            "score-baseline": env.score(env.suite, None, "--baseline", str(path)),
            "eval-history": env.eval("--history", str(path)),
        }[command]
    return build


# Run folders and baselines from a pull request: valid JSON, of the wrong shape at some level.
HOSTILE_RUNS: dict[str, Callable[[Env], list[str]]] = {
    "compare-suites-a-string": _reading("compare", _run_with(lambda d: d.update(suites="cat"))),
    "compare-model-a-list": _reading("compare", _run_with(lambda d: d["suites"][0]["models"].update(base=[1]))),
    "compare-model-null": _reading("compare-a", _run_with(lambda d: d["suites"][0]["models"].update(base=None))),
    "compare-metrics-a-list": _reading("compare", _run_with(
        lambda d: d["suites"][0]["models"]["base"].update(metrics=[1]))),
    "compare-metric-value-text": _reading("compare", _run_with(
        lambda d: d["suites"][0]["models"]["base"]["metrics"]["exact_match"].update(value="high"))),
    "compare-items-a-dict": _reading("compare", _run_with(
        lambda d: d["suites"][0]["models"]["base"].update(items={"one": 1}))),
    "compare-item-null": _reading("compare", _run_with(
        lambda d: d["suites"][0]["models"]["base"]["items"].append(None))),
    "compare-item-no-id": _reading("compare", _run_with(lambda d: _item(d).pop("id"))),
    "compare-item-id-number": _reading("compare", _run_with(lambda d: _item(d).update(id=7))),
    "compare-duplicate-item-id": _reading("compare-a", _run_with(lambda d: _item(d, 1).update(id="one"))),
    "compare-scores-a-list": _reading("compare", _run_with(lambda d: _item(d).update(scores=[1]))),
    "compare-score-null": _reading("compare", _run_with(lambda d: _item(d).update(scores={"exact_match": None}))),
    "compare-score-value-text": _reading("compare", _run_with(
        lambda d: _item(d)["scores"]["exact_match"].update(passed=None, value="x"))),
    "compare-score-metrics-a-list": _reading("compare", _run_with(
        lambda d: _item(d)["scores"]["exact_match"].update(metrics=[1]))),
    "compare-ttft-text": _reading("compare", _run_with(lambda d: _item(d).update(ttft_s="fast"))),
    "compare-environment-a-list": _reading("compare", _run_with(lambda d: d.update(environment=[1]))),
    "compare-scorer-a-string": _reading("compare", _run_with(
        lambda d: d["suites"][0].update(scorers={"exact_match": "v1"}))),
    "compare-nan": _reading("compare", _run_with(text=lambda t: t.replace('"value": 0.5', '"value": NaN'))),
    "compare-1e309": _reading("compare", _run_with(text=lambda t: t.replace('"value": 0.5', '"value": 1e309'))),
    "approve-model-null": _reading("approve", _run_with(lambda d: d["suites"][0]["models"].update(base=None))),
    "approve-output-number": _reading("approve", _run_with(lambda d: _item(d).update(output=5))),
    "approve-metric-n-negative": _reading("approve", _run_with(
        lambda d: d["suites"][0]["models"]["base"]["metrics"]["exact_match"].update(n=-5))),
    "approve-gate-without-suite": _reading("approve", _run_with(
        lambda d: (d.update(verdict="fail"), d["suites"][0].update(gates=[{"passed": False}])))),
    "approve-infinity": _reading("approve", _run_with(text=lambda t: t.replace('"value": 0.5', '"value": Infinity'))),
    "approve-lone-surrogate-id": _reading("approve", _run_with(text=lambda t: t.replace('"one"', '"\\ud800"', 1))),
    "approve-environment-a-string": _reading("approve", _run_with(lambda d: d.update(environment="x"))),
    "history-gates-a-string": _reading("history", _run_with(lambda d: d["suites"][0].update(gates="x"))),
    "history-metrics-a-string": _reading("history", _run_with(
        lambda d: d["suites"][0]["models"]["base"].update(metrics="x"))),
    "history-environment-a-list": _reading("history", _run_with(lambda d: d.update(environment=[1]))),
    "history-n-1e400": _reading("history", _run_with(text=lambda t: t.replace('"n": 2', '"n": 1' + "0" * 400))),
    "export-items-a-string": _reading("export", _run_with(lambda d: d["suites"][0]["models"]["base"].update(items="x"))),
    "export-lone-surrogate-id": _reading("export", _run_with(text=lambda t: t.replace('"one"', '"\\ud800"', 1))),
    "only-failing-model-a-list": _reading("only-failing", _run_with(
        lambda d: d["suites"][0]["models"].update(base=[1]))),
    "only-failing-scores-a-string": _reading("only-failing", _run_with(lambda d: _item(d).update(scores="x"))),
    "eval-history-metrics-a-list": _reading("eval-history", _run_with(
        lambda d: d["suites"][0]["models"]["base"].update(metrics=[1]))),
    "baseline-item-value-infinity": _reading("score-baseline", _baseline_with(
        text=lambda t: t.replace('"exact_match": 1.0', '"exact_match": Infinity', 1))),
    "baseline-item-value-1e309": _reading("score-baseline", _baseline_with(
        text=lambda t: t.replace('"exact_match": 1.0', '"exact_match": -1e309', 1))),
    "baseline-item-value-1e400-int": _reading("score-baseline", _baseline_with(
        text=lambda t: t.replace('"exact_match": 1.0', '"exact_match": 1' + "0" * 400, 1))),
    "baseline-duplicate-item-id": _reading("score-baseline", _baseline_with(
        lambda d: d["suites"][0]["models"]["base"]["items"][1].update(id="one"))),
    "compare-baseline-1e400-int": _reading("compare", _baseline_with(
        text=lambda t: t.replace('"exact_match": 1.0', '"exact_match": 1' + "0" * 400, 1))),
}


CASES: dict[str, Callable[[Env], list[str]]] = {
    # --- usage -------------------------------------------------------------------------
    "unknown-command": lambda env: ["frobnicate"],
    "eval-no-model": lambda env: ["eval", str(env.suite), "--out", str(env.out)],
    "eval-limit-0": lambda env: env.eval("--limit", "0"),
    "eval-limit-text": lambda env: env.eval("--limit", "ten"),
    "adapter-no-equals": lambda env: env.eval("--adapter", "nothing"),
    "adapter-named-base": lambda env: env.eval("--adapter", f"base={SQL_ADAPTER}"),
    "adapter-name-twice": lambda env: env.eval("--adapter", f"a={SQL_ADAPTER}", "--adapter", f"a={SQL_ADAPTER}"),
    "adapter-missing": lambda env: env.eval("--adapter", f"a={env.root / 'nope'}"),
    "adapter-empty-folder": lambda env: env.eval("--adapter", f"a={env.write('in/empty/x', '').parent}"),
    "score-no-completions": lambda env: ["score", str(env.suite), "--out", str(env.out)],
    "suites-missing": lambda env: env.eval(suite=env.root / "nope.yaml"),
    "suites-empty-folder": lambda env: env.eval(suite=env.write("in/nosuites/readme.txt", "x").parent),
    # --- --out ---------------------------------------------------------------------------
    "out-empty": lambda env: env.score(env.suite)[:-2] + ["--out", ""],
    "out-file": lambda env: env.score(env.suite)[:-2] + ["--out", str(env.write("in/file.txt", "x"))],
    "out-under-file": lambda env: env.score(env.suite)[:-2] + ["--out", str(env.write("in/f2.txt", "x") / "sub")],
    "out-devnull": lambda env: env.score(env.suite)[:-2] + ["--out", "/dev/null"],
    # paths that are not UTF-8 text (b"\xff": a lone surrogate in Python): results.json, the
    # reports and junit.xml name them, and writing those failed after the run (exit 3)
    "out-not-utf8": lambda env: env.score(env.suite)[:-2] + ["--out", str(env.root / _NOT_UTF8)],
    "suite-name-not-utf8": lambda env: env.score(env.suite_with(GOOD_SUITE, name=f"in/s{_NOT_UTF8}.yaml")),
    "data-name-not-utf8": lambda env: (  # reached through a link: a UTF-8 suite cannot spell the name
        env.write(f"in/d{_NOT_UTF8}.jsonl", '{"q": "1", "a": "2"}\n'),
        os.symlink(f"d{_NOT_UTF8}.jsonl", env.root / "in" / "dl.jsonl"),
        env.score(env.suite_with(_suite().split("cases:")[0] + "data: dl.jsonl\n"),
                  env.write("in/c0.jsonl", '{"id": "0", "output": "x"}\n')))[2],
    "completions-name-not-utf8": lambda env: env.score(env.suite, env.write(
        f"in/c{_NOT_UTF8}.jsonl", '{"id": "one", "output": "2"}\n{"id": "two", "output": "4"}\n')),
    "baseline-name-not-utf8": lambda env: env.score(env.suite, None, "--baseline", str(
        _baseline_with()(env).rename(env.root / "in" / f"bl{_NOT_UTF8}.json"))),
    "model-folder-not-utf8": lambda env: env.eval(model=env.model_copy().rename(env.root / "in" / f"m{_NOT_UTF8}")),
    "model-weights-name-not-utf8": _broken_model(lambda m: (m / "model.safetensors").rename(
        m / f"model{_NOT_UTF8}.safetensors")),
    "adapter-folder-not-utf8": lambda env: env.eval("--adapter", "x=" + str(lora_adapter(
        env.root / "in" / "a").rename(env.root / "in" / f"a{_NOT_UTF8}"))),
    "eval-out-file": lambda env: env.eval()[:-3] + ["--out", str(env.write("in/f3.txt", "x"))],
    "compare-out-file": lambda env: ["compare", str(env.root), str(env.root), "--out",
                                     str(env.write("in/f4.txt", "x"))],
    "fuse-out-devnull": lambda env: ["fuse", "--model", str(FIXTURE_MODEL), "--adapter", str(SQL_ADAPTER),
                                     "--out", "/dev/null"],
    "fuse-out-not-empty": lambda env: ["fuse", "--model", str(FIXTURE_MODEL), "--adapter", str(SQL_ADAPTER),
                                       "--out", str(env.write("in/full/x", "x").parent)],
    "approve-to-folder": lambda env: ["baseline", "approve", str(_results_json(env).parent), "--to",
                                      str(env.root / "in")],
    # --- suite YAML ----------------------------------------------------------------------
    "suite-empty": lambda env: env.score(env.suite_with("")),
    "suite-a-list": lambda env: env.score(env.suite_with("- a\n- b\n")),
    "suite-a-scalar": lambda env: env.score(env.suite_with("just text\n")),
    "suite-syntax": lambda env: env.score(env.suite_with("name: [unclosed\n")),
    "suite-tab-indent": lambda env: env.score(env.suite_with("name: x\n\tprompt: y\n")),
    "suite-python-tag": lambda env: env.score(env.suite_with("name: !!python/object/apply:os.system ['true']\n")),
    "suite-alias-bomb": lambda env: env.score(env.suite_with(BOMB)),
    "suite-too-large": lambda env: env.score(env.suite_with(_too_large(GOOD_SUITE))),
    "suite-deep-nesting": lambda env: env.score(env.suite_with("name: " + "[" * 3000 + "]" * 3000 + "\n")),
    "suite-recursive-alias": lambda env: env.score(env.suite_with("name: &a [*a]\n")),
    "suite-duplicate-key": lambda env: env.score(env.suite_with(_suite(append="name: again\n"))),
    "suite-duplicate-scorer": lambda env: env.score(env.suite_with(_suite(
        {"  - exact_match: {}": "  - exact_match: {}\n  - exact_match: {case_sensitive: false}"}))),
    "suite-unknown-field": lambda env: env.score(env.suite_with(_suite(append="colour: blue\n"))),
    "suite-no-prompt": lambda env: env.score(env.suite_with(_suite({'prompt: "{{ q }}"\n': ""}))),
    "suite-no-scorers": lambda env: env.score(env.suite_with(_suite({"scorers:\n  - exact_match: {}\n": ""}))),
    "suite-empty-scorers": lambda env: env.score(env.suite_with(_suite({"  - exact_match: {}\n": "  []\n"}))),
    "suite-data-and-cases": lambda env: env.score(env.suite_with(_suite(append="data: d.jsonl\n"))),
    "suite-unknown-scorer": lambda env: env.score(env.suite_with(_suite({"exact_match: {}": "vibes: {}"}))),
    "suite-scorer-bad-option": lambda env: env.score(env.suite_with(_suite({"exact_match: {}":
                                                                            "exact_match: {loud: 1}"}))),
    "suite-temperature-nan": lambda env: env.score(env.suite_with(_suite(
        {"{max_tokens: 4}": "{max_tokens: 4, temperature: .nan}"}))),
    "suite-temperature-inf": lambda env: env.score(env.suite_with(_suite(
        {"{max_tokens: 4}": "{max_tokens: 4, temperature: .inf}"}))),
    "suite-temperature-negative": lambda env: env.score(env.suite_with(_suite(
        {"{max_tokens: 4}": "{max_tokens: 4, temperature: -1}"}))),
    "suite-top-p-1e400": lambda env: env.score(env.suite_with(_suite({"{max_tokens: 4}": "{max_tokens: 4, top_p: 1e400}"}))),
    "suite-max-tokens-0": lambda env: env.score(env.suite_with(_suite({"{max_tokens: 4}": "{max_tokens: 0}"}))),
    "suite-max-tokens-text": lambda env: env.score(env.suite_with(_suite({"{max_tokens: 4}": "{max_tokens: many}"}))),
    "suite-gate-min-nan": lambda env: env.score(env.suite_with(_suite({"gates: {}": "gates: {exact_match: {min: .nan}}"}))),
    "suite-gate-unknown-metric": lambda env: env.score(env.suite_with(_suite(
        {"gates: {}": "gates: {bleu: {min: 0.5}}"}))),
    "suite-gate-unknown-option": lambda env: env.score(env.suite_with(_suite(
        {"gates: {}": "gates: {exact_match: {minimum: 0.5}}"}))),
    "suite-gate-critical-unknown-id": lambda env: env.score(env.suite_with(_suite(
        {"gates: {}": "gates: {exact_match: {critical: [nobody]}}"}))),
    "suite-template-unknown": lambda env: env.score(env.suite_with(_suite({"template: raw": "template: fancy"}))),
    "suite-not-utf8": lambda env: env.score(env.suite_with(b"name: \xff\xfe\n")),  # type: ignore[arg-type]
    "suite-jinja-syntax": lambda env: env.score(env.suite_with(_suite({'prompt: "{{ q }}"': 'prompt: "{{ q "'}))),
    "suite-jinja-missing-field": lambda env: env.score(env.suite_with(_suite({'prompt: "{{ q }}"': 'prompt: "{{ z }}"'}))),
    "suite-jinja-escape": lambda env: env.score(env.suite_with(_suite(
        {'prompt: "{{ q }}"': "prompt: \"{{ q.__class__.__mro__[1].__subclasses__() }}\""}))),
    "suite-jinja-huge-string": lambda env: env.score(env.suite_with(_suite(
        {'prompt: "{{ q }}"': "prompt: \"{{ q * 1000000000 }}\""}))),
    "suite-jinja-huge-power": lambda env: env.score(env.suite_with(_suite(
        {'prompt: "{{ q }}"': "prompt: \"{{ 9 ** 999999 }}\""}))),
    "suite-jinja-huge-format": lambda env: env.score(env.suite_with(_suite(
        {'prompt: "{{ q }}"': "prompt: \"{{ '%0999999999d' % 1 }}\""}))),
    "suite-target-error": lambda env: env.score(env.suite_with(_suite({'target: "{{ a }}"': 'target: "{{ a[5] }}"'}))),
    "suite-duplicate-case-id": lambda env: env.score(env.suite_with(_suite({"id: two": "id: one"}))),
    "suite-case-not-mapping": lambda env: env.score(env.suite_with(_suite(append="  - just a string\n"))),
    # --- data: ---------------------------------------------------------------------------
    "data-missing": lambda env: env.score(env.suite_with(_suite().split("cases:")[0] + "data: nope.jsonl\n")),
    "data-outside": lambda env: env.score(env.suite_with(_suite().split("cases:")[0] + "data: ../../x.jsonl\n")),
    "data-absolute": lambda env: env.score(env.suite_with(_suite().split("cases:")[0] + "data: /etc/hostname\n")),
    "data-proc": lambda env: env.score(env.suite_with(_suite().split("cases:")[0] + "data: /proc/self/environ\n")),
    "data-dev-zero": lambda env: env.score(env.suite_with(_suite().split("cases:")[0] + "data: /dev/zero\n"),
                                           None, "--allow-outside-data"),
    "data-fifo": lambda env: (os.mkfifo(env.root / "in" / "p.jsonl"),
                              env.score(env.suite_with(_suite().split("cases:")[0] + "data: p.jsonl\n")))[1],
    "data-folder": lambda env: (env.write("in/dd/x", ""),
                                env.score(env.suite_with(_suite().split("cases:")[0] + "data: dd\n")))[1],
    "data-symlink-out": lambda env: (os.symlink("/etc/hostname", env.root / "in" / "l.jsonl"),
                                     env.score(env.suite_with(_suite().split("cases:")[0] + "data: l.jsonl\n")))[1],
    "data-symlink-loop": lambda env: (os.symlink("m2.jsonl", env.root / "in" / "m1.jsonl"),
                                      os.symlink("m1.jsonl", env.root / "in" / "m2.jsonl"),
                                      env.score(env.suite_with(_suite().split("cases:")[0] + "data: m1.jsonl\n")))[2],
    "data-not-utf8": _data(b'{"q": "\xff"}\n'),
    "data-invalid-json": _data('{"q": \n'),
    "data-a-list": _data("[1, 2]\n"),
    "data-deep": _data('{"q": ' + "[" * 5000 + "]" * 5000 + "}\n"),
    "data-empty": _data("\n\n"),
    "data-huge-number": _data('{"q": 1' + "0" * 5000 + "}\n"),
    # --- completions ---------------------------------------------------------------------
    "completions-missing": lambda env: env.score(env.suite, env.root / "nope.jsonl"),
    "completions-folder": lambda env: env.score(env.suite, env.root / "in"),
    "completions-not-utf8": _completions(b'{"id": "one", "output": "\xff"}\n'),
    "completions-invalid-json": _completions('{"id": "one", "output": \n'),
    "completions-deep": _completions('{"id": "one", "output": "x", "n": ' + "[" * 5000 + "]" * 5000 + "}\n"),
    "completions-a-list": _completions('["one", "2"]\n'),
    "completions-no-output": _completions('{"id": "one"}\n'),
    "completions-output-number": _completions('{"id": "one", "output": 2}\n'),
    "completions-bad-finish": _completions('{"id": "one", "output": "2", "finish_reason": "eos"}\n'),
    "completions-unknown-id": _completions('{"id": "three", "output": "2"}\n'),
    "completions-duplicate-id": _completions('{"id": "one", "output": "2"}\n{"id": "one", "output": "2"}\n'),
    "completions-no-base": _completions('{"id": "one", "output": "2", "model": "x"}\n'
                                        '{"id": "two", "output": "4", "model": "x"}\n'),
    "completions-missing-case": _completions('{"id": "one", "output": "2"}\n'),
    "completions-escape-in-id": _completions('{"id": "\\u001b[31mred\\u0000", "output": "2"}\n'),
    "completions-empty": _completions(""),
    "completions-lone-surrogate": _completions('{"id": "one", "output": "\\ud800"}\n{"id": "two", "output": "4"}\n'),
    "data-lone-surrogate": _data('{"q": "\\udfff"}\n'),
    "suite-lone-surrogate": lambda env: env.score(env.suite_with(_suite({"name: cat": 'name: "\\ud800"'}))),
    # --- schemas and scorer data ---------------------------------------------------------
    "schema-file-missing": _schema_suite("nope.json"),
    "schema-file-outside": _schema_suite("../outside.json", {"outside.json": "{}"}),
    "schema-file-invalid-json": _schema_suite("s.json", {"in/s.json": "{nope"}),
    "schema-file-not-utf8": lambda env: (env.write("in/s8.json", b'{"title": "\xff"}'),
                                         _schema_suite("s8.json")(env))[1],
    "schema-invalid": _schema_suite("{type: 12}"),
    "schema-ref-http": _schema_suite("{$ref: 'http://127.0.0.1:9/x.json'}"),
    "schema-ref-file-url": _schema_suite("{$ref: 'file:///etc/passwd'}"),
    "schema-ref-dotdot": _schema_suite("{$ref: '../outside.json'}", {"outside.json": "{}"}),
    "schema-ref-missing-pointer": _schema_suite("{$ref: '#/$defs/none'}"),
    "schema-ref-in-file-http": _schema_suite("s2.json", {"in/s2.json": '{"$ref": "https://example.com/s"}'}),
    "keywords-bad-regex": lambda env: env.score(env.suite_with(_suite({"  - exact_match: {}": "  - keywords: {}"}).replace(
        'a: "2"}', 'a: "2", concepts: [[{regex: "(unclosed"}]]}').replace('a: "4"}', 'a: "4", concepts: [["x"]]}'))),
    "keywords-no-concepts": lambda env: env.score(env.suite_with(_suite({"  - exact_match: {}": "  - keywords: {}"}))),
    "sql-setup-attach": _sql_setup("ATTACH DATABASE '/tmp/hostile-catalog.db' AS x; CREATE TABLE t (a INT);"),
    "sql-setup-pragma": _sql_setup("PRAGMA writable_schema = 1; CREATE TABLE t (a INT);"),
    "sql-setup-extension": _sql_setup("SELECT load_extension('x'); CREATE TABLE t (a INT);"),
    "sql-setup-syntax": _sql_setup("CREATE TABLE t (a INT"),
    "sql-setup-empty": _sql_setup("   "),
    # --- baselines and runs --------------------------------------------------------------
    "baseline-missing": lambda env: env.score(env.suite, None, "--baseline", str(env.root / "nope.json")),
    "baseline-invalid-json": lambda env: env.score(env.suite, None, "--baseline", str(env.write("in/b.json", "{"))),
    "baseline-a-list": lambda env: env.score(env.suite, None, "--baseline", str(env.write("in/b2.json", "[]"))),
    "baseline-is-results": lambda env: env.score(env.suite, None, "--baseline", str(_results_json(env))),
    "baseline-not-utf8": lambda env: env.score(env.suite, None, "--baseline", str(env.write("in/b3.json", b"\xff"))),
    "approve-missing": lambda env: ["baseline", "approve", str(env.root / "nope"), "--to", str(env.root / "b.json")],
    "approve-failing-run": lambda env: ["baseline", "approve", str(_results_json(env, "fail").parent), "--to",
                                        str(env.root / "b.json")],
    "compare-missing": lambda env: ["compare", str(env.root / "a"), str(env.root / "b"), "--out", str(env.out)],
    "compare-invalid": lambda env: ["compare", str(env.write("in/r1/results.json", "{").parent),
                                    str(env.write("in/r2/results.json", "{").parent), "--out", str(env.out)],
    "export-missing": lambda env: ["export", str(env.root / "nope"), "--csv", str(env.root / "x.csv")],
    "history-missing": lambda env: ["history", str(env.root / "nope")],
    **HOSTILE_RUNS,
    # --- models --------------------------------------------------------------------------
    "model-missing": lambda env: env.eval(model=env.root / "nope"),
    "model-is-file": lambda env: env.eval(model=env.write("in/m.txt", "x")),
    "model-config-list": _broken_model(lambda m: (m / "config.json").write_text("[1, 2]")),
    "model-config-invalid": _broken_model(lambda m: (m / "config.json").write_text("{")),
    "model-config-missing": _broken_model(lambda m: (m / "config.json").unlink()),
    "model-no-hidden-size": _broken_model(lambda m: _edit_json(m / "config.json", hidden_size=None)),
    "model-no-model-type": _broken_model(lambda m: _edit_json(m / "config.json", model_type=None)),
    "model-unknown-type": _broken_model(lambda m: _edit_json(m / "config.json", model_type="nonexistent_arch")),
    "model-weights-truncated": _broken_model(lambda m: _truncate(m / "model.safetensors", 5000)),
    "model-weights-empty": _broken_model(lambda m: (m / "model.safetensors").write_bytes(b"")),
    "model-weights-header-lies": _broken_model(lambda m: (m / "model.safetensors").write_bytes(
        struct.pack("<Q", 1 << 40) + b"{}")),
    "model-no-weights": _broken_model(lambda m: (m / "model.safetensors").unlink()),
    "model-weights-folder": _broken_model(lambda m: (m / "model-00002-of-00002.safetensors").mkdir()),
    # entries the loader may read that are not regular files: mlx-lm blocked forever on the
    # FIFO; transformers took the device link for a missing file and loaded another tokenizer
    "model-tokenizer-fifo": _broken_model(lambda m: ((m / "tokenizer.json").unlink(), os.mkfifo(m / "tokenizer.json"))),
    "model-tokenizer-config-devzero": _broken_model(lambda m: ((m / "tokenizer_config.json").unlink(),
                                                               os.symlink("/dev/zero", m / "tokenizer_config.json"))),
    "model-vocab-link-loop": _broken_model(lambda m: os.symlink("vocab.json", m / "vocab.json")),
    "model-named-template-fifo": _broken_model(lambda m: ((m / "additional_chat_templates").mkdir(),
                                                          os.mkfifo(m / "additional_chat_templates" / "tools.jinja"))),
    "model-wrong-shape-weights": _broken_model(lambda m: _edit_json(m / "config.json", hidden_size=160)),
    "model-chat-template-broken": _broken_model(lambda m: (m / "chat_template.jinja").write_text("{% for %}")),
    "model-named-chat-template-broken": _broken_model(lambda m: (  # tokenizer_config's list form
        (m / "chat_template.jinja").unlink(), _edit_json(m / "tokenizer_config.json",
                                                         chat_template=[{"name": "default", "template": "{% for %}"}]))),
    # --- adapters ------------------------------------------------------------------------
    "adapter-wider-base": _broken_adapter(hidden=32, heads=2, head_dim=16, kv_heads=1),
    "adapter-deeper-base": _broken_adapter(layers=4, num_layers=4),
    "adapter-nan": _broken_adapter(fill=float("nan")),
    "adapter-inf": _broken_adapter(fill=float("inf")),
    "adapter-rank-mismatch": _broken_adapter(lambda a: _edit_json(a / "adapter_config.json",
                                                                  **{"lora_parameters.rank": 8})),
    "adapter-truncated": _broken_adapter(lambda a: _truncate(a / "adapters.safetensors", 200)),
    "adapter-empty-weights": _broken_adapter(lambda a: (a / "adapters.safetensors").write_bytes(b"")),
    "adapter-config-list": _broken_adapter(lambda a: (a / "adapter_config.json").write_text("[]")),
    "adapter-config-invalid": _broken_adapter(lambda a: (a / "adapter_config.json").write_text("{")),
    "adapter-type-unknown": _broken_adapter(lambda a: _edit_json(a / "adapter_config.json", fine_tune_type="x")),
    "adapter-num-layers-0": _broken_adapter(lambda a: _edit_json(a / "adapter_config.json", num_layers=0)),
    "adapter-scale-nan": _broken_adapter(lambda a: (a / "adapter_config.json").write_text(
        (a / "adapter_config.json").read_text().replace('"scale": 10.0', '"scale": NaN'))),
    "adapter-wrong-base-fingerprint": _broken_adapter(lambda a: _edit_json(a / "adapter_config.json",
                                                                           base_fingerprint="sha256:0000")),
    # --- training ------------------------------------------------------------------------
    "train-config-missing": lambda env: ["train", str(env.root / "nope.yaml")],
    "train-config-folder": lambda env: ["train", str(env.root / "in")],
    "train-config-not-utf8": _train_config(b"model: \xff\n"),
    "train-config-syntax": _train_config("model: [\n"),
    "train-config-list": _train_config("- a\n"),
    "train-config-duplicate-key": _train_config(GOOD_TRAIN + "steps: 3\n"),
    "train-config-nan-lr": _train_config(GOOD_TRAIN + "learning_rate: .nan\n"),
    "train-config-unknown-key": _train_config(GOOD_TRAIN + "epochs: 3\n"),
    "train-config-num-layers-0": _train_config(GOOD_TRAIN.replace("num_layers: -1", "num_layers: 0")),
    "train-config-pad-multiple-huge": _train_config(GOOD_TRAIN + "pad_multiple: 100000\n"),
    "train-collective-timeout-bad": _train_config(GOOD_TRAIN, "--collective-timeout", "soon"),
    "train-config-alias-bomb": _train_config(BOMB),
    "train-config-too-large": _train_config(_too_large(GOOD_TRAIN)),
    "train-override-no-value": _train_config(GOOD_TRAIN, "--steps"),
    "train-override-nan": _train_config(GOOD_TRAIN, "--learning_rate", ".nan"),
    "train-resume-nothing": lambda env: _train_config(GOOD_TRAIN + f"adapter_path: {env.root / 'ad'}\n",
                                                      "--resume")(env),
    "lint-missing-folder": lambda env: ["lint-data", str(env.root / "nope")],
    "lint-model-tokenizer-fifo": lambda env: (_broken_model(lambda m: ((m / "tokenizer.json").unlink(),
                                                                       os.mkfifo(m / "tokenizer.json")))(env),
                                              ["lint-data", str(ROOT / "fixtures" / "data" / "wikisql"), "--model",
                                               str(env.model_copy())])[1],
    "lint-model-tokenizer-corrupt": lambda env: ((env.model_copy() / "tokenizer.json").write_text(""),
                                                 ["lint-data", str(ROOT / "fixtures" / "data" / "wikisql"), "--model",
                                                  str(env.model_copy())])[1],
    # a project folder that is a looping link, and a local model named relative to here
    "init-dir-symlink-loop": lambda env: (os.symlink("l2", env.root / "l1"), os.symlink("l1", env.root / "l2"),
                                          env.model_copy(), ["init", str(env.root / "l1"), "--model", "in/model"])[3],
    # ... or a folder under one: 0401de6's check of the folder itself did not see it (exit 3)
    "init-dir-under-symlink-loop": lambda env: (os.symlink("l4", env.root / "l3"), os.symlink("l3", env.root / "l4"),
                                                env.model_copy(), ["init", str(env.root / "l3" / "project"),
                                                                   "--model", "in/model"])[3],
    "lint-schema-invalid-json": lambda env: ["lint-data", str(ROOT / "fixtures" / "data" / "wikisql"), "--schema",
                                             str(env.write("in/ls.json", "{"))],
    "lint-schema-ref-http": lambda env: ["lint-data", str(ROOT / "fixtures" / "data" / "wikisql"), "--schema",
                                         str(env.write("in/ls2.json", '{"$ref": "http://127.0.0.1:9/s"}'))],
    "lint-data-not-utf8": lambda env: (env.write("in/ld/train.jsonl", b"\xff\n"), env.write("in/ld/valid.jsonl", "{}\n"),
                                       ["lint-data", str(env.root / "in" / "ld")])[2],
    "train-resume-corrupt-checkpoint": lambda env: (
        env.write("ad/checkpoints/latest.json", '{"checkpoint": "step-0000001", "step": 1}'),
        env.write("ad/checkpoints/step-0000001/adapters.safetensors", b"\x00" * 12),
        env.write("ad/checkpoints/step-0000001/state.json", "{"),
        _train_config(GOOD_TRAIN + f"adapter_path: {env.root / 'ad'}\n", "--resume")(env))[3],
    "train-resume-pointer-escape": lambda env: (
        env.write("ad/checkpoints/latest.json", '{"checkpoint": "../../../etc", "step": 1}'),
        _train_config(GOOD_TRAIN + f"adapter_path: {env.root / 'ad'}\n", "--resume")(env))[1],
    "train-adapter-path-is-file": _train_config(GOOD_TRAIN + "adapter_path: /dev/null\n"),
    "check-generator-out-devnull": lambda env: ["check-generator", "--model", str(FIXTURE_MODEL), "--completions",
                                                str(env.completions), "--out", "/dev/null"],
    "check-generator-completions-bad": lambda env: ["check-generator", "--model", str(FIXTURE_MODEL),
                                                    "--completions", str(env.write("in/g.jsonl", "{"))],
    "export-csv-devnull": lambda env: ["export", str(_results_json(env).parent), "--csv", "/dev/null"],
    "history-csv-folder": lambda env: ["history", str(_results_json(env).parent), "--csv", str(env.root / "in")],
    "model-hub-id-not-cached": lambda env: env.eval(model="hostile-org/not-a-cached-model"),
    "fifo-suite": lambda env: env.score(_fifo(env, "in/fifo.yaml")),
    "fifo-completions": lambda env: env.score(env.suite, _fifo(env, "in/fifo.jsonl")),
    "fifo-baseline": lambda env: env.score(env.suite, None, "--baseline", str(_fifo(env, "in/fifo.json"))),
    "fifo-train-config": lambda env: ["train", str(_fifo(env, "in/fifo-train.yaml"))],
    "fifo-model-config": _broken_model(lambda m: ((m / "config.json").unlink(), os.mkfifo(m / "config.json"))),
    "fifo-model-weights": _broken_model(lambda m: ((m / "model.safetensors").unlink(),
                                                   os.mkfifo(m / "model.safetensors"))),
    "fifo-adapter-config": _broken_adapter(lambda a: ((a / "adapter_config.json").unlink(),
                                                      os.mkfifo(a / "adapter_config.json"))),
    "fifo-lint-schema": lambda env: ["lint-data", str(ROOT / "fixtures" / "data" / "wikisql"), "--schema",
                                     str(_fifo(env, "in/fifo-schema.json"))],
    "fifo-generator-completions": lambda env: ["check-generator", "--model", str(FIXTURE_MODEL), "--completions",
                                               str(_fifo(env, "in/fifo-gen.jsonl"))],
    "fuse-adapter-missing": lambda env: ["fuse", "--model", str(FIXTURE_MODEL), "--adapter", str(env.root / "nope"),
                                         "--out", str(env.out)],
    "fuse-nan-adapter": lambda env: ["fuse", "--model", str(FIXTURE_MODEL), "--adapter",
                                     str(lora_adapter(env.root / "in" / "nan", fill=float("nan"))), "--out", str(env.out)],
    "fuse-wider-adapter": lambda env: ["fuse", "--model", str(FIXTURE_MODEL), "--adapter",
                                       str(lora_adapter(env.root / "in" / "w", hidden=32, heads=2, kv_heads=1)),
                                       "--out", str(env.out)],
}


def test_the_catalog_covers_every_subcommand_with_at_least_100_cases(tmp_path):
    assert len(CASES) >= 100, len(CASES)
    commands = set()
    for i, build in enumerate(CASES.values()):
        (tmp_path / str(i)).mkdir()
        commands.add(build(Env(tmp_path / str(i)))[0])
    assert {"eval", "score", "train", "lint-data", "fuse", "baseline", "compare", "export",
            "history"} <= commands, commands


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def env(tmp_path, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.chdir(tmp_path)
    return Env(tmp_path)


@pytest.fixture(autouse=True)
def _never_hang():
    """A case that blocks (a FIFO read, a regex) fails after 60 s instead of hanging CI."""
    import signal

    def timeout(*_):
        raise TimeoutError("the harness hung on this input")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def _no_generation(monkeypatch):
    import harness.runner

    def refuse(*a, **k):
        raise AssertionError("generated before refusing the input")

    monkeypatch.setattr(harness.runner, "generate", refuse)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_exit_2_in_one_line_and_writes_nothing(env, capsys, name):
    argv = CASES[name](env)
    before = _snapshot(env.root)
    code, out, err = cli(capsys, *argv)
    assert_bad_input(code, err)
    assert "\x1b" not in err and "\x00" not in err and "\x1b" not in out
    assert _snapshot(env.root) == before, f"{name} wrote {_snapshot(env.root) - before}"
    assert not Path("/tmp/hostile-catalog.db").exists()


@pytest.mark.parametrize("name", sorted(HOSTILE_RUNS))
def test_a_hostile_run_or_baseline_is_named_in_the_error(env, capsys, name):
    """Not refused for another reason: the one error line names the hostile file."""
    code, _, err = cli(capsys, *CASES[name](env))
    assert_bad_input(code, err)
    assert "bad" in err or "bl.json" in err, err


@pytest.mark.parametrize("command", ["compare", "compare-a", "approve", "history", "export", "only-failing"])
def test_the_unchanged_run_the_hostile_cases_start_from_is_read(env, capsys, command):
    code, _, err = cli(capsys, *_reading(command, _run_with())(env))
    assert code == 0, err


def test_the_unchanged_baseline_the_hostile_cases_start_from_gates(env, capsys):
    code, _, err = cli(capsys, *_reading("score-baseline", _baseline_with())(env))
    assert code == 0, err


@pytest.mark.parametrize("name", ["suite-too-large", "train-config-too-large"])
def test_a_yaml_file_over_the_size_limit_is_refused_before_it_is_parsed(env, capsys, name):
    """PyYAML composes a whole document before any limit is checked, at 4 to 7 s per MB on
    a busy machine: a 50 MB suite of inline cases took 214 s and 2.7 GB to be refused, as
    "more than 1,000,000 values (aliases...)", though it had no alias. Now its size is read
    first: one line naming the file, the limit and where large data goes."""
    code, _, err = cli(capsys, *CASES[name](env))
    assert_bad_input(code, err, "larger than 4 MiB", "JSONL")
    assert ("s.yaml" if name.startswith("suite") else "train.yaml") in err
    assert ("suite's cases" in err) == name.startswith("suite"), err  # a training config was told of suites


def test_a_folder_named_like_a_weight_file_is_called_a_folder(env, capsys):
    """It was "not a regular file (a FIFO, socket or device)", with the hint that the file was
    truncated: neither is what a folder named model-00002-of-00002.safetensors is."""
    code, _, err = cli(capsys, *CASES["model-weights-folder"](env))
    assert_bad_input(code, err, "model-00002-of-00002.safetensors", "is a folder, not a safetensors file")
    assert "truncated" not in err


@pytest.mark.parametrize("name, entry", [("model-tokenizer-fifo", "tokenizer.json"),
                                         ("model-tokenizer-config-devzero", "tokenizer_config.json"),
                                         ("model-vocab-link-loop", "vocab.json"),
                                         ("model-named-template-fifo", "tools.jinja"),
                                         ("lint-model-tokenizer-fifo", "tokenizer.json")])
def test_a_loader_file_that_is_not_a_regular_file_is_named(env, capsys, name, entry):
    """Refused before mlx-lm or transformers open it, naming the entry and what it is."""
    code, _, err = cli(capsys, *CASES[name](env))
    assert_bad_input(code, err, entry, "model file is")


def test_a_yaml_file_of_many_values_and_no_alias_is_not_told_about_aliases(tmp_path, monkeypatch):
    """Over the value limit with no alias at all (inline cases written out), the error read
    "expands to more than 1,000,000 values (aliases repeated inside aliases?)" and told the
    user to use fewer aliases. It says the file has that many values, and where they go; a
    real alias bomb keeps its words. (The limit is lowered to 100 values.)"""
    import harness.yamlsafe as yamlsafe
    from harness.errors import HarnessError

    monkeypatch.setattr(yamlsafe, "MAX_NODES", 100)
    with pytest.raises(HarnessError) as err:
        yamlsafe.load("cases:\n" + "- {id: 1}\n" * 60, tmp_path / "s.yaml")
    assert "has more than 100 values" in err.value.one_line() and "data:" in err.value.one_line()
    assert "alias" not in err.value.one_line()
    with pytest.raises(HarnessError, match="aliases repeated inside aliases"):
        yamlsafe.load("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: [" + ", ".join(["*a"] * 20) + "]\n", tmp_path / "s.yaml")
    # a training config is told where training rows go, not a suite's cases
    from harness.train.config import load_config

    (tmp_path / "train.yaml").write_text("lora_layers: [" + ", ".join(["1"] * 120) + "]\n")
    with pytest.raises(HarnessError) as err:
        load_config(tmp_path / "train.yaml")
    assert "has more than 100 values" in err.value.one_line() and "training rows" in err.value.one_line()


def _run_not_utf8(command: str) -> Callable[[Env], list[str]]:
    """A finished run whose folder was renamed to a name that is not UTF-8 text, read by
    ``command``: compare.html, the history table, --history's trends and --only-failing's
    results name it, and writing them was an internal error (exit 3)."""
    def build(env: Env) -> list[str]:
        from harness.cli import main

        run = env.root / "in" / "run"
        assert main(env.score(env.suite)[:-1] + [str(run)]) == 0
        return _reading(command, lambda _: run.rename(env.root / "in" / f"run{_NOT_UTF8}"))(env)
    return build


for _command in ("compare", "history", "only-failing"):
    CASES[f"run-name-not-utf8-{_command}"] = _run_not_utf8(_command)
CASES["run-name-not-utf8-history-trends"] = lambda env: (lambda argv: env.eval("--history", argv[1]))(
    _run_not_utf8("history")(env))


CASES["train-data-folder-not-utf8"] = lambda env: _train_config(GOOD_TRAIN + f"adapter_path: {env.root / 'ad'}\n",
                                                                "--data", str(shutil.copytree(
                                                                    ROOT / "fixtures" / "data" / "wikisql",
                                                                    env.root / "in" / f"d{_NOT_UTF8}")))(env)


def test_training_data_in_a_folder_that_is_not_utf8_is_refused_before_training(env, capsys):
    """adapter_config.json records the data folder: writing it was an internal error (exit 3)
    after every step had trained, and no adapter was written."""
    code, _, err = cli(capsys, *CASES["train-data-folder-not-utf8"](env))
    assert_bad_input(code, err, "data folder's path is not UTF-8 text", "\\udcff")
    assert not (env.root / "ad").exists()


@pytest.mark.parametrize("name, what", [("run-name-not-utf8-compare", "run"),
                                        ("run-name-not-utf8-history", "results file"),
                                        ("run-name-not-utf8-only-failing", "run"),
                                        ("run-name-not-utf8-history-trends", "results file")])
def test_a_run_read_from_a_path_that_is_not_utf8_is_refused(env, capsys, name, what):
    code, _, err = cli(capsys, *CASES[name](env))
    assert_bad_input(code, err, f"the {what}'s path is not UTF-8 text", "\\udcff")


@pytest.mark.parametrize("name, what", [("out-not-utf8", "output folder"), ("suite-name-not-utf8", "suite file"),
                                        ("data-name-not-utf8", "data file"),
                                        ("completions-name-not-utf8", "completions file"),
                                        ("baseline-name-not-utf8", "baseline file"),
                                        ("model-folder-not-utf8", "model folder"),
                                        ("model-weights-name-not-utf8", "weight file"),
                                        ("adapter-folder-not-utf8", "adapter folder")])
def test_a_path_that_is_not_utf8_is_refused_before_the_run(env, capsys, name, what):
    """Each by its own check, naming what the path is: with the model folder's check
    removed, its case passed on the weight file's (the folder is in the weight's path)."""
    code, _, err = cli(capsys, *CASES[name](env))
    assert_bad_input(code, err, f"the {what}'s path is not UTF-8 text", "\\udcff")


def test_a_data_file_over_the_size_limit_is_refused_before_it_is_read(env, capsys, monkeypatch):
    """`data:` naming a weights file by mistake (10 GB) was read whole into memory before
    "not UTF-8 text" could be said. A data file over the limit (1 GiB; lowered to 64 bytes
    here) is refused from its size."""
    import harness.suite

    import harness.files

    monkeypatch.setattr(harness.suite, "MAX_DATA_BYTES", 64)
    argv = _data('{"q": "1", "a": "2"}\n' * 4)(env)
    real, read = harness.files.open_regular, []

    class Counted:  # the bytes read from each file opened
        def __init__(self, path):
            self.path, self.fh = Path(path), real(path)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def fileno(self):
            return self.fh.fileno()

        def read(self, *size):
            data = self.fh.read(*size)
            read.append((self.path.name, len(data)))
            return data

    monkeypatch.setattr(harness.files, "open_regular", Counted)
    code, _, err = cli(capsys, *argv)
    assert_bad_input(code, err, "d.jsonl", "data file is larger than", "MiB")
    assert [n for name, n in read if name == "d.jsonl"] == [], read  # it read 65 bytes of it first


@pytest.mark.parametrize("name, what", [("init-dir-under-symlink-loop", "project folder"),
                                        ("data-symlink-loop", "data file")])
def test_a_path_through_a_looping_link_is_named(env, capsys, name, what):
    """One rule (files.resolve_path) wherever a path is resolved: init checked only whether
    the project folder itself was a link to nothing, so `init loop/project` with a model
    named relative to here still raised RuntimeError from resolve() (exit 3)."""
    code, _, err = cli(capsys, *CASES[name](env))
    assert_bad_input(code, err, f"{what} is, or lies under, a symbolic link that loops")


@pytest.mark.parametrize("name, what", [("init-dir-symlink-loop", "project folder"),
                                        ("model-vocab-link-loop", "model file")])
def test_a_link_to_nothing_says_what_it_stands_for(env, capsys, name, what):
    """One check and one wording (files.refuse_link_to_nothing) where suite, init and the
    model folder each wrote theirs; init's named no part ("is a symbolic link to nothing")."""
    code, _, err = cli(capsys, *CASES[name](env))
    assert_bad_input(code, err, f"{what} is a symbolic link to nothing (its target is missing, or the link loops)")


SUBPROCESS_CASES = ["suite-alias-bomb", "model-weights-truncated", "adapter-wider-base", "out-devnull"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_from_outside_the_process(env, name):
    """The same contract through a real `python -m harness.cli` process (a handful)."""
    from conftest import run_harness

    argv = CASES[name](env)
    before = _snapshot(env.root)
    proc = run_harness(*argv, cwd=env.root, env={"PYTHONPATH": str(ROOT)}, timeout=120)
    assert_bad_input(proc.returncode, proc.stderr)
    assert _snapshot(env.root) == before


def test_a_baseline_value_near_the_float_limit_fails_its_gate_without_an_interval(env, capsys):
    """1e308 fits the baseline schema, but the paired bootstrap overflowed: np.quantile
    raised, then the gate compared None (exit 3); now the gate fails: no interval."""
    argv = _reading("score-baseline", _baseline_with(
        text=lambda t: t.replace('"exact_match": 1.0', '"exact_match": 1e308', 1)))(env)
    code, out, err = cli(capsys, *argv)
    assert code == 1, err
    assert "no interval could be computed" in out + (env.out / "summary.md").read_text()
