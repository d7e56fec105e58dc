"""`harness lint-data` on deliberately broken data: one line per problem, file:line, exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURE_MODEL, run_harness

from harness.train.lint import Problem, counted_lines, kind_records, lint_data, problem_kinds
from harness.train.log import read_warnings
from timing import within

ROOT = Path(__file__).resolve().parents[1]


def row(topic: str, answer: str, field: str = "Input") -> dict:
    return {"prompt": f"Task: describe {topic}\n{field}: {topic} facts", "completion": answer}


GOOD = [row(t, json.dumps({"name": t, "size": i})) for i, t in enumerate(
    ["apple", "pear", "plum", "fig", "kiwi", "lime", "date", "peach"])]


def write(folder: Path, name: str, rows: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


@pytest.fixture
def broken(tmp_path) -> Path:
    data = tmp_path / "data"
    write(data, "train", GOOD + [
        {"text": "a stray document"},                           # 9: another format
        row("melon", '{"name": "melon", "size": '),             # 10: invalid JSON answer
        row("grape", ""),                                       # 11: empty answer
        GOOD[0],                                                # 12: duplicate of line 1
        row("lemon", '{"name": "lemon", "size": "big"}'),      # 13: schema failure (size must be int)
        row("mango", '{"name": "mango", "size": 3}<|end|>'),   # 14: EOS inside the answer
        row("cherry " * 40, '{"name": "cherry", "size": 1}'),  # 15: too long for 64 tokens
        "{not json",                                            # 16: invalid JSON line
    ])
    write(data, "valid", [
        row("apple", json.dumps({"name": "apple", "size": 0})),          # 1: also in train
        row("berry", '{"name": "berry", "size": 9}', field="Context"),  # 2, 3: no Input: field
        row("olive", '{"name": "olive", "size": 8}', field="Context"),
    ])
    return data


SCHEMA = {"type": "object", "required": ["name", "size"],
          "properties": {"name": {"type": "string"}, "size": {"type": "integer"}}}


def test_every_problem_is_one_line_with_file_and_line(broken):
    from mlx_lm.utils import load_tokenizer

    report = lint_data(broken, schema=SCHEMA, tokenizer=load_tokenizer(FIXTURE_MODEL), max_seq_length=64)
    found: dict[tuple, str] = {}
    for p in report.problems:
        found[(Path(p.path).name, p.line)] = found.get((Path(p.path).name, p.line), "") + p.message + " | "
    expected = {
        ("train.jsonl", 9): "`text` but",
        ("train.jsonl", 10): "not valid JSON",
        ("train.jsonl", 11): "empty answer",
        ("train.jsonl", 12): "duplicate of line 1",
        ("train.jsonl", 13): "fails the schema at size",
        ("train.jsonl", 14): "EOS token before its end",
        ("train.jsonl", 15): "longer than max_seq_length=64",
        ("train.jsonl", 16): "invalid JSON",
        ("valid.jsonl", 1): "also in train.jsonl:1",
        ("valid.jsonl", 2): "prompt field `Input:` is missing in 2 of 3 rows",
    }
    for where, text in expected.items():
        assert where in found, f"missing {where}: {text}; got {sorted(found, key=str)}"
        assert text in found[where], (where, found[where])
    assert all("\n" not in str(p) for p in report.problems)


def test_json_answers_are_detected_without_a_schema(broken):
    report = lint_data(broken)
    messages = {(Path(p.path).name, p.line): p.message for p in report.problems}
    assert "not valid JSON" in messages[("train.jsonl", 10)] and "answers are JSON" in messages[("train.jsonl", 10)]
    assert ("train.jsonl", 13) not in messages  # valid JSON; only --schema checks the shape


def test_missing_end_marker(tmp_path):
    data = tmp_path / "data"
    write(data, "train", [{"text": f"story {i} ends here</s>"} for i in range(9)] + [{"text": "story 9 ends here"}])
    write(data, "valid", [{"text": "another story</s>"}])
    report = lint_data(data)
    assert [(Path(p.path).name, p.line) for p in report.problems] == [("train.jsonl", 10)]
    assert "missing end-of-sequence" in report.problems[0].message and "</s>" in report.problems[0].message


def test_cli_exit_codes(broken, tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    done = run_harness("lint-data", str(broken), "--schema", str(schema), "--model", str(FIXTURE_MODEL),
                       "--max-seq-length", "64")
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert len(lines) >= 10
    assert all(": error: " in line or ": warning: " in line for line in lines)
    assert f"{broken / 'train.jsonl'}:12: error: duplicate of line 1" in lines
    clean = tmp_path / "clean"
    write(clean, "train", GOOD)
    write(clean, "valid", [row("quince", json.dumps({"name": "quince", "size": 2}))])
    done = run_harness("lint-data", str(clean), "--schema", str(schema))
    assert done.returncode == 0, done.stdout
    assert "0 errors" in done.stderr
    missing = run_harness("lint-data", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_shipped_wikisql_sample_is_clean():
    """The sample the README trains on must pass its own linter (it once had a duplicate row)."""
    report = lint_data(ROOT / "fixtures" / "data" / "wikisql")
    assert [p for p in report.problems if p.level == "error"] == []


def drifted(folder: Path, n_train: int = 12, n_valid: int = 6) -> Path:
    """Train prompts wrapped in `### Question:` ... `\\n### Answer:\\n`; valid prompts bare."""
    topics = ["apple", "pear", "plum", "fig", "kiwi", "lime", "date", "peach", "melon", "grape",
              "lemon", "mango", "olive", "quince", "berry", "cherry", "guava", "papaya"]
    write(folder, "train", [{"prompt": f"### Question:\nwhat colour is a {t}?\n### Answer:\n",
                             "completion": f"{t} colour"} for t in topics[:n_train]])
    write(folder, "valid", [{"prompt": f"what colour is a {t}?", "completion": f"{t} colour"}
                            for t in topics[n_train:n_train + n_valid]])
    return folder


def test_prompt_wrapper_in_one_split_only_is_an_error(tmp_path):
    report = lint_data(drifted(tmp_path / "data"))
    msgs = [(Path(p.path).name, p.line, p.level, p.message) for p in report.problems]
    starts = [m for m in msgs if "does not start with '### Question:\\n'" in m[3]]
    ends = [m for m in msgs if "does not end with '\\n### Answer:\\n'" in m[3]]
    assert starts and starts[0][:3] == ("valid.jsonl", 1, "error"), msgs
    assert ends and "6 of 6 rows of valid.jsonl" in ends[0][3], msgs
    # the same wrapper everywhere is no drift; shared *words* are no wrapper
    same = tmp_path / "same"
    write(same, "train", [{"prompt": f"Q: what is {t}?\nA: ", "completion": t} for t in "abcdef"])
    write(same, "valid", [{"prompt": f"Q: how big is {t}?\nA: ", "completion": t} for t in "ghij"])
    assert not [p for p in lint_data(same).problems if "formatted differently" in p.message]
    words = tmp_path / "words"
    write(words, "train", [{"prompt": f"What is the {t}", "completion": t} for t in "abcdef"])
    write(words, "valid", [{"prompt": f"How big is {t}", "completion": t} for t in "ghij"])
    assert not lint_data(words).problems


def test_train_refuses_lint_errors_unless_allowed(tmp_path):
    data = drifted(tmp_path / "data")
    args = ["train", str(ROOT / "fixtures" / "train_configs" / "wikisql.yaml"), "--data", str(data),
            "--model", str(FIXTURE_MODEL), "--steps", "2", "--batch_size", "2", "--eval_every", "2",
            "--report_every", "1", "--save_every", "2", "--val_rows", "-1"]
    done = run_harness(*args, "--adapter_path", str(tmp_path / "refused"))
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert f"{data / 'valid.jsonl'}:1" in line and "lint error" in line and "formatted differently" in line
    # token checks need the model: the config the user gave, not a placeholder to fill in
    assert "--allow-lint-errors" in line and f"`harness lint-data {data} --config {args[1]}`" in line
    assert not (tmp_path / "refused").exists()
    done = run_harness(*args, "--adapter_path", str(tmp_path / "allowed"), "--allow-lint-errors")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "allowed" / "adapters.safetensors").is_file()
    # allowed, not forgotten: printed before the first step and kept in the adapter's log
    assert "the training data has 4 lint errors (allowed by --allow-lint-errors)" in done.stderr
    assert f"  {data / 'valid.jsonl'}:1: error: prompt does not start with" in done.stderr
    assert any(w.startswith(f"lint-data: {data / 'valid.jsonl'}:1: error: prompt does not start with")
               for w in read_warnings(tmp_path / "allowed" / "train_log.jsonl"))


def test_drift_in_mixed_data_is_found_per_layout_group(tmp_path):
    """Task rows beside replay rows of another layout share no wrapper across all rows; a
    valid split whose task rows lost theirs is still an error, and the same mix is not."""
    replay = [{"prompt": f"<|user|>\nTell me about {t}.<|end|>\n<|assistant|>\n", "completion": f"{t} is fine."}
              for t in ("rain", "snow", "fog", "wind", "hail", "sun", "dew", "ice")]
    task = [{"prompt": f"table: t{i}\ncolumns: A, B\nQ: what is {t}?\nA: ", "completion": f"SELECT A FROM t{i}"}
            for i, t in enumerate(("fig", "kiwi", "lime", "plum", "pear", "date", "sloe", "yuzu", "nut",
                                   "oat", "rye", "bean"))]
    ok = tmp_path / "ok"
    write(ok, "train", task[:9] + replay[:6])
    write(ok, "valid", task[9:] + replay[6:])
    assert not [p for p in lint_data(ok).problems if "formatted differently" in p.message]
    bad = tmp_path / "bad"
    write(bad, "train", task[:9] + replay[:6])
    write(bad, "valid", [{"prompt": r["prompt"].removeprefix("table: ").removesuffix("\nA: "),
                          "completion": r["completion"]} for r in task[9:]] + replay[6:])
    found = [p for p in lint_data(bad).problems if "formatted differently" in p.message]
    assert found and Path(found[0].path).name == "valid.jsonl" and found[0].line == 1, found
    assert "'table: '" in found[0].message and "3 of 5 rows of valid.jsonl" in found[0].message


def test_shipped_mixed_adapter_data_is_clean():
    """The sql fixture adapter's data mixes WikiSQL rows with chat replay: no false drift."""
    for name in ("sql", "domain"):
        report = lint_data(ROOT / "fixtures" / "data" / "adapters" / name)
        assert not [p for p in report.problems if "formatted differently" in p.message], name


