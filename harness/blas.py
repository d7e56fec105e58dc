"""Which BLAS MLX's CPU backend uses, and switching it to OpenBLAS on Linux.

The ``mlx[cpu]`` wheel links the reference BLAS. Preloading Debian's OpenBLAS
(``libopenblas0-pthread``) made a 2048 float32 matmul ~55x and a LoRA run ~6x faster on
this project's machines, with identical losses (``nox -s bench`` measures it). The symbols
must be interposed before ``libmlx.so`` loads, so ``harness`` re-executes itself once with
``LD_PRELOAD`` when OpenBLAS is installed and MLX is not yet imported.
``HARNESS_BLAS=reference`` turns this off; ``harness doctor`` shows what is in use.
"""

from __future__ import annotations

import glob
import os
import sys

OPENBLAS_GLOBS = (
    "/usr/lib/*-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/*-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblas*.so.0",
)
_REEXEC_MARK = "HARNESS_BLAS_REEXEC"


def find_openblas() -> str | None:
    for pattern in OPENBLAS_GLOBS:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def preload_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` with OpenBLAS preloaded, if installed (for subprocesses and nox)."""
    env = dict(os.environ if env is None else env)
    lib = find_openblas()
    if sys.platform.startswith("linux") and lib and lib not in env.get("LD_PRELOAD", ""):
        env["LD_PRELOAD"] = ":".join(p for p in (lib, env.get("LD_PRELOAD", "")) if p)
    return env


def maybe_reexec_with_openblas() -> None:
    """Re-exec the current command once with OpenBLAS preloaded (Linux, when installed)."""
    if (not sys.platform.startswith("linux") or os.environ.get("HARNESS_BLAS") == "reference"
            or os.environ.get(_REEXEC_MARK) or "mlx.core" in sys.modules):
        return
    env = preload_env()
    if env.get("LD_PRELOAD") == os.environ.get("LD_PRELOAD"):
        return  # nothing to add: not installed, or already preloaded
    env[_REEXEC_MARK] = "1"
    argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    except OSError:
        return  # keep running with the reference BLAS rather than fail


def blas_in_use() -> str:
    """The BLAS library mapped into this process (read from /proc/self/maps after MLX loads)."""
    import mlx.core  # noqa: F401  (maps libmlx and its BLAS)

    try:
        with open("/proc/self/maps") as fh:
            libs = {line.split()[-1] for line in fh if ".so" in line}
    except OSError:
        return "unknown (no /proc/self/maps; on macOS MLX uses Accelerate)"
    # numpy ships its own (symbol-prefixed) OpenBLAS that MLX never calls: ignore it.
    libs = {p for p in libs if "numpy.libs" not in p and "scipy" not in os.path.basename(p)}
    openblas = sorted(p for p in libs if "openblas" in os.path.basename(p))
    if openblas:
        return f"OpenBLAS ({openblas[0]})"
    reference = sorted(p for p in libs if os.path.basename(p).startswith("libblas"))
    if reference:
        return f"reference BLAS ({reference[0]}): slow: install libopenblas0-pthread, or unset HARNESS_BLAS=reference"
    return "unknown"
