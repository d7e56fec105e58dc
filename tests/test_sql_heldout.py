"""fixtures/check_sql_heldout.py refuses what is not a held-out WikiSQL file before it loads a model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "fixtures" / "check_sql_heldout.py"


def run(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(path), "--out", str(path.parent / "out")],
                          capture_output=True, text=True, timeout=60)


def test_a_file_sharing_questions_with_the_project_is_not_held_out(tmp_path):
    rows = (ROOT / "suites" / "data" / "wikisql_valid.jsonl").read_text().splitlines()
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(json.dumps({"text": "table: t\ncolumns: A, B\nQ: What is a new question?\nA: SELECT A FROM t"})
                     + "\n" + rows[3] + "\n")
    proc = run(mixed)
    assert proc.returncode == 2
    assert f"{mixed}:2:" in proc.stderr and "not held out" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_row_that_is_not_wikisql_is_named_by_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "table: t\ncolumns: A\nQ: ok?\nA: SELECT A FROM t"}) + "\n"
                   + json.dumps({"text": 3}) + "\n")
    proc = run(bad)
    assert proc.returncode == 2
    assert f"{bad}:2: not a WikiSQL row" in proc.stderr
