"""`harness cache clear` (delete the completion cache and any database moved aside) and
`harness cache prune --older-than DURATION` (drop old entries, keep the rest)."""

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
    pr = csub.add_parser("prune", help="delete cached completions older than a duration",
                         description="Delete the completions written more than DURATION ago (90s, 30m, 12h, "
                                     "7d, 2w) and give the space back; newer entries stay.")
    pr.add_argument("--older-than", required=True, metavar="DURATION", help="e.g. 30d")
    pr.add_argument("--cache-dir", help="cache folder (default: user cache dir, or $HARNESS_CACHE_DIR)")
    pr.set_defaults(func=run_prune)
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


def run_prune(args: argparse.Namespace) -> int:
    import sqlite3

    from ..cache import cache_size, default_cache_dir, human_bytes, parse_duration, prune_cache
    from ..errors import HarnessError, printable

    seconds = parse_duration(args.older_than)
    folder = args.cache_dir or default_cache_dir()
    before, _ = cache_size(folder)
    try:
        removed, kept = prune_cache(folder, seconds)
    except sqlite3.Error as exc:
        raise HarnessError(f"cannot prune the cache: {exc}", path=folder,
                           hint="`harness doctor` checks it; `harness cache clear` starts afresh") from None
    after, _ = cache_size(folder)
    print(f"removed {removed} completion(s) older than {args.older_than}, kept {kept}; "
          f"{printable(folder)}: {human_bytes(before)} -> {human_bytes(after)}")
    return 0
