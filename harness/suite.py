"""Suites: YAML files validated against ``schemas/suite.schema.json`` before any model loads.

A suite is data (JSONL or inline cases), a Jinja prompt and target over one record,
generation settings, scorers and gates. Every error names the file and the line (YAML
line for the suite, JSONL line for a record) and the field.
"""

from __future__ import annotations

import hashlib
import json
import stat
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import yaml
from jinja2 import StrictUndefined, TemplateError

from .case import Case
from .errors import HarnessError
from .files import read_input, refuse_link_to_nothing, require_utf8_name, resolve_path
from .gates import idle_cluster, validate_policy
from .generation import GenerationConfig
from .scorers import validate_scorer_options
from .yamlpos import node_line, validate_with_lines


# How `fingerprint` (suite content) and `data_fingerprint` are computed. Results and
# baselines record it beside the hashes, so that a baseline approved by a harness that
# hashed differently is not taken for an edited suite. Raise it whenever an unchanged suite
# would hash differently, and keep the recipe it replaces in `earlier_fingerprints`
# (tests/test_fingerprint_recipe.py pins the hashes of a fixed suite to catch a change):
#   1  the suite file's bytes, comments, gates and description included (up to ec62945,
#      e.g. cd660bb, released as 0.1.0)
#   2  the parsed suite as canonical JSON without `gates` and `description` (ec62945)
#   3  2 without `cluster` as well (ec872fb)
# The data hash has had one recipe: the data file's bytes, or inline cases as canonical JSON.
FINGERPRINT_RECIPE = 3


@dataclass
class ScorerSpec:
    name: str
    options: dict
    field: str  # e.g. "scorers[1].keywords", for error messages


@dataclass
class Suite:
    name: str
    description: str
    path: Path
    template: str
    system: str | None
    generation: GenerationConfig
    scorers: list[ScorerSpec]
    gates: dict[str, dict]
    cases: list[Case]
    fingerprint: str
    data_fingerprint: str
    integrity_samples: int = 2
    integrity_max_tokens: int = 16
    raw: dict = field(default_factory=dict)
    root: yaml.Node | None = field(default=None, repr=False, compare=False)  # for line numbers
    # `chat_template_kwargs:`: variables of the chat template (Qwen3's enable_thinking), template: chat only
    chat_template_kwargs: dict | None = None
    cluster: str | None = None  # `cluster:`: a record field, or a template over the record ({{ ... }})
    # why that `cluster:` clusters nothing (one cluster, or one per item), decided on the whole
    # suite at load time so that a subset (--limit, --only-failing) does not raise it
    cluster_warning: str | None = None
    fingerprint_recipe: int = FINGERPRINT_RECIPE  # how `fingerprint` and `data_fingerprint` were computed
    # the two hashes under each earlier recipe, {recipe: {fingerprint, data_fingerprint}}
    earlier_fingerprints: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.path.parent

    def limited(self, limit: int | None) -> "Suite":
        if limit is None or limit >= len(self.cases):
            return self
        import copy

        clone = copy.copy(self)
        clone.cases = self.cases[:limit]
        return clone


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    text = resources.files("harness.schemas").joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)


def _sandbox():
    from .bounded import sandbox_environment  # the immutable sandbox, and no huge values

    return sandbox_environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


_JINJA = _sandbox()


@lru_cache(maxsize=256)
def _compiled(template: str):
    return _JINJA.from_string(template)  # compiled once per template, not once per case


def render(template: str, record: dict, *, where: HarnessError) -> str:
    """Render a Jinja template over one record in the sandbox; errors point at ``where``."""
    from .bounded import TooMuchWork

    try:
        return _compiled(template).render(**record)
    except TooMuchWork as exc:
        raise HarnessError(str(exc), path=where.path, line=where.line, field=where.field,
                           hint="simplify the template") from None
    except TemplateError as exc:
        raise HarnessError(f"template error: {exc}", path=where.path, line=where.line,
                           field=where.field,
                           hint="the template may only use fields the record has") from None
    except Exception as exc:  # e.g. IndexError from text.split(...)[1] on a bad record
        raise HarnessError(f"template failed: {type(exc).__name__}: {exc}", path=where.path,
                           line=where.line, field=where.field,
                           hint="check that the record has the shape the template expects") from None


