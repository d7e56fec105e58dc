"""Bad suite input fails before any model loads, with one line naming file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.suite import load_suite
from conftest import ROOT, run_harness

GOOD = """\
name: t
prompt: "{{ q }}"
target: "{{ a }}"
scorers:
  - exact_match: {}
cases:
  - {id: one, q: "Q1", a: "A1"}
  - {q: "Q2", a: "A2", category: c}
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_good_suite_renders_cases(tmp_path):
    suite = load_suite(write(tmp_path, GOOD))
    assert [c.id for c in suite.cases] == ["one", "1"]
    assert suite.cases[0].prompt == "Q1" and suite.cases[1].target == "A2"
    assert suite.cases[1].category == "c" and suite.template == "chat"


@pytest.mark.parametrize("text, line, words", [
    ("name: t\nprompt: [unclosed\nscorers: []\n", 3, "flow sequence at line 2"),
    (GOOD.replace("prompt:", "promt:"), 2, "promt"),
    (GOOD.replace("  - exact_match: {}", "  - nonsense: {}"), 5, "unknown scorer"),
    (GOOD.replace("  - exact_match: {}", "  - exact_match: {case_sensitive: 3}"), 5, "case_sensitive"),
    (GOOD.replace("template: chat\n", "") + "template: html\n", 9, "template"),
    (GOOD.replace('{q: "Q2"', '{id: one, q: "Q2"'), 8, "duplicate case id"),
    (GOOD.replace('"{{ q }}"', '"{{ missing }}"'), 7, "missing"),
    # mx.random.seed takes 0 .. 2**64 - 1: -3 was an internal error once sampling began
    (GOOD.replace("scorers:", "generation: {temperature: 0.5, seed: -3}\nscorers:"), 4, "seed"),
])
def test_bad_suite_names_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(HarnessError) as info:
        load_suite(path)
    message = info.value.one_line()
    assert message.startswith(f"{path}:{line}"), message
    assert words in message


def test_data_file_errors_name_the_jsonl_line(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"q": "a", "a": "b"}\n{"q": "c", "a": \n')
    path = write(tmp_path, GOOD.split("cases:")[0] + "data: d.jsonl\n")
    with pytest.raises(HarnessError) as info:
        load_suite(path)
    assert info.value.one_line().startswith(f"{tmp_path / 'd.jsonl'}:2: invalid JSON")


def test_data_and_cases_are_exclusive(tmp_path):
    path = write(tmp_path, GOOD + "data: d.jsonl\n")
    with pytest.raises(HarnessError, match="exactly one of `data`"):
        load_suite(path)


def test_jinja_is_sandboxed(tmp_path):
    evil = GOOD.replace('"{{ q }}"', '"{{ q.__class__.__mro__[1].__subclasses__() }}"')
    with pytest.raises(HarnessError, match="template"):
        load_suite(write(tmp_path, evil))


def test_cli_malformed_suite_exits_2_with_one_line(tmp_path):
    path = write(tmp_path, "name: t\nprompt: \"{{ q }}\"\nscorers:\n  - exact_match: {}\ncases:\n  - {q: [1, 2}\n")
    proc = run_harness("eval", str(path), "--model", str(ROOT / "fixtures" / "model"),
                       "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert f"{path}:6" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_cli_usage_errors_exit_2(tmp_path):
    out = tmp_path / "out"  # never the repository's reports/latest: a refused run into a folder
    out.mkdir()             # that holds results marks it unfinished (run-in-progress.json)
    (out / "results.json").write_text("{}")
    proc = run_harness("eval", "suites/smoke.yaml", "--model", str(tmp_path / "nope"), "--out", str(out))
    assert proc.returncode == 2 and "model folder not found" in proc.stderr
    proc = run_harness("eval", "suites/smoke.yaml", "--model", "fixtures/model", "--adapter", "x", "--out", str(out))
    assert proc.returncode == 2 and "NAME=PATH" in proc.stderr
    assert (out / "run-in-progress.json").exists()  # verdict will not read the earlier results as this run's
    proc = run_harness("frobnicate")
    assert proc.returncode == 2


def test_two_suites_with_one_name_name_both_files(tmp_path):
    """A copy of a suite left beside it (`cp domain_qa.yaml copy.yaml`) was refused as
    '[name]: two suites are named 'domain_qa'', naming neither file."""
    from harness.runner import load_suites

    text = "name: twin\nprompt: '{{ q }}'\ntarget: '{{ a }}'\nscorers: [{exact_match: {}}]\ncases: [{q: x, a: y}]\n"
    first, second = write(tmp_path, text, "a.yaml"), write(tmp_path, text, "b.yaml")
    with pytest.raises(HarnessError) as err:
        load_suites([first, second], None)
    assert err.value.path == str(second) and str(first) in str(err.value) and "twin" in str(err.value)


def test_a_suite_named_twice_on_the_command_line_runs_once(tmp_path):
    """`harness eval suites/ suites/sql.yaml` (a folder and a file in it, or one file spelt two
    ways) was refused as 'two suites are named ...: this one and <the same file>'."""
    from harness.suite import find_suites

    text = "name: one\nprompt: '{{ q }}'\ntarget: '{{ a }}'\nscorers: [{exact_match: {}}]\ncases: [{q: x, a: y}]\n"
    path = write(tmp_path, text, "one.yaml")
    other = write(tmp_path, text.replace("name: one", "name: two"), "two.yaml")
    found = find_suites([str(tmp_path), str(path), str(tmp_path / "." / "one.yaml")])
    assert found == [path, other]


def test_the_suite_and_its_data_are_each_read_once(tmp_path, monkeypatch):
    """The suite file and its `data:` file were each read twice: parsed through the checked
    read (size limit, FIFO refused), then read again raw for the fingerprints, which could
    so hash another file than the one parsed and read it with no limit. Each is opened
    once, and the fingerprints are of the bytes parsed."""
    from hostile_util import opens_of

    from harness.suite import _digest

    (tmp_path / "d.jsonl").write_text('{"q": "Q1", "a": "A1"}\n')
    suite = write(tmp_path, GOOD.split("cases:")[0] + "data: d.jsonl\n")
    opened = opens_of(monkeypatch, "suite.yaml", "d.jsonl")
    loaded = load_suite(suite)
    assert opened == ["suite.yaml", "d.jsonl"]
    assert loaded.data_fingerprint == _digest((tmp_path / "d.jsonl").read_bytes())
    assert loaded.earlier_fingerprints["1"]["fingerprint"] == _digest(suite.read_bytes(),
                                                                      (tmp_path / "d.jsonl").read_bytes())


def test_a_suite_that_is_not_utf8_names_the_line_and_the_fix(tmp_path):
    """It said "not UTF-8 text (invalid start byte)": no line, no fix, where a JSONL data
    file's same error names both."""
    suite = tmp_path / "s.yaml"
    suite.write_bytes(GOOD.replace('"Q2"', '"Q\xe92"').encode("latin-1"))
    with pytest.raises(HarnessError) as err:
        load_suite(suite)
    assert err.value.line == GOOD.splitlines().index('  - {q: "Q2", a: "A2", category: c}') + 1
    line = err.value.one_line()
    assert "suite file is not UTF-8 text (byte" in line and "save the suite file as UTF-8" in line, line
