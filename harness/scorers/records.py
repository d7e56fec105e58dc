"""A suite's records with where they come from, for scorers that check cases at load.

``Scorer.check`` runs when the suite loads, before any model does; a scorer whose cases
carry their own data (keywords' concepts, a SQL schema field) reads the records here so a
bad one is reported then, naming its file and line, not after an hour of generation.
"""

from __future__ import annotations

from pathlib import Path

from ..suite import _node_line, read_jsonl, resolve_data_path


def suite_records(suite_path: Path) -> list[tuple[Path, int | None, dict]]:
    """(file, line, record) for every case of the suite at ``suite_path``.

    The suite file itself has already been read and validated by ``load_suite``.
    """
    from .. import yamlsafe

    data, root = yamlsafe.read(suite_path, "suite file")
    data = data or {}
    if "data" in data:
        data_path = resolve_data_path(Path(suite_path), data["data"])
        return [(data_path, line, record) for line, record in read_jsonl(data_path)]
    return [(Path(suite_path), _node_line(root, ["cases", i]), record)
            for i, record in enumerate(data.get("cases") or []) if isinstance(record, dict)]
