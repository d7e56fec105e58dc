"""One evaluation item: a suite record with its prompt and target rendered.

Its own module so that scorers (which read cases) and suites (which make them) do not
import each other: data flows suite -> case -> scorers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Case:
    """One record of a suite, its prompt and target rendered, and where it came from."""

    id: str
    index: int
    category: str | None
    record: dict
    prompt: str
    target: str | None
    source_line: int | None = None
    source: Path | None = None  # the JSONL data file, or the suite file for inline cases
    cluster: str | None = None  # its cluster label: the suite's `cluster:` field, or that template rendered