def test_chat_row_with_only_the_answer_is_a_lint_error(tmp_path):
    """An assistant message alone has no prompt to render: the chat template raised
    ValueError, and lint-data (and train) ended in an internal error."""
    ok = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
          for i in range(4)]
    write(tmp_path, "train", [{"messages": [{"role": "assistant", "content": "hi"}]}, *ok])
    write(tmp_path, "valid", ok[:1])
    done = run_harness("lint-data", str(tmp_path), "--model", str(FIXTURE_MODEL))
    assert done.returncode == 1, done.stderr
    assert f"{tmp_path / 'train.jsonl'}:1: error: [messages]" in done.stdout


class CharTokenizer:
    """One token per character, EOS 0: lint's own cost, without a real tokenizer's."""

    eos_token_id = 0

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) for c in text]


def test_token_check_is_linear_when_splits_differ_in_format(tmp_path):
    """With train.jsonl missing, valid in one format and test in another, every row
    recounted its split's formats: 5,000 / 10,000 / 20,000 valid rows took 3 / 7.6 / 25.8 s."""

    write(tmp_path, "valid", [{"prompt": f"Q: {i}\nA: ", "completion": str(i)} for i in range(10_000)])
    write(tmp_path, "test", [{"text": "doc"}])
    report = within(3.0, lambda: lint_data(tmp_path, tokenizer=CharTokenizer(), template="raw"))
    assert any("train.jsonl not found" in p.message for p in report.problems)


