"""The base model's fingerprint covers every file of its folder that can change what it writes
(weights, config, every tokenizer file, chat templates) and none that cannot (README, licence,
.git, code never run, weights mlx-lm does not load): a swapped tokenizer file kept the old
fingerprint, so the completion cache served the old tokenizer's outputs and a baseline
comparison said "same base"."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURE_MODEL, ROOT

from harness.errors import HarnessError
from harness.models import base_fingerprint, base_fingerprint_recipe_1, check_adapter_base, load_base
from harness.runner import run_eval

# Files mlx-lm's load or transformers' AutoTokenizer read (the vocabulary files depend on the
# tokenizer class), which recipe 1 did not hash.
NEWLY_COVERED = ["vocab.json", "merges.txt", "vocab.txt", "added_tokens.json", "tokenizer.model.v3",
                 "spiece.model", "tekken.json", "qwen.tiktoken", "hf_quant_config.json",
                 "tokenizer.4.45.json", "additional_chat_templates/tool_use.jinja"]
ALREADY_COVERED = ["config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                   "generation_config.json", "special_tokens_map.json", "tokenizer.model", "chat_template.json",
                   "model.safetensors"]
INERT = ["README.md", "LICENSE", "LICENSE.txt", "NOTICE", "USE_POLICY.md", ".gitattributes", ".git/HEAD",
         ".cache/huggingface/download/config.json.metadata", "convert.py", "consolidated.safetensors",
         "pytorch_model.bin", "original/tokenizer.model", "figure.png"]


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(FIXTURE_MODEL, folder)
    return folder


def _write(folder: Path, name: str, data: bytes) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("name", NEWLY_COVERED + ALREADY_COVERED)
def test_adding_or_changing_a_file_the_loader_reads_changes_the_fingerprint(tmp_path, name):
    folder = _copy(tmp_path)
    before = base_fingerprint(folder)
    original = (folder / name).read_bytes() if (folder / name).exists() else None
    _write(folder, name, b'{"a": 1}')
    changed = base_fingerprint(folder)
    _write(folder, name, b'{"a": 2}')
    assert len({before, changed, base_fingerprint(folder)}) == 3, name
    if original is not None:  # written back as it was: the fingerprint is the folder's content
        _write(folder, name, original)
        assert base_fingerprint(folder) == before


@pytest.mark.parametrize("name", INERT)
def test_a_file_that_changes_no_output_leaves_the_fingerprint(tmp_path, name):
    folder = _copy(tmp_path)
    before = base_fingerprint(folder)
    _write(folder, name, b"anything")
    assert base_fingerprint(folder) == before
    _write(folder, name, b"anything else")
    assert base_fingerprint(folder) == before


def test_the_cache_serves_no_completion_across_a_tokenizer_change(tmp_path):
    """added_tokens.json is read by AutoTokenizer (it adds a token: 1537 entries, not 1536)
    and leaves the prompts' token ids as they were, so the cache key's prompt part is the
    same: only the fingerprint can tell the two tokenizers apart."""
    folder = _copy(tmp_path)
    suite = ROOT / "suites" / "smoke.yaml"
    cache = str(tmp_path / "cache")
    first = run_eval([suite], str(folder), [], cache_dir=cache)
    again = run_eval([suite], str(folder), [], cache_dir=cache)
    assert all(i["cached"] for i in again["suites"][0]["models"]["base"]["items"])  # the cache works here

    (folder / "added_tokens.json").write_text(json.dumps({"<|tool|>": 1536}), encoding="utf-8")
    swapped = run_eval([suite], str(folder), [], cache_dir=cache)
    items = swapped["suites"][0]["models"]["base"]["items"]
    assert items and not any(i["cached"] for i in items)
    assert swapped["models"]["base"]["fingerprint"] != first["models"]["base"]["fingerprint"]
    assert swapped["models"]["base"]["weights_fingerprint"] == first["models"]["base"]["weights_fingerprint"]


def test_a_named_chat_template_changes_the_fingerprint_through_load_base(tmp_path, fixture_base):
    """additional_chat_templates/*.jinja turns the tokenizer's chat_template into a dict,
    which the template part of the hash skips: the file itself must be hashed."""
    folder = _copy(tmp_path)
    _write(folder, "additional_chat_templates/tool_use.jinja", b"{{ tools }}")
    first = load_base(str(folder))
    assert isinstance(first.tokenizer.chat_template, dict)
    _write(folder, "additional_chat_templates/tool_use.jinja", b"{{ tools | tojson }}")
    assert load_base(str(folder)).fingerprint != first.fingerprint != fixture_base.fingerprint


def test_an_adapter_trained_under_recipe_1_is_not_refused_on_its_base(tmp_path):
    """An adapter records its base's fingerprint as the harness that trained it computed it:
    recipe 1's, on a base with vocab.json, differs from recipe 2's. It must not be refused as
    "other weights, tokenizer or chat template"; a warning says what was not compared."""
    folder = _copy(tmp_path)
    _write(folder, "vocab.json", b'{"a": 0}')
    base = load_base(str(folder))
    template = base.tokenizer.chat_template
    old = base_fingerprint_recipe_1(folder, template)
    assert old != base.fingerprint
    adapter = ROOT / "fixtures" / "adapters" / "sql"
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8")) | {"base_fingerprint": old}
    warnings = check_adapter_base(base, adapter, config, False)
    assert len(warnings) == 1 and "recipe 1" in warnings[0] and "vocab.json" in warnings[0]

    _write(folder, "tokenizer_config.json", (FIXTURE_MODEL / "tokenizer_config.json").read_bytes() + b"\n")
    edited = load_base(str(folder))  # a tokenizer file recipe 1 covered changed: still refused
    with pytest.raises(HarnessError, match="other weights, tokenizer or chat template"):
        check_adapter_base(edited, adapter, config, False)


def test_an_unreadable_model_file_is_one_clear_error(tmp_path, monkeypatch):
    folder = _copy(tmp_path)
    _write(folder, "vocab.json", b"{}")
    import harness.models as models

    real = models.file_digest

    def digest(path):
        if Path(path).name == "vocab.json":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(models, "file_digest", digest)
    models._digest_at.cache_clear()
    with pytest.raises(HarnessError) as err:
        load_base(str(folder))
    assert "vocab.json" in str(err.value) and "Permission denied" in str(err.value)


def test_a_file_name_that_is_not_utf8_is_hashed_by_its_bytes(tmp_path):
    """A file named b"extra\\xff.json" in the model folder (a name written by another
    system's encoding): its str holds a surrogate, str.encode() refused it, and every
    `harness eval` on the folder died with an internal error (exit 3). It is hashed by the
    name's bytes, so it changes the fingerprint like any other tokenizer-side file."""
    import os

    folder = _copy(tmp_path)
    before = base_fingerprint(folder)
    _write(folder, os.fsdecode(b"extra\xff.json"), b'{"a": 1}')
    assert base_fingerprint(folder) != before


def test_a_fifo_in_a_listed_files_place_is_refused_not_read_forever(tmp_path):
    """The listing keeps regular files only, but a FIFO put where a listed file was (between
    the listing and the hashing) was opened and read: the run blocked forever on it. The
    open descriptor is checked, so it is one error naming the file. The FIFO is put there
    after the listing (check_loader_files, before loading, would refuse one already there,
    and did, with the same words: the test passed with file_digest's check removed). Run in
    a child process with a time limit, so a regression fails the test instead of hanging."""
    import os
    import subprocess
    import sys

    folder = _copy(tmp_path)
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "import harness.models as models\n"
        "from harness.errors import HarnessError\n"
        "listed = models.fingerprinted_files\n"
        "def swapped(path):\n"
        "    files = listed(path)\n"
        "    (path / 'tokenizer.json').unlink()\n"
        "    os.mkfifo(path / 'tokenizer.json')\n"
        "    return files\n"
        "models.fingerprinted_files = swapped\n"
        "try:\n"
        "    models.load_base(sys.argv[1])\n"
        "except HarnessError as exc:\n"
        "    print(exc.one_line())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), HARNESS_CACHE_DIR=str(tmp_path / "cache"))
    try:
        done = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True,
                              text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("hashing a FIFO blocked for 120 s")
    assert "cannot read a model file to fingerprint it" in done.stdout, done.stdout + done.stderr
    assert "tokenizer.json" in done.stdout and "not a regular file" in done.stdout, done.stdout + done.stderr