def _template_kwargs(data: dict, path: Path, root: yaml.Node | None) -> dict | None:
    """``chat_template_kwargs``, which only a chat template reads: on a raw suite they would
    change nothing while the suite's hash says they did, so they are refused there."""
    kwargs = data.get("chat_template_kwargs")
    if kwargs and data.get("template", "chat") != "chat":
        raise HarnessError("chat_template_kwargs only apply to `template: chat`", path=path,
                           line=node_line(root, ["chat_template_kwargs"]) if root is not None else None,
                           field="chat_template_kwargs",
                           hint="remove them, or set `template: chat`")
    return dict(kwargs) if kwargs else None


def is_template(value: str) -> bool:
    """A ``cluster:`` value with ``{{`` is a Jinja template over the record; else a field name."""
    return "{{" in value


def cluster_of(spec: str, record: dict, path: Path, line: int | None) -> str:
    """The cluster label of one record: the field ``spec`` names, or ``spec`` rendered as a
    template over the record (the group is often inside a text field: ``{{ text.split('\\n')[0] }}``)."""
    if is_template(spec):
        value = render(spec, record, where=HarnessError("", path=path, line=line, field="cluster"))
        if not value.strip():
            raise HarnessError("the `cluster:` template renders an empty label for this record",
                               path=path, line=line, field="cluster",
                               hint="make the template give every record its group (a table id, a document), "
                                    "e.g. \"{{ text.split('\\n')[0] }}\"")
        return value.strip()
    value = record.get(spec)
    if value is None or isinstance(value, (dict, list)):
        raise HarnessError(f"record has no usable cluster field {spec!r} "
                           f"({'missing' if value is None else type(value).__name__})",
                           path=path, line=line, field=spec,
                           hint="every record needs a string or number in the field `cluster:` names "
                                "(or write `cluster:` as a template over the record: \"{{ meta.table }}\")")
    return str(value)


def _read_yaml(path: Path) -> tuple[Any, yaml.Node | None, bytes]:
    """The suite's data, node tree and bytes (read once: the fingerprint of earlier recipes
    hashes the bytes that were parsed): aliases, depth, duplicate keys and non-finite
    numbers bounded or refused (``harness/yamlsafe.py``)."""
    from . import yamlsafe
    refuse_link_to_nothing(path, "suite file", hint="point the link at a suite file, or remove it")
    raw = yamlsafe.read_bytes(path, "suite file")  # "suite file not found", a folder, a FIFO
    return (*yamlsafe.load_bytes(raw, path, "suite file"), raw)


# `data:` may name only a regular file inside the suite's folder or its repository,
# unless the command runs with --allow-outside-data (what a suite reads ends up in the
# report, and in CI the report is an artifact).
_ALLOW_OUTSIDE_DATA: ContextVar[bool] = ContextVar("allow_outside_data", default=False)


@contextmanager
def outside_data_allowed(allowed: bool = True) -> Iterator[None]:
    token = _ALLOW_OUTSIDE_DATA.set(allowed)
    try:
        yield
    finally:
        _ALLOW_OUTSIDE_DATA.reset(token)


def _repository_of(folder: Path) -> Path | None:
    for parent in (folder, *folder.parents):
        if (parent / ".git").exists():
            return parent
    return None


