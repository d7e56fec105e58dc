"""No network, no escape, bounded work (issue 10, items 1-2): $refs stay in the suite's
folder, setup SQL is sandboxed, `data:` stays in the repository, and a pathological
item scores 0 with the reason instead of hanging or killing the run."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from hostile_util import assert_bad_input, cli


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the harness tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def write_suite(folder, scorer: str, cases: list[dict] | None = None, extra: str = "") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    cases = cases or [{"id": "a", "q": "x"}, {"id": "b", "q": "y"}]
    text = (f"name: hostile\nprompt: '{{{{ q }}}}'\ntemplate: raw\nscorers:\n  - {scorer}\ngates: {{}}\n{extra}"
            + ("cases:\n" + "".join(f"  - {json.dumps(c)}\n" for c in cases) if "data:" not in extra else ""))
    (folder / "suite.yaml").write_text(text)
    return str(folder / "suite.yaml")


def write_completions(path, outputs: dict[str, str]) -> str:
    path.write_text("".join(json.dumps({"id": k, "output": v}) + "\n" for k, v in outputs.items()))
    return str(path)


def score(capsys, tmp_path, suite: str, outputs: dict[str, str], *extra: str):
    comp = write_completions(tmp_path / "completions.jsonl", outputs)
    return cli(capsys, "score", suite, "--completions", comp, "--out", str(tmp_path / "out"), *extra)


@pytest.mark.parametrize("ref", [
    "http://127.0.0.1:9/schema.json",
    "https://example.com/schema.json",
    "file:///etc/passwd",
    "../outside.json",
    "missing.json",
    "defs.json#/$defs/nothing",
])
def test_schema_refs_that_leave_the_suite_folder_are_refused(tmp_path, capsys, ref):
    (tmp_path / "outside.json").write_text('{"type": "object"}')
    suite_dir = tmp_path / "suite"
    suite_dir.mkdir()
    (suite_dir / "defs.json").write_text('{"$defs": {"x": {"type": "object"}}}')
    suite = write_suite(suite_dir, "json_schema: {schema: {$ref: '%s'}}" % ref)
    code, _, err = score(capsys, tmp_path, suite, {"a": "{}", "b": "{}"})
    assert_bad_input(code, err, "$ref", "suite's folder")
    assert not (tmp_path / "out").exists()


def test_schema_refs_inside_the_suite_folder_resolve(tmp_path, capsys):
    suite_dir = tmp_path / "suite"
    (suite_dir / "schemas").mkdir(parents=True)
    (suite_dir / "schemas" / "defs.json").write_text(
        '{"$defs": {"item": {"type": "object", "required": ["n"]}}}')
    (suite_dir / "schemas" / "main.json").write_text('{"$ref": "defs.json#/$defs/item"}')
    suite = write_suite(suite_dir, "json_schema: {schema: schemas/main.json}")
    code, out, err = score(capsys, tmp_path, suite, {"a": '{"n": 1}', "b": '{"m": 1}'})
    assert code == 0, err
    items = json.loads((tmp_path / "out" / "results.json").read_text())["suites"][0]["models"]["base"]["items"]
    assert [i["scores"]["json_schema"]["passed"] for i in items] == [True, False]


def test_a_schema_file_outside_the_suite_folder_is_refused(tmp_path, capsys):
    (tmp_path / "s.json").write_text('{"type": "object"}')
    suite = write_suite(tmp_path / "suite", "json_schema: {schema: ../s.json}")
    code, _, err = score(capsys, tmp_path, suite, {"a": "{}", "b": "{}"})
    assert_bad_input(code, err, "outside the suite's folder")


@pytest.mark.parametrize("setup", [
    "ATTACH DATABASE '{db}' AS x; CREATE TABLE t (a INT);",
    "CREATE TABLE t (a INT); PRAGMA writable_schema = ON;",
    "SELECT load_extension('/tmp/nothing'); CREATE TABLE t (a INT);",
])
def test_setup_sql_cannot_reach_outside_its_database(tmp_path, capsys, setup):
    db = tmp_path / "attached.db"
    cases = [{"id": "a", "q": "x", "setup": setup.format(db=db), "gold": "SELECT a FROM t"}]
    suite = write_suite(tmp_path / "suite", "sql_execution: {schema_field: setup}", cases,
                        extra="target: '{{ gold }}'\n")
    code, _, err = score(capsys, tmp_path, suite, {"a": "SELECT a FROM t"})
    assert_bad_input(code, err, "setup SQL", "setup")
    assert not db.exists()


def test_setup_sql_that_runs_forever_is_stopped(tmp_path, capsys):
    forever = ("CREATE TABLE t (a INT); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
               "INSERT INTO t SELECT x FROM c;")
    cases = [{"id": "a", "q": "x", "setup": forever, "gold": "SELECT a FROM t"}]
    suite = write_suite(tmp_path / "suite", "sql_execution: {schema_field: setup}", cases,
                        extra="target: '{{ gold }}'\n")
    t0 = time.monotonic()
    code, _, err = score(capsys, tmp_path, suite, {"a": "SELECT 1"})
    assert_bad_input(code, err, "timed out")
    assert time.monotonic() - t0 < 30


def test_data_outside_the_suite_folder_and_repository_is_refused(tmp_path, capsys):
    (tmp_path / "secret.jsonl").write_text('{"q": "secret"}\n')
    suite = write_suite(tmp_path / "suite", "exact_match: {}", extra="data: ../secret.jsonl\n")
    code, _, err = score(capsys, tmp_path, suite, {"0": "x"})
    assert_bad_input(code, err, "outside the suite's folder", "--allow-outside-data")
    code, _, err = score(capsys, tmp_path, suite, {"0": "x"}, "--allow-outside-data")
    assert code == 0, err


@pytest.mark.parametrize("kind", ["absolute", "symlink-out", "fifo", "device", "folder"])
def test_data_that_is_not_a_regular_file_inside_is_refused(tmp_path, capsys, kind):
    suite_dir = tmp_path / "suite"
    suite_dir.mkdir()
    target = {"absolute": "/etc/hostname", "symlink-out": "link.jsonl", "fifo": "pipe.jsonl",
              "device": "/dev/zero", "folder": "sub"}[kind]
    if kind == "symlink-out":
        (tmp_path / "secret.jsonl").write_text('{"q": "secret"}\n')
        os.symlink(tmp_path / "secret.jsonl", suite_dir / "link.jsonl")
    elif kind == "fifo":
        os.mkfifo(suite_dir / "pipe.jsonl")
    elif kind == "folder":
        (suite_dir / "sub").mkdir()
    suite = write_suite(suite_dir, "exact_match: {}", extra=f"data: {target}\n")
    extra = ("--allow-outside-data",) if kind in ("fifo", "device", "folder") else ()
    code, _, err = score(capsys, tmp_path, suite, {"0": "x"}, *extra)
    assert_bad_input(code, err, "data")


CATASTROPHIC = "^(a|a)*$"


def assert_first_backtracks_second_passes(tmp_path, capsys, schema: str, first_output, second_output) -> None:
    """Score two outputs against ``schema``: the run ends in time, the first scores 0 with
    the backtracking reason, the second passes."""
    suite = write_suite(tmp_path / "suite", "json_schema: {schema: %s}" % schema)
    t0 = time.monotonic()
    code, _, err = score(capsys, tmp_path, suite, {"a": json.dumps(first_output), "b": json.dumps(second_output)})
    assert time.monotonic() - t0 < 30
    assert code == 0, err
    items = json.loads((tmp_path / "out" / "results.json").read_text())["suites"][0]["models"]["base"]["items"]
    first, second = (i["scores"]["json_schema"] for i in items)
    assert first["passed"] is False and first["value"] == 0.0 and "backtracking" in first["detail"]
    assert second["passed"] is True


def test_a_backtracking_schema_pattern_scores_0_with_the_reason(tmp_path, capsys):
    assert_first_backtracks_second_passes(
        tmp_path, capsys, "{type: object, properties: {s: {type: string, pattern: '%s'}}}" % CATASTROPHIC,
        {"s": "a" * 34 + "!"}, {"s": "aa"})


@pytest.mark.parametrize("keyword", ["unevaluatedProperties", "additionalProperties"])
def test_a_backtracking_pattern_property_name_scores_0_with_the_reason(tmp_path, capsys, keyword):
    """The property name is model output; ``unevaluatedProperties`` matched it with Python's
    ``re`` inside jsonschema, unbounded: 2**34 steps, a hung run. The keyword comes first in
    the schema, so it runs before ``patternProperties`` (which is bounded) can stop the item."""
    assert_first_backtracks_second_passes(
        tmp_path, capsys, "{type: object, %s: false, patternProperties: {'%s': {}}}" % (keyword, CATASTROPHIC),
        {"a" * 34 + "!": 1}, {"aa": 1})


def test_plain_jsonschema_outside_the_harness_keeps_pythons_re(monkeypatch):
    """The bounded property-name matching applies only while a harness validator runs."""
    import jsonschema

    import harness.bounded
    import harness.scorers.schema_sandbox  # noqa: F401  (installs the stand-in)

    def not_here(*args, **kwargs):
        raise AssertionError("plain jsonschema reached the harness's bounded search")

    monkeypatch.setattr(harness.bounded, "search", not_here)

    schema = {"type": "object", "patternProperties": {"^x": {}}, "unevaluatedProperties": False}
    assert jsonschema.Draft202012Validator(schema).is_valid({"xy": 1})
    assert not jsonschema.Draft202012Validator(schema).is_valid({"yx": 1})


def test_a_backtracking_keywords_regex_scores_0_with_the_reason(tmp_path, capsys):
    cases = [{"id": "a", "q": "x", "concepts": [[{"regex": "(a|aa)+b"}]]},
             {"id": "b", "q": "y", "concepts": [["hello"]]}]
    suite = write_suite(tmp_path / "suite", "keywords: {}", cases)
    t0 = time.monotonic()
    code, _, err = score(capsys, tmp_path, suite, {"a": "a" * 40, "b": "hello there"})
    assert time.monotonic() - t0 < 30
    assert code == 0, err
    items = json.loads((tmp_path / "out" / "results.json").read_text())["suites"][0]["models"]["base"]["items"]
    assert "backtracking" in items[0]["scores"]["keywords"]["detail"]
    assert items[1]["scores"]["keywords"]["passed"] is True


def test_deeply_nested_output_scores_0_and_the_run_completes(tmp_path, capsys):
    suite = write_suite(tmp_path / "suite", "json_schema: {schema: {type: array}}")
    code, _, err = score(capsys, tmp_path, suite, {"a": "[" * 1000 + "]" * 1000, "b": "[1]"})
    assert code == 0, err
    items = json.loads((tmp_path / "out" / "results.json").read_text())["suites"][0]["models"]["base"]["items"]
    assert items[0]["scores"]["json_schema"]["passed"] is False
    assert "nested" in items[0]["scores"]["json_schema"]["detail"]
    assert items[1]["scores"]["json_schema"]["passed"] is True


def test_jsonl_lines_split_on_newline_only_and_bom_is_accepted(tmp_path, capsys):
    suite_dir = tmp_path / "suite"
    suite_dir.mkdir()
    (suite_dir / "d.jsonl").write_bytes(
        "\ufeff".encode() + json.dumps({"q": "a\u2028b\x85c"}, ensure_ascii=False).encode() + b"\n")
    suite = write_suite(suite_dir, "exact_match: {}", extra="data: d.jsonl\n")
    comp = tmp_path / "c.jsonl"
    comp.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "0", "output": "x\u2028y"}, ensure_ascii=False).encode())
    code, _, err = cli(capsys, "score", suite, "--completions", str(comp), "--out", str(tmp_path / "out"))
    assert code == 0, err
    item = json.loads((tmp_path / "out" / "results.json").read_text())["suites"][0]["models"]["base"]["items"][0]
    assert item["prompt"] == "a\u2028b\x85c" and item["output"] == "x\u2028y"


@pytest.mark.parametrize("content, needle", [
    (b'{"q": "ok"}\n{"q": "\xff\xfe"}\n', ":2"),
    (b'{"q": "ok"}\n' + b'{"q": ' + b"[" * 5000 + b"]" * 5000 + b"}\n", ":2"),
])
def test_bad_jsonl_is_exit_2_naming_the_line(tmp_path, capsys, content, needle):
    suite_dir = tmp_path / "suite"
    suite_dir.mkdir()
    (suite_dir / "d.jsonl").write_bytes(content)
    suite = write_suite(suite_dir, "exact_match: {}", extra="data: d.jsonl\n")
    code, _, err = score(capsys, tmp_path, suite, {"0": "x", "1": "y"})
    assert_bad_input(code, err, "d.jsonl" + needle)
    comp = tmp_path / "c2.jsonl"
    comp.write_bytes(content.replace(b'"q"', b'"id": "a", "output"'))
    ok = write_suite(tmp_path / "ok", "exact_match: {}")
    code, _, err = cli(capsys, "score", ok, "--completions", str(comp), "--out", str(tmp_path / "o2"))
    assert_bad_input(code, err, "c2.jsonl" + needle)


def test_an_output_beyond_the_size_bound_scores_0_quickly(tmp_path, capsys):
    from harness.bounded import MAX_OUTPUT_CHARS

    suite = write_suite(tmp_path / "suite", "repetition: {}")
    t0 = time.monotonic()
    code, _, err = score(capsys, tmp_path, suite, {"a": "ab" * MAX_OUTPUT_CHARS, "b": "a fine answer"})
    assert code == 0, err
    assert time.monotonic() - t0 < 30
    items = json.loads((tmp_path / "out" / "results.json").read_text())["suites"][0]["models"]["base"]["items"]
    assert "not scored" in items[0]["scores"]["repetition"]["detail"]
    assert items[1]["scores"]["repetition"]["passed"] is True


def test_template_loops_are_stopped_by_the_render_time_limit(tmp_path, capsys, monkeypatch):
    import harness.bounded

    monkeypatch.setattr(harness.bounded, "RENDER_WALL_S", 0.5)
    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    suite_dir = tmp_path / "suite"
    suite_dir.mkdir()
    (suite_dir / "suite.yaml").write_text(
        f"name: loop\nprompt: '{loops}'\nscorers:\n  - exact_match: {{}}\ncases:\n  - {{id: a}}\n")
    t0 = time.monotonic()
    code, _, err = score(capsys, tmp_path, str(suite_dir / "suite.yaml"), {"a": "x"})
    assert_bad_input(code, err, "took more than 0.5 s")
    assert time.monotonic() - t0 < 20


def test_the_render_time_limit_says_how_far_it_got(tmp_path, capsys, monkeypatch):
    """A 50 MB data file (605,087 items with a plain `{{ q }}`) ran past the render limit and
    was told to "simplify the prompt, target and cluster templates", which were as simple as
    templates get. The error says at which item of how many it stopped, and that a large
    data file can be split. (The limit is made to strike at the third item.)"""
    import harness.suite
    from harness.bounded import TooMuchWork

    real, calls = harness.suite.render, []

    def render(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise TooMuchWork("rendering the suite's templates took more than 20 s")
        return real(*args, **kwargs)

    monkeypatch.setattr(harness.suite, "render", render)
    suite_dir = tmp_path / "suite"
    suite_dir.mkdir()
    (suite_dir / "suite.yaml").write_text("name: many\nprompt: '{{ q }}'\nscorers:\n  - exact_match: {}\n"
                                          "cases:\n" + "".join(f"  - {{id: c{i}, q: x}}\n" for i in range(5)))
    code, _, err = score(capsys, tmp_path, str(suite_dir / "suite.yaml"), {"c0": "x"})
    assert_bad_input(code, err, "took more than 20 s", "stopped at item 3 of 5", "split a large data file")


def test_time_limit_restores_an_alarm_already_set():
    import signal

    from harness.bounded import time_limit

    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.6)
        with time_limit(5, "nothing"):
            pass
        remaining = signal.getitimer(signal.ITIMER_REAL)[0]
        assert 0 < remaining <= 0.6
        time.sleep(0.8)
        assert fired == [1]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_template_loops_off_the_main_thread_are_stopped_too(tmp_path, monkeypatch):
    """SIGALRM reaches only the main thread: a suite loaded from a worker thread (a server
    calling the Python API) was unbounded. A trace function bounds it there."""
    import threading

    import harness.bounded
    from harness.errors import HarnessError
    from harness.suite import load_suite

    monkeypatch.setattr(harness.bounded, "RENDER_WALL_S", 0.5)
    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    (tmp_path / "suite.yaml").write_text(
        f"name: loop\nprompt: '{loops}'\nscorers:\n  - exact_match: {{}}\ncases:\n  - {{id: a}}\n")
    outcome = {}

    def load():
        try:
            load_suite(tmp_path / "suite.yaml")
            outcome["result"] = "loaded"
        except HarnessError as exc:
            outcome["result"] = str(exc)

    worker = threading.Thread(target=load, daemon=True)
    t0 = time.monotonic()
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the render loop was not stopped off the main thread"
    assert "took more than 0.5 s" in outcome["result"]
    assert time.monotonic() - t0 < 20


def test_traced_limit_puts_back_the_tracer_it_found():
    import sys

    from harness.bounded import TooMuchWork, time_limit

    def mine(frame, event, arg):
        return None

    previous = sys.gettrace()
    sys.settrace(mine)
    try:
        with time_limit(5, "quick", signals=False):
            sum(range(10))
        assert sys.gettrace() is mine
        def spin():  # a frame of its own: the tracer sees the frames the block calls
            while True:
                pass

        with pytest.raises(TooMuchWork):
            with time_limit(0.05, "a loop", signals=False):
                spin()
        assert sys.gettrace() is mine
    finally:
        sys.settrace(previous)
