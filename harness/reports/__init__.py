"""Reports of a run: `index.html` (scorecard), `junit.xml` (one test case per gate) and
`summary.md` (for $GITHUB_STEP_SUMMARY or a PR comment), rendered from results.json
with the Jinja templates in ``harness/templates/``. The runner writes results.json.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ..atomic import write_text

__all__ = ["write_reports", "render_reports", "render_html", "render_junit", "render_summary", "write_compare_report", "environment"]

_XML_BAD = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """Escape for XML text and attributes, dropping characters XML 1.0 cannot carry."""
    s = _XML_BAD.sub("\ufffd", str(value))
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def visible(value: object) -> str:
    """Control characters as their Unicode control pictures (U+2400..), so an output made
    of them is not shown as blank (newlines and tabs stay)."""
    return _CONTROL.sub(lambda m: "\u2421" if m.group() == "\x7f" else chr(0x2400 + ord(m.group())), str(value))


def md_cell(value: object) -> str:
    """One line of Markdown table cell text, with no live HTML and no column breaks."""
    s = " ".join(str(value).split())
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace("|", "\\|").replace("`", "'")


def _bytecode_cache(folder: Path | None = None):
    """Compiled templates kept beside the package's own bytecode (``harness/__pycache__/jinja2``),
    as Python keeps ``.pyc`` files: compiling the report templates costs ~0.1-0.15 s CPU of
    every run. Same trust as ``.pyc`` (whoever can write there can edit the code); never in
    the user's cache folder, which CI may restore from elsewhere. Not written when the
    package folder is read-only or PYTHONDONTWRITEBYTECODE is set; an unreadable or stale
    file is recompiled (jinja checks the template source's checksum)."""
    import os

    from jinja2 import FileSystemBytecodeCache

    class _Quiet(FileSystemBytecodeCache):
        def load_bytecode(self, bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:  # truncated or foreign file: compile
                bucket.reset()

        def dump_bytecode(self, bucket) -> None:
            if os.environ.get("PYTHONDONTWRITEBYTECODE"):
                return
            try:
                super().dump_bytecode(bucket)
            except Exception:  # read-only install: compile next time too
                pass

    folder = folder or Path(__file__).resolve().parents[1] / "__pycache__" / "jinja2"
    if not folder.is_dir():
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            return None
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
    return _Quiet(str(folder))


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The report templates' Jinja environment: autoescape on for HTML (and SVG inside it)."""
    return _new_environment(_bytecode_cache())


def _new_environment(bytecode_cache) -> Environment:
    env = Environment(loader=PackageLoader("harness", "templates"), bytecode_cache=bytecode_cache,
                      autoescape=select_autoescape(enabled_extensions=("html", "html.j2", "htm", "svg"),
                                                   default_for_string=True, default=False),
                      undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    env.filters["xml"] = xml_text
    env.filters["md"] = md_cell
    env.filters["visible"] = visible
    return env


def render_html(results: dict) -> str:
    from .html import context

    return environment().get_template("index.html.j2").render(**context(results))


def render_junit(results: dict) -> str:
    from .junit import context

    return environment().get_template("junit.xml.j2").render(**context(results))


def render_summary(results: dict) -> str:
    from .summary import context

    return environment().get_template("summary.md.j2").render(**context(results))


def render_reports(results: dict) -> dict[str, str]:
    """index.html, junit.xml and summary.md of a run, rendered (nothing written)."""
    return {"index.html": render_html(results), "junit.xml": render_junit(results),
            "summary.md": render_summary(results)}


def write_reports(results: dict, out_dir: Path, mark: bytes | None = None) -> None:
    """Write results.json, index.html, junit.xml and summary.md into ``out_dir`` as one
    set: every file is rendered first, then the set replaces the old one at once. ``mark``:
    this run's ``run-in-progress.json`` (``harness.run_marker``), which leaves in the same swap."""
    from ..atomic import json_text, write_folder
    from ..run_marker import MARKER

    write_folder(out_dir, {"results.json": json_text(results), **render_reports(results)},
                 retire={MARKER: mark} if mark is not None else None)


def write_compare_report(comparison: dict, out_dir: Path, runs: tuple[dict, dict] | None = None) -> Path:
    """Render `harness compare` as compare.html in ``out_dir``; returns its path. With the
    two runs (``runs``), the changed outputs are shown side by side."""
    from .html import compare_context

    out = Path(out_dir)
    path = out / "compare.html"
    a, b = runs or (None, None)
    write_text(path, environment().get_template("compare.html.j2").render(**compare_context(comparison, a, b)))
    return path