def resolve_data_path(suite_path: Path, value: str) -> Path:
    """The file a suite's ``data:`` names: a regular file, inside the suite's folder or its
    repository (symlinks resolved first) unless outside data is allowed."""
    suite_dir = Path(suite_path).resolve().parent
    target = resolve_path(suite_dir / value, "data file", hint="point `data:` at the JSONL file itself", field="data")
    if not _ALLOW_OUTSIDE_DATA.get():
        roots = [suite_dir] + [r for r in [_repository_of(suite_dir)] if r is not None]
        if not any(target.is_relative_to(root) for root in roots):
            raise HarnessError(f"data file {value!r} is outside the suite's folder and repository",
                               path=suite_path, field="data",
                               hint="copy the data beside the suite, or pass --allow-outside-data")
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        raise HarnessError("data file not found", path=target, field="data",
                           hint="`data:` is relative to the suite file") from None
    except OSError as exc:
        raise HarnessError(f"cannot read the data file: {exc.strerror}", path=target, field="data") from None
    if not stat.S_ISREG(mode):
        raise HarnessError("data file is not a regular file (a folder, FIFO or device)", path=target,
                           field="data", hint="`data:` must name a JSONL file")
    return target


def jsonl_lines(path: Path, what: str = "data file") -> list[tuple[int, str]]:
    """(line number, text) of every non-blank line of a UTF-8 JSONL file (``split_jsonl``);
    a FIFO or device is refused, not read forever."""
    return split_jsonl(read_input(path, what), path, what)


