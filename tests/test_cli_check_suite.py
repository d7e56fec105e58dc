"""`harness check-suite`: a suite's typos found without a model, by the same loading code
eval runs (a walk-through found a typo only when an eval started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.suite import load_suite
from hostile_util import assert_bad_input, cli

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
name: {name}
prompt: "{{{{ q }}}}"
target: "{{{{ a }}}}"
scorers:
  - exact_match: {{}}
gates:
  exact_match: {{max_drop_vs_base: 0.2}}
cases:
  - {{id: a, q: "1+1?", a: "2"}}
  - {{id: b, q: "2+2?", a: "4"}}
"""


def _good(name: str = "good") -> str:
    return GOOD.format(name=name)


def test_every_shipped_suite_passes(capsys):
    code, out, err = cli(capsys, "check-suite", ROOT / "suites")
    shipped = sorted((ROOT / "suites").glob("*.yaml"))
    lines = out.splitlines()
    assert code == 0 and err == "", err
    assert len(lines) == len(shipped) and all(line.startswith("OK ") for line in lines), out
    for path, line in zip(shipped, lines):
        suite = load_suite(path)
        assert f"suite {suite.name!r}, {len(suite.cases)} items, gates: " in line, line
    sql = next(line for line in lines if "sql.yaml" in line)
    assert "sql_execution (max_drop_vs_base 0.15, max_drop_vs_baseline 0.15)" in sql


# (what is wrong, the edit, what the line must name)
BROKEN = [
    ("typo'd gate option", lambda s: s.replace("max_drop_vs_base:", "max_drop_vs_bse:"),
     [":7 ", "gates.exact_match.max_drop_vs_bse", "unknown field"]),
    ("unknown scorer", lambda s: s.replace("exact_match: {}", "exact_mach: {}"),
     [":5 ", "scorers[0].exact_mach", "unknown scorer 'exact_mach'", "known scorers: exact_match"]),
    ("typo'd scorer option", lambda s: s.replace("exact_match: {}", "exact_match: {ignore_cse: true}"),
     [":5 ", "scorers[0].exact_match", "ignore_cse"]),
    ("missing items file", lambda s: s.replace("cases:\n  - {id: a, q: \"1+1?\", a: \"2\"}\n"
                                               "  - {id: b, q: \"2+2?\", a: \"4\"}\n", "data: items.jsonl\n"),
     ["items.jsonl", "[data]", "data file not found"]),
    ("missing schema file", lambda s: s.replace("exact_match: {}", "json_schema: {schema: schemas/answer.json}")
     .replace("exact_match: {max", "json_schema: {max"),
     ["scorers[0].json_schema", "answer.json"]),
    ("duplicate item id", lambda s: s.replace("id: b", "id: a"), [":10 ", "[id]", "duplicate case id 'a'"]),
    ("gate on a scorer the suite lacks", lambda s: s.replace("  exact_match: {max", "  keywords: {max"),
     [":7 ", "gates.keywords", "no scorer 'keywords'"]),
]


@pytest.mark.parametrize("what, edit, needles", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_suite_fails_with_the_line_eval_stops_on(tmp_path, capsys, what, edit, needles):
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit(_good("bad")), encoding="utf-8")
    (tmp_path / "good.yaml").write_text(_good(), encoding="utf-8")
    code, out, _ = cli(capsys, "check-suite", tmp_path)
    lines = out.splitlines()
    assert code == 2, out
    # every suite gets its line: the good one is still checked after the bad one
    assert len(lines) == 2 and lines[1].startswith(f"OK {tmp_path / 'good.yaml'}: suite 'good', 2 items"), out
    assert lines[0].startswith("FAIL ") and str(bad) in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    # the same error eval gives, from the same code, before any model loads
    code, _, err = cli(capsys, "eval", bad, "--model", tmp_path / "no-model", "--out", tmp_path / "out")
    assert_bad_input(code, err)
    assert err.strip().removeprefix("harness: error: ") in lines[0]