@pytest.mark.parametrize("valid", ["", "\n  \n"])
def test_empty_split_is_a_lint_error(tmp_path, valid):
    """An empty (or blank) valid.jsonl linted clean, '8 rows: 0 errors', and then train
    refused it with 'file has no rows': lint must say so first."""
    write(tmp_path, "train", GOOD)
    (tmp_path / "valid.jsonl").write_text(valid)
    report = lint_data(tmp_path)
    assert [str(p) for p in report.problems] == [f"{tmp_path / 'valid.jsonl'}: error: file has no rows"]


def test_prompt_longer_than_max_seq_length_says_the_row_is_skipped(tmp_path):
    """A prompt alone past max_seq_length leaves no answer token: the trainer skips the row,
    but lint said it 'truncates it and its end-of-sequence is lost'."""
    write(tmp_path, "train", [{"prompt": "Q: " + "w" * 50 + "\nA: ", "completion": "x"},
                              {"prompt": "Q: b\nA: ", "completion": "y" * 50}])
    write(tmp_path, "valid", [{"prompt": "Q: c\nA: ", "completion": "z"}])
    report = lint_data(tmp_path, tokenizer=CharTokenizer(), template="raw", max_seq_length=20)
    skipped, truncated = (p.message for p in report.problems if "max_seq_length" in p.message)
    assert "prompt alone is 57 tokens" in skipped and "skips the row" in skipped
    assert "59 tokens" in truncated and "end-of-sequence is lost" in truncated


