"""Training data: formats checked on every row, the eval encoder, exact masks, real bucketing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.prompts import encode_completion, encode_example
from harness.train.batching import TrainStream, epoch_order, eval_batches, make_batch, split_rows
from harness.train.data import Example, fixed_subset, load_splits

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "fixtures" / "model"
WIKISQL = ROOT / "fixtures" / "data" / "wikisql"


@pytest.fixture(scope="module")
def tokenizer():
    from mlx_lm.utils import load_tokenizer

    return load_tokenizer(MODEL)


def write_split(folder: Path, name: str, rows: list) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def sql_rows(path: Path, n: int) -> list[dict]:
    rows = [json.loads(line)["text"] for line in path.read_text().splitlines()[:n]]
    return [{"prompt": t.split("\nA: ")[0] + "\nA: ", "completion": t.split("\nA: ")[1]} for t in rows]


def load(folder, tokenizer, **kw):
    args = dict(fmt="auto", template="auto", system=None, mask_prompt=None, max_seq_length=2048) | kw
    return load_splits(folder, args["fmt"], args["template"], tokenizer, args["system"],
                       args["mask_prompt"], args["max_seq_length"])


def test_mask_covers_exactly_the_completion_tokens(tmp_path, tokenizer):
    rows = sql_rows(WIKISQL / "train.jsonl", 12)
    write_split(tmp_path, "train", rows)
    write_split(tmp_path, "valid", rows[:2])
    splits, fmt, template, mask_prompt = load(tmp_path, tokenizer)
    assert (fmt, template, mask_prompt) == ("completions", "chat", True)
    examples = splits["train"].examples
    batch = make_batch(examples, pad_multiple=8)
    answer_tokens = 0
    for row, (record, ex) in enumerate(zip(rows, examples)):
        # The same ids `harness eval` renders, answer + EOS last.
        ids, prompt_len = encode_example(tokenizer, record["prompt"], record["completion"], "chat")
        assert ex.ids == ids and ex.prompt_len == prompt_len
        trained = batch.targets[row][batch.mask[row] == 1].tolist()
        assert trained == encode_completion(tokenizer, record["completion"])
        assert trained[-1] == tokenizer.eos_token_id
        answer_tokens += len(trained)
    assert batch.ntokens == answer_tokens  # no padding target anywhere
    assert batch.inputs.shape[1] % 8 == 0


def test_text_rows_train_every_real_token(tmp_path, tokenizer):
    texts = [{"text": "alpha beta"}, {"text": "gamma delta epsilon zeta eta theta"}]
    write_split(tmp_path, "train", texts)
    write_split(tmp_path, "valid", texts)
    splits, fmt, template, mask_prompt = load(tmp_path, tokenizer)
    assert (fmt, template, mask_prompt) == ("text", "raw", False)
    ex = splits["train"].examples
    assert all(e.ids[-1] == tokenizer.eos_token_id for e in ex)
    batch = make_batch(ex, pad_multiple=8)
    assert batch.ntokens == sum(len(e.ids) - 1 for e in ex)


def test_single_turn_messages_encode_like_completions(tmp_path, tokenizer):
    chat = [{"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "4"}]}]
    write_split(tmp_path, "train", chat)
    write_split(tmp_path, "valid", chat)
    splits, fmt, _, _ = load(tmp_path, tokenizer)
    ids, prompt_len = encode_example(tokenizer, "2+2?", "4", "chat", "Be terse.")
    assert fmt == "chat"
    assert (splits["train"].examples[0].ids, splits["train"].examples[0].prompt_len) == (ids, prompt_len)


def test_format_checked_on_every_row_not_the_first(tmp_path, tokenizer):
    rows = sql_rows(WIKISQL / "train.jsonl", 5)
    write_split(tmp_path, "train", rows[:3] + [{"text": "stray"}] + rows[3:])
    write_split(tmp_path, "valid", rows[:1])
    with pytest.raises(HarnessError) as exc:
        load(tmp_path, tokenizer)
    assert exc.value.line == 4 and exc.value.path.endswith("train.jsonl")
    assert "`text`" in exc.value.message and "completions" in exc.value.message


def test_format_must_match_between_splits(tmp_path, tokenizer):
    write_split(tmp_path, "train", sql_rows(WIKISQL / "train.jsonl", 3))
    write_split(tmp_path, "valid", [{"text": "a"}])
    with pytest.raises(HarnessError) as exc:
        load(tmp_path, tokenizer)
    assert exc.value.path.endswith("valid.jsonl") and exc.value.line == 1


@pytest.mark.parametrize("row, field", [
    ({"prompt": "p", "completion": 3}, "completion"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}, "messages[0]"),
    # an answer with no prompt before it: the chat template refused the empty history (exit 3)
    ({"messages": [{"role": "assistant", "content": "x"}]}, "messages"),
])
def test_bad_rows_name_file_line_field(tmp_path, tokenizer, row, field):
    write_split(tmp_path, "train", [row])
    write_split(tmp_path, "valid", [row])
    with pytest.raises(HarnessError) as exc:
        load(tmp_path, tokenizer)
    assert exc.value.line == 1 and exc.value.field == field


def test_invalid_json_and_missing_split(tmp_path, tokenizer):
    write_split(tmp_path, "train", ['{"text": "a"}', '{"text": '])
    write_split(tmp_path, "valid", [{"text": "a"}])
    with pytest.raises(HarnessError) as exc:
        load(tmp_path, tokenizer)
    assert exc.value.line == 2 and "invalid JSON" in exc.value.message
    (tmp_path / "valid.jsonl").unlink()
    write_split(tmp_path, "train", [{"text": "a"}])
    with pytest.raises(HarnessError, match="valid.jsonl not found"):
        load(tmp_path, tokenizer)


def test_text_rows_cannot_mask_a_prompt(tmp_path, tokenizer):
    write_split(tmp_path, "train", [{"text": "a"}])
    write_split(tmp_path, "valid", [{"text": "a"}])
    with pytest.raises(HarnessError) as exc:
        load(tmp_path, tokenizer, mask_prompt=True)
    assert exc.value.field == "mask_prompt"


def test_too_long_rows_are_truncated(tmp_path, tokenizer, capsys):
    write_split(tmp_path, "train", [{"text": "word " * 50}, {"text": "short"}])
    write_split(tmp_path, "valid", [{"text": "short"}])
    splits, *_ = load(tmp_path, tokenizer, max_seq_length=16)
    assert max(len(e.ids) for e in splits["train"].examples) == 16
    assert splits["train"].truncated == 1
    assert "1 rows" in capsys.readouterr().err


def wikisql_lengths(tokenizer) -> np.ndarray:
    texts = [json.loads(line)["text"] for line in (WIKISQL / "train.jsonl").read_text().splitlines()]
    return np.array([len(tokenizer.encode(t)) + 1 for t in texts])


def test_bucketing_sorts_so_padding_is_small(tokenizer):
    lengths = wikisql_lengths(tokenizer)
    batches = epoch_order(lengths, 8, seed=0, epoch=0)
    assert len(batches) == len(lengths) // 8 and all(len(b) == 8 for b in batches)
    assert len(set(np.concatenate(batches).tolist())) == len(batches) * 8  # each row at most once
    padded = sum(8 * lengths[b].max() for b in batches)
    real = sum(lengths[b].sum() for b in batches)
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(len(lengths))[: len(batches) * 8].reshape(-1, 8)
    random_padded = sum(8 * lengths[b].max() for b in shuffled)
    assert padded / real < 1.03  # under 3% padding ...
    assert padded - real < 0.1 * (random_padded - real)  # ... and a tenth of unsorted batches'


def test_epoch_order_is_a_function_of_seed_and_epoch(tokenizer):
    lengths = wikisql_lengths(tokenizer)
    a = epoch_order(lengths, 8, seed=3, epoch=1)
    assert all((x == y).all() for x, y in zip(a, epoch_order(lengths, 8, seed=3, epoch=1)))
    assert not all((x == y).all() for x, y in zip(a, epoch_order(lengths, 8, seed=3, epoch=2)))
    # The rows left over change between epochs (not always the longest ones).
    left = [set(range(len(lengths))) - set(np.concatenate(epoch_order(lengths, 7, 3, e)).tolist())
            for e in range(3)]
    assert [len(s) for s in left] == [len(lengths) % 7] * 3
    assert len({frozenset(s) for s in left}) == 3


def test_ranks_split_each_global_batch(tokenizer):
    examples = [Example(ids=list(range(n)), prompt_len=0, line=i) for i, n in enumerate([5, 9, 3, 7, 4, 8, 6, 2])]
    one = TrainStream(examples, 4, seed=0, pad_multiple=1)
    two = [TrainStream(examples, 4, seed=0, pad_multiple=1, rank=r, world=2) for r in range(2)]
    for pos in range(4):
        whole = one.batch(pos)
        parts = [s.batch(pos) for s in two]
        assert sum(p.ntokens for p in parts) == whole.ntokens
        assert sorted(r for p in parts for r in p.inputs[:, 0].tolist()) == sorted(whole.inputs[:, 0].tolist())


def test_validation_set_is_fixed_and_complete():
    examples = [Example(ids=[1] * (n + 2), prompt_len=0, line=n) for n in range(10)]
    assert fixed_subset(examples, -1, 0) == examples
    assert fixed_subset(examples, 4, 7) == fixed_subset(examples, 4, 7)
    batches = eval_batches(examples, 3, pad_multiple=1)
    assert sum(b.ntokens for b in batches) == sum(len(e.ids) - 1 for e in examples)


def test_split_rows_keeps_every_target_once():
    examples = [Example(ids=list(range(1, n + 1)), prompt_len=2, line=i) for i, n in enumerate([30, 31, 29, 9])]
    whole = make_batch(examples, pad_multiple=8)
    pieces = split_rows(whole, 64, pad_multiple=8)
    assert [p.inputs.shape for p in pieces] == [(2, 32), (2, 32)]
    assert sum(p.ntokens for p in pieces) == whole.ntokens
    assert split_rows(whole, None, 8) == [whole] and split_rows(whole, 10_000, 8) == [whole]
    assert [p.inputs.shape[0] for p in split_rows(whole, 1, 8)] == [1, 1, 1, 1]  # one row at least
    assert split_rows(whole, 1, 8)[3].inputs.shape == (1, 8)  # re-padded to its own length


def test_row_the_chat_template_refuses_names_its_line(tmp_path):
    """Templates such as Mistral's raise_exception on roles that do not alternate: a
    [user, user, assistant] row ended train and lint-data in an internal error (TemplateError)."""
    import shutil

    from mlx_lm.utils import load_tokenizer

    from harness.train.lint import lint_data

    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    (model / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate') }}{% endif %}"
        "<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    strict = load_tokenizer(model)
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    bad = {"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "r"},
                        {"role": "assistant", "content": "a"}]}
    data = tmp_path / "data"
    write_split(data, "train", [good, bad])
    write_split(data, "valid", [good])
    with pytest.raises(HarnessError) as exc:
        load(data, strict)
    assert exc.value.line == 2 and "Conversation roles must alternate" in exc.value.message
    found = [p for p in lint_data(data, tokenizer=strict).problems if p.line == 2]
    assert len(found) == 1 and "refused" in found[0].message


@pytest.mark.parametrize("template", ["auto", "raw"])
def test_messages_rows_on_a_model_without_chat_template_are_refused(tmp_path, template):
    """`messages` rows on stories260K (no chat template) with `template: auto` were encoded
    raw, roles dropped, once --allow-lint-errors let the run past its lint error (which says
    they need the chat template); `template: raw` was already refused. Both are now."""
    from mlx_lm.utils import load_tokenizer

    chat = [{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}]
    write_split(tmp_path, "train", chat)
    write_split(tmp_path, "valid", chat)
    with pytest.raises(HarnessError) as exc:
        load(tmp_path, load_tokenizer(ROOT / "fixtures" / "stories260K"), template=template)
    assert exc.value.field == "template" and "chat template" in exc.value.one_line()


def test_rows_with_fields_of_two_formats(tmp_path, tokenizer):
    """Rows carrying prompt + completion and also text (datasets often keep extra columns)
    were refused as matching "no format", even with `format: completions` in the config
    (mlx-lm trains them as completions). The config's format now picks the fields; with
    `auto` the error says the row matches two formats and how to choose."""
    from harness.train.lint import lint_data

    rows = [{"prompt": f"q{i}?", "completion": f"a{i}", "text": f"q{i}? a{i}"} for i in range(4)]
    write_split(tmp_path, "train", rows)
    write_split(tmp_path, "valid", [dict(r, prompt="v" + r["prompt"]) for r in rows])
    with pytest.raises(HarnessError) as exc:
        load(tmp_path, tokenizer)
    assert "text and completions" in exc.value.one_line() and "format:" in exc.value.one_line()
    splits, fmt, _, _ = load(tmp_path, tokenizer, fmt="completions")
    ids, prompt_len = encode_example(tokenizer, "q0?", "a0", "chat")
    assert fmt == "completions" and (splits["train"].examples[0].ids, splits["train"].examples[0].prompt_len) == (
        ids, prompt_len)
    assert not [p for p in lint_data(tmp_path, fmt="completions").problems if "format" in p.message]
    assert [p for p in lint_data(tmp_path).problems if "text and completions" in p.message]


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_split_that_is_not_a_file_is_named_so(tmp_path, tokenizer, split):
    """A folder (or FIFO, device) named train.jsonl was reported as "train.jsonl not found",
    and a test.jsonl that is not a file was skipped without a word."""
    from harness.train.lint import lint_data

    rows = [{"prompt": f"q{i}?", "completion": f"a{i}"} for i in range(2)]
    for name in ("train", "valid"):
        if name != split:
            write_split(tmp_path, name, rows)
    (tmp_path / f"{split}.jsonl").mkdir()
    with pytest.raises(HarnessError, match=f"{split}.jsonl is not a regular file"):
        load(tmp_path, tokenizer)
    assert [p for p in lint_data(tmp_path).problems if "not a regular file" in p.message]


def test_a_utf16_data_file_is_named_utf16(tmp_path, tokenizer):
    """Windows tools save "Unicode" text as UTF-16: the error only said byte 0 was 0xff."""
    rows = "".join(json.dumps({"prompt": f"q{i}?", "completion": f"a{i}"}) + "\n" for i in range(2))
    (tmp_path / "train.jsonl").write_bytes(rows.encode("utf-16"))
    (tmp_path / "valid.jsonl").write_text(rows)
    with pytest.raises(HarnessError, match="UTF-16") as exc:
        load(tmp_path, tokenizer)
    assert exc.value.line == 1 and "save the" in exc.value.one_line()


def test_a_jsonl_file_given_as_the_data_folder(tmp_path, tokenizer):
    """`data: data/train.jsonl` (the file, not its folder) was "data folder not found"."""
    from harness.train.lint import lint_data

    path = write_split(tmp_path, "train", [{"text": "a"}])
    for read in (lambda: load(path, tokenizer), lambda: lint_data(path)):
        with pytest.raises(HarnessError) as exc:
            read()
        assert "is a file, not a folder" in exc.value.one_line() and f"pass its folder ({tmp_path})" in \
            exc.value.one_line()


def test_the_readme_s_row_examples_train_as_it_says_on_a_raw_sentencepiece_model(tmp_path, stories_base):
    """README.md named `format: text | completions | chat` but showed no row: a user bringing
    their own data had to guess the fields. Its three examples must be the three formats, and on
    stories260K (no chat template) a completions row trains on the answer + EOS, raw."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```jsonl\n", 1)[1].split("```", 1)[0]
    rows = [json.loads(line) for line in block.splitlines()]
    from harness.train.data import row_format

    assert [row_format(r) for r in rows] == ["text", "completions", "chat"]
    tok = stories_base.tokenizer
    for i, row in enumerate(rows[:2]):
        folder = tmp_path / str(i)
        for split in ("train", "valid"):
            write_split(folder, split, [row])
        splits, fmt, template, mask_prompt = load_splits(folder, "auto", "auto", tok, None, None, 2048)
        (ex,) = splits["train"].examples
        assert template == "raw" and ex.ids[-1] == tok.eos_token_id
        if fmt == "completions":
            assert mask_prompt and ex.ids[:ex.prompt_len] == list(tok.encode(row["prompt"]))
    folder = tmp_path / "chat"
    for split in ("train", "valid"):
        write_split(folder, split, [rows[2]])
    with pytest.raises(HarnessError, match="need the chat template"):
        load_splits(folder, "auto", "auto", tok, None, None, 2048)


def test_each_split_is_read_once_and_fingerprinted_as_read(tmp_path, tokenizer, monkeypatch):
    """load_splits parsed train.jsonl, then read it again to hash it for adapter_config.json:
    the recorded sha256 could be of another version of the file than the one trained on."""
    import hashlib

    from hostile_util import opens_of

    rows = sql_rows(WIKISQL / "train.jsonl", 4)
    write_split(tmp_path, "train", rows)
    write_split(tmp_path, "valid", rows[:2])
    opened = opens_of(monkeypatch, "train.jsonl", "valid.jsonl")
    splits, *_ = load(tmp_path, tokenizer)
    assert sorted(opened) == ["train.jsonl", "valid.jsonl"]
    assert splits["train"].sha256 == "sha256:" + hashlib.sha256((tmp_path / "train.jsonl").read_bytes()).hexdigest()