def split_jsonl(raw: bytes, path: Path, what: str) -> list[tuple[int, str]]:
    """(line number, text) of every non-blank line of the UTF-8 JSONL bytes read from ``path``.

    Lines end at ``\n`` only: JSON strings may hold a raw U+2028 or U+0085, which
    ``str.splitlines`` would split on. A UTF-8 BOM is accepted, as in YAML.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        utf16 = " but UTF-16 (it starts with UTF-16's byte-order mark)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise HarnessError(f"not UTF-8 text{utf16} (byte {exc.start} is {raw[exc.start]:#04x})", path=path,
                           line=line, hint=f"save the {what} as UTF-8") from None
    return [(number, line.rstrip("\r")) for number, line in enumerate(text.split("\n"), start=1)
            if line.strip()]


def parse_json_line(line: str, path: Path, number: int) -> Any:
    """One JSONL line, bounded in depth and size; errors name the file and line."""
    from . import bounded

    try:
        value = bounded.loads(line, what="the line")
    except json.JSONDecodeError as exc:
        raise HarnessError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=path,
                           line=number, hint="each line must be one JSON object") from None
    except (bounded.TooMuchWork, RecursionError) as exc:
        raise HarnessError(f"{exc or 'JSON nested too deeply'}", path=path, line=number,
                           hint="each line must be one JSON object of reasonable size") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise HarnessError(f"invalid JSON: {exc}", path=path, line=number,
                           hint="each line must be one JSON object") from None
    if "\\ud" in line.lower():  # an escaped UTF-16 surrogate: unpaired, it is not Unicode text
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise HarnessError("a string holds an unpaired surrogate (\\ud800-\\udfff), which is not Unicode text",
                               path=path, line=number, hint="write the character itself, or a valid pair") from None
    return value


# A suite's `data:` file is read whole (and rendered within RENDER_WALL_S, which ~500,000
# short items already exceed): a `data:` naming a 10 GB weights file by mistake was read
# whole into memory before "not UTF-8 text" could be said.
MAX_DATA_BYTES = 1 << 30


def read_jsonl(path: Path) -> tuple[list[tuple[int, dict]], bytes]:
    """(line number, record) for every non-blank line, a bad line naming itself; and the
    bytes they were parsed from, which the data fingerprint hashes (read once: read again,
    the file could be another one, and the second read had no size limit or FIFO check)."""
    raw = read_input(path, "data file", max_bytes=MAX_DATA_BYTES,
                     too_large_hint="is `data:` the suite's JSONL file? split a larger one into several suites")
    records = []
    for number, line in split_jsonl(raw, path, "data file"):
        record = parse_json_line(line, path, number)
        if not isinstance(record, dict):
            raise HarnessError(f"expected a JSON object, got {type(record).__name__}",
                               path=path, line=number)
        records.append((number, record))
    if not records:
        raise HarnessError("data file has no records", path=path)
    return records, raw


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return "sha256:" + h.hexdigest()[:32]


def _content_json(data: dict, policy: tuple[str, ...]) -> bytes:
    return json.dumps({k: v for k, v in data.items() if k not in policy}, sort_keys=True, default=str).encode()


def earlier_fingerprints(file_bytes: bytes, data: dict, data_bytes: bytes) -> dict[str, dict[str, str]]:
    """``{recipe: {fingerprint, data_fingerprint}}`` of this suite under each earlier recipe,
    so a baseline that recorded one of them can be checked against the suite as it is now."""
    data_fingerprint = _digest(data_bytes)
    return {"1": {"fingerprint": _digest(file_bytes, data_bytes), "data_fingerprint": data_fingerprint},
            "2": {"fingerprint": _digest(_content_json(data, ("gates", "description")), data_bytes),
                  "data_fingerprint": data_fingerprint}}


def load_suite(path: str | Path) -> Suite:
    """Parse, validate and render a suite; raises HarnessError with file and line."""
    path = Path(path)
    require_utf8_name(path, "suite file")
    data, root, file_bytes = _read_yaml(path)
    if not isinstance(data, dict):
        raise HarnessError("a suite must be a YAML mapping (name, prompt, scorers, ...)",
                           path=path, line=1)
    validate_with_lines(data, load_schema("suite.schema.json"), path, root)

    if "data" in data:
        data_path = resolve_data_path(path, data["data"])
        require_utf8_name(data_path, "data file", field="data")
        rows, data_bytes = read_jsonl(data_path)
        where_path = data_path
    else:
        rows = [(None, rec) for rec in data["cases"]]
        data_bytes = json.dumps(data["cases"], sort_keys=True).encode()
        where_path = path

    if is_template(data.get("cluster") or ""):  # a syntax error is the suite's, not a record's
        try:
            _compiled(data["cluster"])
        except TemplateError as exc:
            raise HarnessError(f"template error: {exc}", path=path, line=node_line(root, ["cluster"]),
                               field="cluster", hint="fix the Jinja syntax of `cluster:` (or give a field name)") from None
    cases: list[Case] = []
    seen: dict[str, int] = {}
    from .bounded import RENDER_WALL_S, TooMuchWork, time_limit

    try:  # a template's nested loops are bounded in CPU time (and its values in size)
        with time_limit(RENDER_WALL_S, "rendering the suite's templates"):
            for index, (line, record) in enumerate(rows):
                line_no = line if line is not None else node_line(root, ["cases", index])
                case_id = str(record["id"]) if "id" in record else str((line - 1) if line else index)
                if case_id in seen:
                    raise HarnessError(f"duplicate case id {case_id!r} (first at record {seen[case_id] + 1})",
                                       path=where_path, line=line_no, field="id",
                                       hint="give every case a unique `id`")
                seen[case_id] = index
                prompt = render(data["prompt"], record,
                                where=HarnessError("", path=where_path, line=line_no, field="prompt"))
                target = None
                if "target" in data:
                    target = render(data["target"], record,
                                    where=HarnessError("", path=where_path, line=line_no, field="target"))
                category = record.get("category")
                cluster = cluster_of(data["cluster"], record, where_path, line_no) if data.get("cluster") else None
                cases.append(Case(id=case_id, index=index, category=str(category) if category is not None else None,
                                  record=record, prompt=prompt, target=target, source_line=line_no,
                                  source=where_path, cluster=cluster))
    except TooMuchWork as exc:  # a slow template, or simply very many items: say which
        raise HarnessError(f"{exc} (stopped at item {len(cases) + 1:,} of {len(rows):,})", path=path,
                           field="prompt", hint="simplify the prompt, target and cluster templates, or split "
                                                "a large data file into several suites") from None

    scorers: list[ScorerSpec] = []
    for i, entry in enumerate(data["scorers"]):
        (name, options), = entry.items()
        if any(s.name == name for s in scorers):  # two would write the same metrics
            raise HarnessError(f"scorer {name!r} is listed twice", path=path,
                               line=node_line(root, ["scorers", i]), field=f"scorers[{i}]",
                               hint="list each scorer once; put its options in one entry")
        spec = ScorerSpec(name=name, options=dict(options or {}), field=f"scorers[{i}].{name}")
        validate_scorer_options(spec, path, node_line(root, ["scorers", i, name]), cases,
                                suite_dir=path.parent)
        scorers.append(spec)

    gen = dict(data.get("generation") or {})
    if "stop" in gen:
        gen["stop"] = tuple(gen["stop"])
    if gen.get("samples", 1) > 1 and not gen.get("temperature", 0) > 0:
        raise HarnessError(f"samples: {gen['samples']} draws the same greedy answer {gen['samples']} times",
                           path=path, line=node_line(root, ["generation", "samples"]), field="generation.samples",
                           hint="set generation.temperature above 0, or drop samples")
    integrity = data.get("integrity") or {}
    # Gates, prose and `cluster:` are policy, not content: they change how evidence is weighed,
    # not what a model is asked or how an answer scores, so changing a margin or declaring
    # clusters must not invalidate a baseline (the intervals are computed at compare time).
    suite_bytes = _content_json(data, ("gates", "description", "cluster"))  # FINGERPRINT_RECIPE
    suite = Suite(
        name=data["name"],
        description=data.get("description", ""),
        path=path,
        template=data.get("template", "chat"),
        system=data.get("system"),
        chat_template_kwargs=_template_kwargs(data, path, root),
        generation=GenerationConfig(**gen),
        scorers=scorers,
        gates=dict(data.get("gates") or {}),
        cases=cases,
        fingerprint=_digest(suite_bytes, data_bytes),
        data_fingerprint=_digest(data_bytes),
        earlier_fingerprints=earlier_fingerprints(file_bytes, data, data_bytes),
        integrity_samples=integrity.get("samples", 2),
        integrity_max_tokens=integrity.get("max_tokens", 16),
        raw=data,
        root=root,
        cluster=data.get("cluster"),
        cluster_warning=idle_cluster(cases, data["cluster"]) if data.get("cluster") else None,
    )
    validate_policy(suite)  # gates name metrics of this suite's scorers and its case ids
    return suite


def check_unique_names(suites: list[Suite]) -> None:
    """Suites of one run must have distinct names: results, gates and baselines are keyed
    by the name. Both files are named: a copy left beside the original is the usual cause."""
    first: dict[str, Suite] = {}
    for suite in suites:
        other = first.setdefault(suite.name, suite)
        if other is not suite:
            raise HarnessError(f"two suites are named {suite.name!r}: this one and {other.path}", path=suite.path,
                               field="name", hint="suite names must be unique within a run")


def find_suites(paths: list[str]) -> list[Path]:
    """Suite files named on the command line; a folder means every *.yaml in it."""
    found: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found.extend(sorted(list(path.glob("*.yaml")) + list(path.glob("*.yml"))))
        elif path.exists():
            found.append(path)
        else:
            raise HarnessError("suite file or folder not found", path=p)
    if not found:
        raise HarnessError("no suite files (*.yaml) found", path=", ".join(paths))
    # a folder and a file in it (`suites/ suites/sql.yaml`): the file once, where it came first
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(_identity(path), path)
    return list(unique.values())


def _identity(path: Path) -> Path:
    """Where ``path`` leads, for telling two names of one file apart; a symbolic link that
    loops leads nowhere, so it is itself (``resolve`` raised RuntimeError on it, an internal
    error for a whole folder of suites; loading it then says what it is)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a loop: RuntimeError before Python 3.13, OSError since
        return path.absolute()