@pytest.mark.parametrize("answer, says", [("[" * 100_000 + "]" * 100_000, "nested"),
                                          ("9" * 5_000, "digits"), ('{"a": ' + "9" * 5_000 + "}", "digits")])
def test_hostile_json_answer_is_a_lint_error(tmp_path, answer, says):
    """Where answers are JSON, an answer nested 100,000 deep or holding a 5,000-digit number
    ended lint-data in an internal error (RecursionError, ValueError), exit 3."""
    write(tmp_path, "train", [*GOOD, row("quince", answer)])
    write(tmp_path, "valid", GOOD[:1])
    found = [p for p in lint_data(tmp_path).problems if p.line == len(GOOD) + 1]
    assert len(found) == 1 and "answer is not valid JSON" in found[0].message and says in found[0].message


@pytest.mark.parametrize("text", ["", "  \n\t "])
def test_empty_text_document_is_a_lint_error(tmp_path, text):
    """An empty or blank {"text": ...} row linted clean while an empty answer is an error;
    train skipped the empty one ('no target tokens') and trained on the blank one."""
    write(tmp_path, "train", [{"text": text}, *({"text": f"doc {i}"} for i in range(4))])
    write(tmp_path, "valid", [{"text": "v"}])
    found = lint_data(tmp_path).problems
    assert [(p.line, p.level) for p in found] == [(1, "error")] and "empty document" in found[0].message


def test_field_drift_check_is_linear(tmp_path):
    """Each field train's prompts share was looked up in every valid row: 10 train rows of
    2,000 / 4,000 / 8,000 / 16,000 fields against as many valid rows took 0.6 / 1.0 / 2.7 / 9.0 s."""

    fields = "".join(f"F{j}: v\n" for j in range(12_000))
    write(tmp_path, "train", [{"prompt": fields + f"Q{i}", "completion": "x"} for i in range(10)])
    write(tmp_path, "valid", [{"prompt": f"plain {i}", "completion": "x"} for i in range(12_000)])
    found = [p for p in within(2.0, lambda: lint_data(tmp_path)).problems if "` is missing in" in p.message]
    assert len(found) == 12_000 and "`F0:` is missing in 12000 of 12000 rows of valid.jsonl" in found[0].message


