"""`harness cache clear`: delete the completion cache (and any database moved aside)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="manage the completion cache",
                       description="Manage the SQLite completion cache (default: the user cache folder, "
                                   "or $HARNESS_CACHE_DIR).")
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION", parser_class=type(p))
    c = csub.add_parser("clear", help="delete every cached completion",
                        description="Delete the cache database, its WAL files and any broken database "
                                    "that was moved aside. The next run generates everything.")
    c.add_argument("--cache-dir", help="cache folder (default: user cache dir, or $HARNESS_CACHE_DIR)")
    c.set_defaults(func=run_clear)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_clear(args: argparse.Namespace) -> int:
    from ..cache import clear_cache, default_cache_dir
    from ..errors import HarnessError, printable

    folder = args.cache_dir or default_cache_dir()
    try:
        removed = clear_cache(folder)
    except OSError as exc:
        raise HarnessError(f"cannot delete the cache: {exc.strerror}", path=exc.filename or folder,
                           hint="check the folder's permissions") from None
    if removed:
        print(f"removed {len(removed)} file(s) from {printable(folder)}")
    else:
        print(f"no cache in {printable(folder)}")
    return 0