def test_two_suites_with_one_name_fail_naming_both(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text(_good("same"), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(_good("same"), encoding="utf-8")
    code, out, _ = cli(capsys, "check-suite", tmp_path)
    assert code == 2
    last = out.splitlines()[-1]
    assert last.startswith("FAIL ") and str(tmp_path / "b.yaml") in last and str(tmp_path / "a.yaml") in last
    assert "[name]" in last and "two suites are named 'same'" in last


def test_no_suite_found_is_bad_input(tmp_path, capsys):
    code, _, err = cli(capsys, "check-suite", tmp_path / "nowhere.yaml")
    assert_bad_input(code, err, "nowhere.yaml", "not found")


def test_the_starter_suite_of_init_passes(tmp_path, capsys):
    assert cli(capsys, "init", tmp_path / "proj", "--model", ROOT / "fixtures" / "model")[0] == 0
    code, out, _ = cli(capsys, "check-suite", tmp_path / "proj" / "suites")
    assert code == 0 and out.startswith(f"OK {tmp_path / 'proj' / 'suites' / 'starter.yaml'}: suite "), out


def test_a_looping_link_in_a_folder_of_suites_is_one_fail_line(tmp_path, capsys):
    """A symbolic link named *.yaml that loops (l1.yaml -> l2.yaml -> l1.yaml) in a folder of
    suites: telling duplicate names apart resolved it, which raised RuntimeError, an internal
    error (exit 3) for the whole folder, in check-suite and eval alike. Now it is its own FAIL
    line saying what it is, and the good suite is still checked."""
    (tmp_path / "good.yaml").write_text(_good(), encoding="utf-8")
    (tmp_path / "l1.yaml").symlink_to("l2.yaml")
    (tmp_path / "l2.yaml").symlink_to("l1.yaml")
    code, out, err = cli(capsys, "check-suite", tmp_path)
    lines = out.splitlines()
    assert code == 2 and err == "", err
    assert lines[0].startswith(f"OK {tmp_path / 'good.yaml'}"), out
    assert [line.split(":")[0] for line in lines[1:]] == [f"FAIL {tmp_path / 'l1.yaml'}", f"FAIL {tmp_path / 'l2.yaml'}"]
    assert all("symbolic link to nothing" in line for line in lines[1:]), out
    code, _, err = cli(capsys, "eval", tmp_path, "--model", tmp_path / "no-model", "--out", tmp_path / "out")
    assert_bad_input(code, err, "l1.yaml", "symbolic link")


def test_a_margin_set_to_null_reads_off(tmp_path, capsys):
    """`max_drop_vs_base: null` drops the default margin (eval gates nothing there); the line
    read 'max_drop_vs_base None', Python's word, as if a margin of None were applied."""
    (tmp_path / "g.yaml").write_text(_good().replace("{max_drop_vs_base: 0.2}",
                                                     "{max_drop_vs_base: null, max_drop_vs_baseline: 0.1}"),
                                     encoding="utf-8")
    code, out, _ = cli(capsys, "check-suite", tmp_path / "g.yaml")
    assert code == 0 and "gates: exact_match (max_drop_vs_base off, max_drop_vs_baseline 0.1)" in out, out


def test_a_suite_file_name_that_is_not_utf8_is_one_fail_line_on_a_strict_terminal(tmp_path):
    """b"s\\xff.yaml" beside a good suite, on a terminal whose encoding is strict UTF-8 (a
    UTF-8 locale other than C, macOS): printing its path raised UnicodeEncodeError, an
    internal error (exit 3) with no line for the good suite; eval wrote nothing after
    generating (results.json could not hold the name). Now it is a FAIL line with the byte
    escaped, and the good suite is still OK."""
    import os

    from conftest import run_harness

    (tmp_path / "good.yaml").write_text(_good(), encoding="utf-8")
    (tmp_path / os.fsdecode(b"s\xff.yaml")).write_text(_good("other"), encoding="utf-8")
    done = run_harness("check-suite", str(tmp_path), env={"PYTHONIOENCODING": "utf-8:strict"})
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"OK {tmp_path / 'good.yaml'}"), done.stdout
    assert lines[1] == (f"FAIL {tmp_path}/s\\udcff.yaml: the suite file's path is not UTF-8 text (rename it (or "
                        "the folder holding it) with UTF-8 characters)"), done.stdout


WIKISQL_ROWS = [  # (id, the gold query) over one table; the second and third never parse
    ("good", "SELECT Player FROM 1-10015132-11 WHERE No. = '42'"),
    ("typo", "SELEC Player FROM 1-10015132-11 WHERE No. = '42'"),
    ("column", "SELECT Shirt FROM 1-10015132-11 WHERE No. = '42'"),
    ("also-good", "SELECT COUNT Player FROM 1-10015132-11 WHERE No. = '3'"),
]


def test_a_wikisql_gold_query_that_does_not_parse_fails_with_its_data_line(tmp_path, capsys):
    """A gold query the scorers cannot parse is scored None by sql_logical_form and
    sql_execution on every run (an item no answer can pass), and loading the suite never read
    it: check-suite said OK. Now each such gold is a FAIL line with its data file's line, the
    parser's reason and both scorers named; the good rows are not named; exit 2."""
    import json

    from harness.scorers import Item, make_scorer

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"id": i, "q": "Who?", "gold": g}) + "\n" for i, g in WIKISQL_ROWS),
                    encoding="utf-8")
    suite_file = tmp_path / "wikisql.yaml"
    suite_file.write_text(
        "name: wikisql\ndata: rows.jsonl\n"
        "prompt: \"table: 1-10015132-11\\ncolumns: Player, No., Nationality, Position\\nQ: {{ q }}\\nA: \"\n"
        "target: \"{{ gold }}\"\ntemplate: raw\n"
        "scorers:\n  - sql_exact: {}\n  - sql_logical_form: {}\n  - sql_execution: {}\n", encoding="utf-8")
    code, out, err = cli(capsys, "check-suite", suite_file)
    lines = out.splitlines()
    assert code == 2 and err == "", err
    assert [line.split(" [")[0] for line in lines] == [f"FAIL {data}:2", f"FAIL {data}:3"], out
    assert "[target]: case 'typo': the gold query \"SELEC Player" in lines[0] and "does not start with SELECT" in lines[0]
    assert "case 'column'" in lines[1] and "selects 'Shirt', which is not a column of table 1-10015132-11" in lines[1]
    assert all("sql_logical_form and sql_execution cannot score this item, so it can never pass: fix the target"
               in line for line in lines), out
    # what it says is what scoring does: the two scorers give those items no verdict
    suite = load_suite(suite_file)
    for spec in suite.scorers[1:]:
        scores = [make_scorer(spec, suite.dir).score(Item(case=c, output=c.target, finish_reason="stop")) for c in suite.cases]
        assert [s.passed for s in scores] == [True, None, None, True], spec.name
    # fixed, it passes
    data.write_text(data.read_text(encoding="utf-8").replace("SELEC ", "SELECT ").replace("SELECT Shirt", "SELECT Player"),
                    encoding="utf-8")
    code, out, _ = cli(capsys, "check-suite", suite_file)
    assert code == 0 and out.startswith(f"OK {suite_file}: suite 'wikisql', 4 items"), out


def test_plain_sqlite_golds_are_not_read_as_wikisql(tmp_path, capsys):
    """sql_execution with `schema_field` runs its gold as SQLite, as written: not WikiSQL
    notation, and no table lines in the prompt; check-suite must not call it unparseable."""
    (tmp_path / "plain.yaml").write_text(
        "name: plain\nprompt: \"{{ q }}\"\ntarget: \"{{ gold }}\"\n"
        "scorers:\n  - sql_execution: {schema_field: schema}\n"
        "cases:\n  - {id: a, q: \"How many?\", gold: \"SELECT COUNT(*) FROM t\", schema: \"CREATE TABLE t (x INT)\"}\n",
        encoding="utf-8")
    code, out, _ = cli(capsys, "check-suite", tmp_path / "plain.yaml")
    assert code == 0 and out.startswith("OK "), out
