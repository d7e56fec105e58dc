"""Fuzzing suites and completion files (issue 10 item 7): whatever the input, `harness
score` exits 0, 1 or 2, never 3 ("internal error"), and never hangs (a deadline per
example). Examples are few and bounded so the test stays a few seconds on 2 cores."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


SETTINGS = settings(max_examples=25, deadline=10_000, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
scorer_names = st.sampled_from(["exact_match", "keywords", "json_schema", "sql_exact", "sql_execution",
                                "repetition", "latency", "token_accuracy", "nope"])
scorer_options = st.one_of(st.just({}), st.dictionaries(st.sampled_from(
    ["schema", "mode", "threshold", "case_sensitive", "schema_field", "timeout_s", "regex"]), values, max_size=2))
cases = st.lists(st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=6), st.integers(0, 5))},
    optional={"q": st.text(max_size=30), "a": st.text(max_size=10), "concepts": values,
              "category": scalars}), max_size=4)
suites = st.fixed_dictionaries(
    {"name": st.one_of(st.text(max_size=10), values), "prompt": st.sampled_from(["{{ q }}", "{{ q", "x", "{{ z }}"]),
     "scorers": st.lists(st.dictionaries(scorer_names, scorer_options, min_size=1, max_size=1), max_size=3)},
    optional={"target": st.sampled_from(["{{ a }}", "{{ a[3] }}", "t"]), "template": st.sampled_from(["raw", "chat", "x"]),
              "generation": st.dictionaries(st.sampled_from(["max_tokens", "temperature", "top_p", "stop", "seed"]),
                                            values, max_size=3),
              "gates": st.one_of(st.just({}), st.dictionaries(st.sampled_from(["exact_match", "keywords", "x"]),
                                                              values, max_size=2)),
              "cases": cases, "data": st.sampled_from(["d.jsonl", "../d.jsonl", "/dev/null", "."])})


def _run(suite_text: str, completions: bytes) -> int:
    import io
    import contextlib

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "suite.yaml").write_text(suite_text)
        (folder / "c.jsonl").write_bytes(completions)
        (folder / "d.jsonl").write_text('{"q": "x", "a": "y"}\n')
        out, err = io.StringIO(), io.StringIO()
        from harness.cli import main

        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["score", str(folder / "suite.yaml"), "--completions", str(folder / "c.jsonl"),
                         "--out", str(folder / "out")])
        assert code in (0, 1, 2), f"exit {code}: {err.getvalue()[-500:]}\n--- suite:\n{suite_text}"
        if code == 2:
            assert "Traceback" not in err.getvalue()
        return code


@SETTINGS
@given(suite=suites, outputs=st.lists(st.text(max_size=40), max_size=4))
def test_fuzzed_suites_never_exit_3(suite, outputs):
    ids = [str(c.get("id")) for c in suite.get("cases") or []] or ["0"]
    lines = "".join(json.dumps({"id": i, "output": o}) + "\n" for i, o in zip(ids, outputs + [""] * len(ids)))
    try:
        text = yaml.safe_dump(suite, allow_unicode=True)
    except yaml.YAMLError:
        return
    _run(text, lines.encode())


@SETTINGS
@given(raw=st.binary(max_size=200), text=st.text(max_size=200))
def test_fuzzed_completion_files_never_exit_3(raw, text):
    suite = ("name: f\nprompt: '{{ q }}'\ntemplate: raw\nscorers:\n  - exact_match: {}\n"
             "  - json_schema: {schema: {type: object}}\ngates: {}\ncases:\n  - {id: a, q: x}\n")
    _run(suite, raw)
    _run(suite, text.encode("utf-8", "surrogatepass"))
    _run(suite, ('{"id": "a", "output": ' + json.dumps(text) + "}\n").encode("utf-8", "surrogatepass"))


@SETTINGS
@given(tokens=st.lists(st.sampled_from(list("ab:-[]{}&*!|>'\"\n #%@`,?") + ["  ", "name", "prompt", "scorers",
                                                                             "&a", "*a", "<<", ".nan", "!!python"]),
                      max_size=60))
def test_fuzzed_yaml_syntax_never_exits_3(tokens):
    _run("".join(tokens), b'{"id": "0", "output": "x"}\n')