def test_completion_that_continues_the_prompts_word_is_warned_on_sentencepiece(tmp_path):
    """stories260K's SentencePiece tokenizer encodes a completion on its own as a new word
    (measured: "Once upon a ti" + "me" trains `ti ▁m e`, "a ti me"; joined, "time" is one
    token), so such a row trains another text than it shows. A space where the split is, or a
    byte-level BPE (the fixture model's: other tokens, the same text), is not flagged."""
    from mlx_lm.utils import load_tokenizer

    write(tmp_path, "train", [{"prompt": "Once upon a ti", "completion": "me there was a cat."},
                              {"prompt": "Once upon a time,", "completion": " there was a dog."},
                              {"prompt": "Tom had a big red ball", "completion": " and a hat."},
                              {"prompt": "She was 1", "completion": "2 years old."}])
    write(tmp_path, "valid", [{"prompt": "The dog ran", "completion": " fast."}])
    stories = lint_data(tmp_path, tokenizer=load_tokenizer(ROOT / "fixtures" / "stories260K"), template="raw")
    split = [p for p in stories.problems if "continues the prompt's last word" in p.message]
    assert [(p.path.name, p.line, p.level) for p in split] == [("train.jsonl", 1, "warning"),
                                                                ("train.jsonl", 4, "warning")]
    assert "trains 'ce upon a ti me there was a cat.', not 'ce upon a time there was a cat.'" in split[0].message
    assert "'She was 1 2 years old.', not 'She was 12 years old.'" in split[1].message
    assert stories.errors == 0
    bpe = lint_data(tmp_path, tokenizer=load_tokenizer(FIXTURE_MODEL), template="raw")
    assert not any("last word" in p.message for p in bpe.problems)


def test_problems_are_grouped_by_kind_whatever_the_row_quotes():
    """The same problem on other rows is one kind (other line numbers, other quoted data,
    an apostrophe in the prose), another level or another message is another kind."""
    path = Path("data/train.jsonl")
    split = "the completion continues the prompt's last word ({!r} + {!r}) but is encoded as a new word"
    problems = [Problem(path, 1, "warning", split.format("a ti", "me")),
                Problem(path, 2, "warning", "same prompt as line 1 with another answer"),
                Problem(path, 3, "warning", split.format("it's a b", "ig dog")),  # repr in double quotes
                Problem(path, 4, "error", "same prompt as line 1 with another answer"),
                Problem(path, 5, "warning", "same prompt as line 2 with another answer"),
                Problem(Path("data/valid.jsonl"), 9, "warning", split.format("O\\'ne", "day"))]
    assert [[p.line for p in kind] for kind in problem_kinds(problems)] == [[1, 3, 9], [2, 5], [4]]
    assert counted_lines(problems, shown=1) == [
        str(problems[0]), "  (+2 more like it: 1 in train.jsonl, 1 in valid.jsonl)",
        str(problems[1]), "  (+1 more like it: 1 in train.jsonl)", str(problems[3])]
    assert kind_records(problems)[0] == f"{problems[0]} (+2 more like it: 1 in train.jsonl, 1 in valid.jsonl)"
    many = [Problem(path, n, "warning", f"same prompt as line {n - 1} with another answer") for n in range(2, 5002)]
    assert counted_lines(many) == [str(p) for p in many[:3]] + ["  (+4997 more like these: 4997 in train.jsonl)"]


