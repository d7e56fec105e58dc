"""A report folder is replaced as one set (issue 10 item 5): a kill at any moment leaves
the old set or the new one, and a killed writer's temporaries are cleaned up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from harness.atomic import write_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_write_folder_replaces_the_set_and_keeps_other_files(tmp_path):
    out = tmp_path / "latest"
    write_folder(out, {"results.json": "1", "index.html": "1"})
    (out / "notes.txt").write_text("mine")
    write_folder(out, {"results.json": "2", "index.html": "2"})
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "results.json": "2", "index.html": "2", "notes.txt": "mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]  # no temporaries left


def test_a_failed_write_leaves_the_old_set_and_no_temporaries(tmp_path):
    out = tmp_path / "latest"
    write_folder(out, {"results.json": "old", "index.html": "old"})

    class Boom(str):
        def encode(self, *a):
            raise RuntimeError("disk full")

    try:
        write_folder(out, {"results.json": "new", "index.html": Boom("x")})
    except RuntimeError:
        pass
    assert {p.name: p.read_text() for p in out.iterdir()} == {"results.json": "old", "index.html": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


WRITER = textwrap.dedent("""
    import sys
    from harness.atomic import write_folder
    out, n = sys.argv[1], 0
    big = "x" * 4_000_000
    while True:
        n += 1
        tag = str(n)
        write_folder(out, {"results.json": tag + big, "index.html": tag, "junit.xml": tag, "summary.md": tag})
""")


def test_sigkill_during_writes_leaves_one_whole_set(tmp_path):
    """Kill a writer that rewrites the set in a loop, 6 times at random moments: every time
    the four files carry the same generation, and the next write removes the leftovers."""
    out = tmp_path / "latest"
    env = dict(os.environ, PYTHONPATH=ROOT)
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], env=env)
        time.sleep(0.4 + 0.13 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not out.exists():
            continue  # killed before the first set landed
        tags = {p.name: p.read_text()[:12].rstrip("x") for p in out.iterdir()}
        assert set(tags) == {"results.json", "index.html", "junit.xml", "summary.md"}
        assert len(set(tags.values())) == 1, tags
    write_folder(out, {"results.json": "final"})
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "latest"]
    assert leftovers == []
