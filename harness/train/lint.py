"""``harness lint-data``: find what ruins a fine-tune before any training runs.

Every problem is one line ``file:line: error|warning: message`` and the scan goes on past
it, so one run lists them all. Errors (exit 1): a row in another format than the rest
or than the other splits, a prompt field (``Input:``) that one split has and another has
not, answers that are not valid JSON (or fail ``--schema``) where answers are JSON, a
missing end-of-sequence, rows longer than ``max_seq_length``, duplicates, train/valid
overlap, empty answers. With a tokenizer (``--model`` or ``--config``) rows are encoded
exactly as ``harness train`` encodes them, so lengths and EOS are the trainer's, and rows
longer than the model's positions (its config.json) get the trainer's warning (an error
for a learned position table, which the trainer refuses), and a raw ``completions`` row
whose completion continues the prompt's last word ("a ti" + "me") is a warning where the
tokenizer (SentencePiece) encodes the completion as a new word ("a ti me").
``harness train`` runs the same lint and prints what it goes on with counted by kind
(``counted_lines``): the first rows of each, then how many more.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..bounded import TooMuchWork
from ..errors import HarnessError
from ..positions import Positions, position_warnings
from .data import (FORMAT_KEYS, SPLITS, Example, check_row, data_folder, encode_row, format_problem,
                   kept_ids, missing_split, resolve_template, row_format)

# A prompt field label at the start of a line: "Input:", "### Response:", "table:", "Q:".
LABEL = re.compile(r"^[ \t]*(?:#+[ \t]*)?([A-Za-z][A-Za-z0-9 _/-]{0,30}):", re.MULTILINE)
# An end marker typed into the text, e.g. "</s>", "<|end|>", "<|endoftext|>".
END_MARKER = re.compile(r"(<\|?/?[A-Za-z_]{1,20}\|?>)\s*$")
MAJORITY = 0.9  # share of rows that makes a label or an end marker "the rule"


@dataclass
class Problem:
    path: Path
    line: int | None
    level: str  # "error" | "warning"
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.level}: {self.message}"


@dataclass
class Row:
    split: str
    path: Path
    line: int
    record: dict
    fmt: str
    prompt: str
    answer: str | None  # None for text rows: a document has no separate answer

    @property
    def key(self) -> str:
        return json.dumps({k: self.record[k] for k in FORMAT_KEYS[self.fmt]}, sort_keys=True)


@dataclass
class LintReport:
    problems: list[Problem] = field(default_factory=list)
    rows: int = 0

    @property
    def errors(self) -> int:
        return sum(p.level == "error" for p in self.problems)

    @property
    def warnings(self) -> int:
        return sum(p.level == "warning" for p in self.problems)

    def add(self, row_or_path: Row | Path, level: str, message: str) -> None:
        if isinstance(row_or_path, Row):
            self.problems.append(Problem(row_or_path.path, row_or_path.line, level, message))
        else:
            self.problems.append(Problem(row_or_path, None, level, message))


# What differs from row to row inside one kind of problem: quoted data (a repr, which no
# letter precedes: the apostrophe of "the prompt's" opens no quote), field names, numbers.
ROW_DETAILS = re.compile(r"(?<!\w)'(?:[^'\\]|\\.)*'|(?<!\w)\"(?:[^\"\\]|\\.)*\"|`[^`]*`|\d+")
SHOWN_PER_KIND = 3  # rows of one kind of problem that `harness train` shows before counting


def problem_kinds(problems: list[Problem]) -> list[list[Problem]]:
    """The problems grouped by kind (level, and message less its row's details), in the
    order each kind first occurs: "same prompt as line 4 ..." and "... line 9 ..." are one
    kind, so a run over thousands of rows says each thing once, with its count."""
    kinds: dict[tuple[str, str], list[Problem]] = {}
    for p in problems:
        kinds.setdefault((p.level, ROW_DETAILS.sub("_", p.message)), []).append(p)
    return list(kinds.values())


def more_like_these(kind: list[Problem], shown: int) -> str:
    """``(+N more like these: 78 in train.jsonl, 2 in valid.jsonl)``; empty when none."""
    rest = Counter(p.path.name for p in kind[shown:])
    if not rest:
        return ""
    where = ", ".join(f"{n} in {name}" for name, n in rest.items())
    return f"(+{len(kind) - shown} more like {'these' if shown > 1 else 'it'}: {where})"


def counted_lines(problems: list[Problem], shown: int = SHOWN_PER_KIND) -> list[str]:
    """Each kind of problem as ``harness lint-data`` prints it (``file:line: level: message``),
    its first ``shown`` rows and how many more: what `harness train` prints before it trains."""
    out = []
    for kind in problem_kinds(problems):
        out += [str(p) for p in kind[:shown]]
        if more := more_like_these(kind, shown):
            out.append(f"  {more}")
    return out


def kind_records(problems: list[Problem]) -> list[str]:
    """One line per kind of problem, its first row and how many more: what the training log
    keeps (and ``harness eval`` shows beside the adapter) however many rows have it."""
    return [" ".join(filter(None, (str(kind[0]), more_like_these(kind, 1)))) for kind in problem_kinds(problems)]


def _prompt_answer(record: dict, fmt: str) -> tuple[str, str | None]:
    if fmt == "text":
        return record["text"], None
    if fmt == "completions":
        return record["prompt"], record["completion"]
    msgs = record["messages"]
    return "\n".join(m["content"] for m in msgs[:-1]), msgs[-1]["content"]


def _read(path: Path, split: str, report: LintReport, wanted: str = "auto") -> list[Row]:
    from ..suite import jsonl_lines, parse_json_line

    rows = []
    for number, text in jsonl_lines(path):
        report.rows += 1
        try:
            record = parse_json_line(text, path, number)
        except HarnessError as exc:
            report.problems.append(Problem(path, number, "error", exc.message))
            continue
        fmt = row_format(record, wanted)
        if fmt is None:
            message, hint = format_problem(record, wanted)
            report.problems.append(Problem(path, number, "error", f"{message}; {hint}"))
            continue
        try:
            check_row(record, fmt, path, number)
        except HarnessError as exc:
            report.problems.append(Problem(path, number, "error",
                                           f"[{exc.field}] {exc.message}" if exc.field else exc.message))
            continue
        prompt, answer = _prompt_answer(record, fmt)
        rows.append(Row(split, path, number, record, fmt, prompt, answer))
    return rows


def _check_formats(splits: dict[str, list[Row]], report: LintReport) -> dict[str, list[Row]]:
    """Flag rows in another format than their file's and files in another than train's;
    returns the rows in train's format, which the other checks look at."""
    majority = {}
    for name, rows in splits.items():
        if not rows:
            continue
        counts = Counter(r.fmt for r in rows)
        fmt, n = counts.most_common(1)[0]
        majority[name] = fmt
        for r in rows:
            if r.fmt != fmt:
                report.add(r, "error", f"row is `{r.fmt}` but {n} other rows of {r.path.name} are `{fmt}`")
    main = majority.get("train")
    for name, fmt in majority.items():
        if main and fmt != main:
            first = splits[name][0]
            report.add(first, "error", f"{first.path.name} is `{fmt}` but train.jsonl is `{main}`")
    return {name: [r for r in rows if r.fmt == (main or majority.get(name))] for name, rows in splits.items()}


def _check_labels(splits: dict[str, list[Row]], report: LintReport) -> None:
    """Prompt fields (``Label:`` at a line start) that differ between rows or splits."""
    labels = {name: [set(LABEL.findall(r.prompt)) for r in rows] for name, rows in splits.items()}
    common, having = {}, {}
    for name, sets in labels.items():
        counts = having[name] = Counter(label for s in sets for label in s)
        common[name] = {label for label, n in counts.items() if n >= MAJORITY * len(sets)}
        for row, s in zip(splits[name], sets):
            missing = sorted(common[name] - s)
            if missing and len(sets) >= 5:
                report.add(row, "error", f"prompt lacks the field(s) {', '.join(m + ':' for m in missing)} "
                                         f"that {MAJORITY:.0%}+ of the rows of {row.path.name} have")
    for a in labels:
        for b in labels:
            if a == b or not splits[b]:
                continue
            for label in sorted(common[a]):
                lacking = len(splits[b]) - having[b][label]  # counted, not searched per label
                if lacking > len(splits[b]) / 2:
                    first = next(row for row, s in zip(splits[b], labels[b]) if label not in s)
                    report.add(first, "error",
                               f"prompt field `{label}:` is missing in {lacking} of {len(splits[b])} rows "
                               f"of {b}.jsonl (first here) but {MAJORITY:.0%}+ of {a}.jsonl rows have it: "
                               f"the splits are formatted differently")


def _check_wrappers(splits: dict[str, list[Row]], report: LintReport) -> None:
    """A prompt wrapper (a shared layout prefix or suffix such as ``### Question:\n`` or
    ``\nA: ``) that every row of one split has and most rows of another lack: the model
    would be validated (and later evaluated) on a layout it was not trained on. Mixed data
    (task rows beside replay rows of another layout) shares no wrapper across all rows;
    there each layout group is compared (``_check_layout_groups``)."""
    from ..prompts import prompt_wrapper

    splits = {name: [r for r in rows if r.answer is not None] for name, rows in splits.items()}
    wrappers = {name: prompt_wrapper([r.prompt for r in rows]) for name, rows in splits.items()}
    for a, (prefix, suffix) in wrappers.items():
        if not prefix.strip() and not suffix.strip():
            _check_layout_groups(a, splits, report)
            continue
        for b, rows in splits.items():
            if a == b or not rows:
                continue
            for side, affix, has in (("start with", prefix, str.startswith), ("end with", suffix, str.endswith)):
                if not affix.strip():
                    continue
                lacking = [r for r in rows if not has(r.prompt, affix)]
                if len(lacking) > len(rows) / 2:
                    first = lacking[0]
                    got = first.prompt[:len(affix) + 8] if side == "start with" else first.prompt[-len(affix) - 8:]
                    report.add(first, "error",
                               f"prompt does not {side} {affix!r} as all {len(splits[a])} rows of {a}.jsonl do "
                               f"({len(lacking)} of {len(rows)} rows of {b}.jsonl lack it; this one "
                               f"{'starts' if side == 'start with' else 'ends'} {got!r}): "
                               f"the splits are formatted differently")


GROUP_MIN_ROWS, GROUP_MIN_SHARE = 3, 0.05  # a layout group of a split: this many rows and share


def _check_layout_groups(a: str, splits: dict[str, list[Row]], report: LintReport) -> None:
    """Split ``a`` in layout groups (rows whose first line starts with the same layout, e.g.
    ``table: `` or ``<|system|>\n``), each with its own wrapper; rows of another split that
    fit none of them, when they are many (a fifth of that split, at least 3), are an error."""
    from collections import defaultdict

    from ..prompts import first_line_layout, prompt_wrapper

    rows = splits[a]
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[first_line_layout(r.prompt)].append(r)
    layouts = [prompt_wrapper([r.prompt for r in g]) for key, g in groups.items()
               if key.strip() and len(g) >= max(GROUP_MIN_ROWS, GROUP_MIN_SHARE * len(rows))]
    layouts = [(p, s) for p, s in layouts if p.strip() or s.strip()]
    covered = sum(any(r.prompt.startswith(p) and r.prompt.endswith(s) for p, s in layouts) for r in rows)
    if not layouts or covered < 0.8 * len(rows):
        return  # no layout a clear majority of this split's rows share: nothing to hold others to
    for b, other in splits.items():
        if a == b or not other:
            continue
        misfits = [r for r in other if not any(r.prompt.startswith(p) and r.prompt.endswith(s) for p, s in layouts)]
        if len(misfits) >= max(3, len(other) / 5):
            first = misfits[0]
            shown = "; ".join(f"{p!r} ... {s!r}" for p, s in layouts[:4])
            report.add(first, "error",
                       f"prompt fits none of the layouts of {a}.jsonl's rows ({shown}); {len(misfits)} of "
                       f"{len(other)} rows of {b}.jsonl fit none (this one starts {first.prompt[:24]!r}): "
                       f"the splits are formatted differently")


def _check_answers(splits: dict[str, list[Row]], schema: dict | None, report: LintReport,
                   schema_file: Path | None = None) -> None:
    import jsonschema

    answered = [r for rows in splits.values() for r in rows if r.answer is not None]
    for r in answered:
        if not r.answer.strip():
            report.add(r, "error", "empty answer (the model learns to say nothing)")
    for r in (r for rows in splits.values() for r in rows if r.answer is None and not r.prompt.strip()):
        report.add(r, "error", "empty document (nothing to learn but whitespace and the end)")

    def parse(text: str) -> tuple[bool, Any]:
        """(True, value), or (False, why it is not JSON) -- bounded: an answer is data too."""
        from .. import bounded

        try:
            return True, bounded.loads(text, what="the answer")
        except json.JSONDecodeError as exc:
            return False, f"{exc.msg} at column {exc.colno}"
        except (TooMuchWork, RecursionError, ValueError) as exc:  # too deep, too long, 4,300+ digits
            return False, str(exc).split(";")[0] or "nested too deeply"

    parsed = {id(r): parse(r.answer) for r in answered if r.answer.strip()}
    structured = sum(ok and isinstance(v, (dict, list)) for ok, v in parsed.values())
    json_answers = schema is not None or (parsed and structured >= 0.5 * len(parsed))
    if not json_answers:
        return
    validator = None
    if schema is not None:
        from ..scorers.schema_sandbox import make_validator  # $refs only beside the schema file

        validator = make_validator(schema, schema_file, schema_file.parent if schema_file else Path("."))
    for r in answered:
        if id(r) not in parsed:
            continue
        ok, value = parsed[id(r)]
        if not ok:
            why = "" if schema is not None else f" ({structured} of {len(parsed)} answers are JSON)"
            report.add(r, "error", f"answer is not valid JSON: {value}{why}")
        elif validator is not None:
            try:
                err = jsonschema.exceptions.best_match(validator.iter_errors(value))
            except TooMuchWork as exc:
                report.add(r, "error", f"answer not checked against the schema: {exc}")
                continue
            if err is not None:
                where = "/".join(str(p) for p in err.absolute_path) or "(root)"
                report.add(r, "error", f"answer fails the schema at {where}: {err.message}")


def _check_duplicates(splits: dict[str, list[Row]], report: LintReport) -> None:
    for rows in splits.values():
        seen: dict[str, Row] = {}
        prompts: dict[str, Row] = {}
        for r in rows:
            if r.key in seen:
                report.add(r, "error", f"duplicate of line {seen[r.key].line}")
                continue
            seen[r.key] = r
            if r.answer is not None:
                first = prompts.setdefault(r.prompt, r)
                if first is not r and first.answer != r.answer:
                    report.add(r, "warning", f"same prompt as line {first.line} with another answer")
    train = splits.get("train", [])
    by_key = {r.key: r for r in train}
    by_prompt = {r.prompt: r for r in train if r.answer is not None}
    for name in ("valid", "test"):
        for r in splits.get(name, []):
            hit = by_key.get(r.key) or (by_prompt.get(r.prompt) if r.answer is not None else None)
            if hit is not None:
                what = "row" if hit.key == r.key else "prompt"
                report.add(r, "error", f"{what} also in train.jsonl:{hit.line} "
                                       f"(validation would measure memorisation)")


def _check_end_markers(splits: dict[str, list[Row]], report: LintReport) -> None:
    """Rows missing the end marker (``</s>``, ``<|end|>``) that the others end with."""
    for rows in splits.values():
        ends = [END_MARKER.search(r.answer if r.answer is not None else r.prompt) for r in rows]
        counts = Counter(m.group(1) for m in ends if m)
        if not counts:
            continue
        marker, n = counts.most_common(1)[0]
        if n < MAJORITY * len(rows):
            continue
        for r, m in zip(rows, ends):
            if not m or m.group(1) != marker:
                report.add(r, "error", f"missing end-of-sequence: {n} other rows end with `{marker}`, this one does not")


def _check_tokens(splits: dict[str, list[Row]], tokenizer: Any, template: str, system: str | None,
                  max_seq_length: int, report: LintReport, positions: Positions | None = None,
                  explicit_max_seq_length: bool = False) -> None:
    """Encode as the trainer does: too-long rows, EOS where the model must learn to stop, and
    rows past the model's positions (``positions``, from its config.json), in the trainer's
    words: an error for a learned position table (the trainer refuses), else a warning."""
    encoded: dict[str, SimpleNamespace] = {}
    eos = tokenizer.eos_token_id
    fmts = {r.fmt for rows in splits.values() for r in rows}
    if eos is None:
        first = next(r for rows in splits.values() for r in rows)
        report.add(first.path, "error", "the tokenizer has no EOS token: the model cannot learn to stop")
        return
    for name, rows in splits.items():
        encoded[name] = SimpleNamespace(path=rows[0].path if rows else None, examples=[])
        main = Counter(x.fmt for x in rows).most_common(1)[0][0] if rows else None  # once, not per row
        for r in rows:
            if len(fmts) > 1 and r.fmt != main:
                continue
            try:
                tmpl = resolve_template(template, r.fmt, tokenizer)
                ids, prompt_len = encode_row(tokenizer, r.record, r.fmt, tmpl, system, True)
            except HarnessError as exc:
                report.add(r, "error", exc.message)
                continue
            kept = kept_ids(ids, prompt_len, max_seq_length)
            if kept is not None:
                encoded[name].examples.append(Example(ids=kept, prompt_len=prompt_len, line=r.line))
            if r.fmt == "completions" and tmpl == "raw":
                _check_word_split(r, ids, tokenizer, system, report)
            answer = ids[prompt_len:-1]
            if eos in answer:
                report.add(r, "error", "the answer contains the EOS token before its end "
                                       "(the model learns to stop early)")
            if prompt_len >= max_seq_length:  # the trainer keeps no target token of it
                report.add(r, "error", f"the prompt alone is {prompt_len} tokens, longer than "
                                       f"max_seq_length={max_seq_length}: no answer token is left "
                                       f"and the trainer skips the row")
            elif len(ids) > max_seq_length:
                report.add(r, "error", f"{len(ids)} tokens, longer than max_seq_length={max_seq_length}: "
                                       f"the trainer truncates it and its end-of-sequence is lost")
    if positions is None:
        return
    encoded = {name: split for name, split in encoded.items() if split.examples}
    level = "error" if positions.learned else "warning"  # a learned table: the trainer refuses them
    over = False
    for name, split in encoded.items():
        for text in position_warnings(positions, max_seq_length, False, {name: split}):
            report.add(split.path, level, text)
            over = True
    if encoded and not over:  # then only a max_seq_length set above the positions is left to say
        for text in position_warnings(positions, max_seq_length, explicit_max_seq_length, encoded):
            report.add(next(iter(encoded.values())).path, "warning", text)


def _check_word_split(r: Row, ids: list[int], tokenizer: Any, system: str | None, report: LintReport) -> None:
    """A completion that continues the prompt's last word ("Once upon a ti" + "me"): the
    trainer encodes prompt and completion apart, and a SentencePiece tokenizer starts the
    completion as a new word ("▁m e"), so the row trains "a ti me", not what its text says.
    Flagged where the decoded tokens differ from the joined text's; a byte-level BPE only
    splits the tokens differently and decodes the same text."""
    from ..prompts import encode_prompt

    prompt, completion = r.record["prompt"], r.record["completion"]
    if not (prompt[-1:].isalnum() and completion[:1].isalnum()):
        return
    trained = tokenizer.decode(ids[:-1])  # without the EOS
    meant = tokenizer.decode(encode_prompt(tokenizer, prompt + completion, "raw", system))
    if trained == meant:
        return
    tail = len(completion) + min(len(prompt), 12)  # the prompt's end, not its BOS
    report.add(r, "warning", f"the completion continues the prompt's last word ({prompt[-12:]!r} + "
                             f"{completion[:12]!r}) but is encoded as a new word: the row trains "
                             f"{trained[-tail - 1:]!r}, not {meant[-tail:]!r}; split prompt and "
                             f"completion at a word boundary, the space starting the completion")


def lint_data(folder: str | Path, schema: dict | None = None, tokenizer: Any = None,
              template: str = "auto", system: str | None = None,
              max_seq_length: int = 2048, schema_file: Path | None = None, fmt: str = "auto",
              positions: Positions | None = None, explicit_max_seq_length: bool = False) -> LintReport:
    """Every problem of the data folder's splits (``positions``: the model's, from its
    config.json, to check the encoded rows against; None skips that check)."""
    root = data_folder(folder, "pass the folder with train.jsonl and valid.jsonl")
    report = LintReport()
    splits: dict[str, list[Row]] = {}
    for name in SPLITS:
        path = root / f"{name}.jsonl"
        if path.is_file():
            before = report.rows
            splits[name] = _read(path, name, report, fmt)
            if report.rows == before:  # as `harness train` refuses it
                report.add(path, "error", "file has no rows")
        elif missing := missing_split(path):
            report.add(path, "error", missing)
    splits = _check_formats(splits, report)
    _check_labels(splits, report)
    _check_wrappers(splits, report)
    _check_answers(splits, schema, report, schema_file)
    _check_duplicates(splits, report)
    _check_end_markers(splits, report)
    if tokenizer is not None and any(splits.values()):
        _check_tokens(splits, tokenizer, template, system, max_seq_length, report, positions,
                      explicit_max_seq_length)
    report.problems.sort(key=lambda p: (str(p.path), p.line or 0))
    return report