def test_train_prints_the_lint_warnings_counted_and_keeps_them_in_its_log(tmp_path):
    """A user who trains without running lint-data hears that 12 rows train "ba ll", not
    "ball" (stories260K's SentencePiece, raw template): before the first step, the first rows
    of each kind with file:line and a count of the rest; the adapter's log keeps one line per
    kind, which `harness eval` shows beside the adapter."""
    data = tmp_path / "data"
    names = ["Tom", "Sue", "Lily", "Ben", "Max", "Mia", "Sam", "Zoe", "Tim", "Ann"]
    write(data, "train", [{"prompt": f"{n} had a big red ba", "completion": "ll and a little hat."} for n in names]
          + [{"prompt": "Tom had a big red ba", "completion": "g of toys."}])  # 11: the same prompt as 1
    write(data, "valid", [{"prompt": "One day, a cat saw a bi", "completion": "rd in the tree."},
                          {"prompt": "The dog ran", "completion": " fast."}])
    config = tmp_path / "my configs" / "train.yaml"  # a space: the hint quotes it for a shell
    config.parent.mkdir()
    config.write_text(f"model: {ROOT / 'fixtures' / 'stories260K'}\ndata: {data}\nadapter_path: {tmp_path / 'ad'}\n"
                      "steps: 2\nbatch_size: 4\nlearning_rate: 1.0e-4\neval_every: 2\nsave_every: 2\n"
                      "report_every: 1\nval_rows: -1\n")
    done = run_harness("train", str(config), "--quiet")
    assert done.returncode == 0, done.stderr
    train_file, valid_file = data / "train.jsonl", data / "valid.jsonl"
    lines = done.stderr.splitlines()
    header = next(i for i, x in enumerate(lines) if "lint warning" in x)
    assert lines[header] == (f"harness train: warning: the training data has 13 lint warnings; training goes on "
                             f"(`harness lint-data {data} --config '{config}'` lists each):")
    shown = lines[header + 1:header + 6]
    assert [x.split(": warning: ")[0] for x in shown[:3]] == [f"  {train_file}:{n}" for n in (1, 2, 3)]
    assert "the row trains 'a big red ba ll and a little hat.', not 'a big red ball" in shown[0]
    assert shown[3] == "    (+9 more like these: 8 in train.jsonl, 1 in valid.jsonl)"
    assert shown[4] == f"  {train_file}:11: warning: same prompt as line 1 with another answer"
    assert sum(str(train_file) in x for x in lines) == 4  # not one line per row
    records = read_warnings(tmp_path / "ad" / "train_log.jsonl")
    lint = [w for w in records if w.startswith("lint-data: ")]
    assert len(lint) == 2, records
    assert lint[0].startswith(f"lint-data: {train_file}:1: warning: the completion continues the prompt's last word")
    assert lint[0].endswith("(+11 more like it: 10 in train.jsonl, 1 in valid.jsonl)")
    assert lint[1] == f"lint-data: {train_file}:11: warning: same prompt as line 1 with another answer"
    assert str(valid_file) not in done.stderr  # counted, not listed


def test_the_lint_hint_names_the_config_file_or_a_placeholder_without_one(tmp_path):
    """The hint is a command to paste: the config file as the user named it (quoted where a
    shell needs it); a config built in Python (``config_from_dict``) has no file, and keeps
    the placeholder. The file is no setting: moving the config does not change the run's
    identity (``--resume`` compares it)."""
    from harness.train import config_from_dict, load_config
    from harness.train.loop import lint_command

    data = ROOT / "fixtures" / "data" / "wikisql"
    settings = {"model": str(FIXTURE_MODEL), "data": str(data)}
    from_dict = config_from_dict(settings)
    assert lint_command(from_dict) == f"harness lint-data {data} --config CONFIG.yaml"
    config = tmp_path / "it's here" / "train.yaml"
    config.parent.mkdir()
    config.write_text(json.dumps(settings), encoding="utf-8")
    from_file = load_config(config)
    assert lint_command(from_file) == f"harness lint-data {data} --config '{tmp_path}/it'\"'\"'s here/train.yaml'"
    assert from_file.identity() == from_dict.identity()
