"""The OpenBLAS re-exec (harness.blas): the `harness` command restarts itself once with
OpenBLAS preloaded, and `harness.cli.main([...])` called from a host program (pytest, a
notebook, a script) never restarts the host.

Each case runs a small host script in a fresh interpreter, with OpenBLAS "installed"
(``find_openblas`` points at a real file) so the re-exec would happen; the script counts its
own starts in a file. A re-exec'd host starts twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import ROOT

HOST = textwrap.dedent("""
    import os, sys
    with open(sys.argv[1], "a") as fh:
        fh.write("start\\n")
    import harness.blas
    harness.blas.find_openblas = lambda: sys.executable  # any existing file: "installed"
    import harness.cli
    {call}
""")


def _starts(tmp_path, call: str) -> tuple[int, subprocess.CompletedProcess]:
    script = tmp_path / "host.py"
    script.write_text(HOST.format(call=call))
    log = tmp_path / "starts.log"
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "HARNESS_BLAS_REEXEC", "HARNESS_BLAS")}
    env["PYTHONPATH"] = str(ROOT)
    # LD_PRELOAD of the interpreter itself is harmless: the re-exec'd process only needs to start
    proc = subprocess.run([sys.executable, str(script), str(log)], env=env, capture_output=True, text=True,
                          timeout=120)
    return log.read_text().count("start"), proc


def test_main_called_from_a_host_program_does_not_restart_it(tmp_path):
    starts, proc = _starts(tmp_path, "code = harness.cli.main(['lint-data', 'no-such-folder'])\n"
                                     "print('host continues', code)")
    assert starts == 1, proc.stdout + proc.stderr
    assert "host continues 2" in proc.stdout


def test_the_harness_command_restarts_itself_once(tmp_path):
    """The same setup as the command (argv from sys.argv): the re-exec happens, exactly once,
    so the test above shows the host case is spared, not that re-exec never runs."""
    starts, proc = _starts(tmp_path, "sys.argv = [sys.argv[0], sys.argv[1], 'lint-data', 'no-such-folder']\n"
                                     "sys.exit(harness.cli.main())")
    assert starts == 2, proc.stdout + proc.stderr
    assert proc.returncode == 2
