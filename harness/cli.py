"""The `harness` command: subcommands, and the exit-code contract CI relies on.

Exit codes (as pytest and promptfoo use them): 0 all gates pass, 1 a gate failed,
2 bad input or usage (one line naming the file, line or field; traceback only with
``--debug``), 3 no verdict: an internal error, or a distributed eval whose rank gave up on
a collective (``harness.distributed``; not a gate, not the input: rerun). A reader that
closes the pipe early (``harness compare A B | head -1``) ends the command quietly with
141, as a tool killed by SIGPIPE does.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from . import __version__
from .errors import CollectiveFailed, HarnessError, RunFailed

EXIT_OK, EXIT_GATE_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE

# Each module has `register(subparsers)`, which adds its subcommands and sets `func`
# (args -> exit code) on them. One line here per module.
COMMAND_MODULES = [
    "harness.commands.eval_cmd",
    "harness.commands.score_cmd",
    "harness.commands.doctor_cmd",
    "harness.commands.cache_cmd",
    "harness.commands.train_cmd",
    "harness.commands.baseline_cmd",
    "harness.commands.check_generator_cmd",
    "harness.commands.history_cmd",
    "harness.commands.init_cmd",
    "harness.commands.check_suite_cmd",
]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise HarnessError(message, hint=f"see `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mlx-harness {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _stdout_gone() -> int:
    """The reader closed stdout: point it at /dev/null so the exit-time flush is quiet too."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    return EXIT_BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here when the output was small
        return code
    except BrokenPipeError:
        return _stdout_gone()


def apply_device_env() -> None:
    """``HARNESS_DEVICE=cpu`` runs MLX on the CPU (hosted macOS CI runners have no usable
    Metal GPU); set before mlx-lm is imported, which binds its generation stream. The pytest
    plugin calls it too, before its eval."""
    import os

    value = os.environ.get("HARNESS_DEVICE", "").strip().lower()
    if not value:
        return
    if value not in ("cpu", "gpu"):
        raise HarnessError(f"HARNESS_DEVICE={value!r} is not a device", field="HARNESS_DEVICE",
                           hint="use cpu or gpu, or unset it for MLX's default")
    import mlx.core as mx

    try:
        mx.set_default_device(mx.cpu if value == "cpu" else mx.gpu)
    except ValueError as exc:  # an MLX without that backend (the Linux CPU wheel has no GPU)
        raise HarnessError(f"HARNESS_DEVICE={value}: MLX cannot use that device here ({exc})",
                           field="HARNESS_DEVICE", hint="use cpu, or unset it for MLX's default") from None


def _main(argv: list[str] | None = None) -> int:
    as_command = argv is None  # `harness ...` itself, not main([...]) called from a host program
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line
    argv = [a for a in argv if a != "--debug"]
    if as_command:  # re-exec is only ours to do when this process is the harness command: called
        # from pytest, a notebook or a script, it would restart the host from its own argv
        from .blas import maybe_reexec_with_openblas

        maybe_reexec_with_openblas()  # before mlx loads; returns only if no re-exec is needed
    try:
        apply_device_env()
        args = build_parser().parse_args(argv)
        args.as_command = as_command  # this process is `harness` (may exit hard), not a host's call
        if not getattr(args, "func", None):
            build_parser().print_help()
            return EXIT_BAD_INPUT
        return int(args.func(args))
    except RunFailed as exc:  # the run failed its own check: like a failed gate
        if debug:
            traceback.print_exc()
        print(f"harness: failed: {exc.one_line()}", file=sys.stderr)
        return EXIT_GATE_FAILED
    except HarnessError as exc:
        if debug:
            traceback.print_exc()
        print(f"harness: error: {exc.one_line()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CollectiveFailed as exc:  # a distributed run lost a rank: no verdict
        if debug:
            traceback.print_exc()
        print(f"harness: error: {exc.message}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _stdout_gone()
    except Exception as exc:  # a bug in the harness, not the user's input
        if debug:
            traceback.print_exc()
        print(f"harness: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
