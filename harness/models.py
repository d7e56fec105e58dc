"""Loading a base model once and its adapters on top, with fingerprints.

Loading is mlx-lm's (``mlx_lm.utils.load``, ``tuner.utils.load_adapters``): the same code
users run on real models. A fingerprint is a content hash of everything that changes what
a model writes (weights, adapter, tokenizer, chat template), so caches and baselines can
tell two models apart without trusting file names.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import HarnessError
from .files import file_digest, refuse_link_to_nothing
from .preflight import WEIGHTS_GLOB  # what mlx-lm's loader reads: preflight checks every entry of it

# What of a model folder is hashed into its fingerprint: every file the loading path may read
# (mlx-lm's ``load``: config.json, generation_config.json, hf_quant_config.json, model*.safetensors;
# transformers' AutoTokenizer: tokenizer.json, tokenizer_config.json, special_tokens_map.json,
# added_tokens.json, chat_template.jinja, additional_chat_templates/*.jinja, and its tokenizer
# class's vocabulary files, which vary: vocab.json, merges.txt, vocab.txt, tokenizer.model,
# spiece.model, tokenizer.model.v3, tekken.json, *.tiktoken...). The folder's top-level files are
# hashed except those known to change nothing, so a tokenizer file of a kind not listed here is
# hashed rather than missed: a swapped vocabulary served the old tokenizer's cached completions
# and passed a baseline "on the same base".
CHAT_TEMPLATE_DIR = "additional_chat_templates"  # transformers reads every *.jinja in it
INERT_PREFIXES = ("readme", "license", "licence", "notice", "copying", "use_policy")  # docs, legal
INERT_SUFFIXES = frozenset((
    # documentation and pictures
    ".md", ".markdown", ".rst", ".pdf", ".html", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp",
    # code that never runs: the model and its tokenizer are loaded without trust_remote_code
    ".py", ".pyc",
    # weights mlx-lm does not load (and would be slow to hash); model*.safetensors: WEIGHTS_GLOB
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".h5", ".msgpack", ".npz", ".npy",
))
# The files recipe 1 hashed (any *.safetensors besides): an adapter records its base's
# fingerprint as the harness that trained it computed it.
RECIPE_1_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
)
ADAPTER_FILES = ("adapters.safetensors", "adapter_config.json")


def _model_file_digest(path: Path) -> str:
    st = path.stat()  # the base and its weights fingerprint hash the same files: once per process
    return _digest_at(str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, st.st_dev)


@functools.lru_cache(maxsize=256)
def _digest_at(path: str, size: int, mtime_ns: int, inode: int, ctime_ns: int, device: int) -> str:
    stamp = (size, mtime_ns, inode, ctime_ns, device)
    if size < MEMO_MIN_BYTES:
        return file_digest(Path(path))
    memo = _DigestMemo.open()
    known = memo.get(path, stamp) if memo else None
    if known:
        return known
    digest = file_digest(Path(path))
    if memo:
        memo.put(path, stamp, digest)
    return digest


MEMO_MIN_BYTES = 1 << 20  # smaller files are hashed: quicker than a lookup
RACY_SECONDS = 2.0  # a file modified this recently may still change within its mtime tick


class _DigestMemo:
    """Weight-file digests remembered across runs, in ``digests.sqlite`` in the harness cache
    folder, keyed by path, size, mtime, ctime, inode and device: an unchanged multi-GB weights
    file is not read again on every run (on a 7B model, gigabytes per start).

    Any change to the file changes its ctime (which no tool can set back), so a rewritten
    file is hashed again. As in git's index, a file modified less than ``RACY_SECONDS``
    before it was hashed is not remembered (it may change again within the same mtime
    tick). Never fatal: a database that cannot be opened, read or written is skipped.
    """

    _instance: "_DigestMemo | None | bool" = False  # False: not opened yet; None: unusable

    def __init__(self, db):
        self.db = db

    @classmethod
    def open(cls) -> "_DigestMemo | None":
        if cls._instance is False:
            cls._instance = None
            try:
                import sqlite3

                from .cache import default_cache_dir

                folder = default_cache_dir()
                folder.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(folder / "digests.sqlite", timeout=2)
                db.execute("CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, stamp TEXT NOT NULL,"
                           " digest TEXT NOT NULL)")
                db.commit()
                cls._instance = cls(db)
            except Exception:  # read-only, corrupt, locked: hash every time
                pass
        return cls._instance or None

    @classmethod
    def reset(cls) -> None:
        """Forget the open database (the cache folder changed: tests)."""
        if cls._instance:
            try:
                cls._instance.db.close()
            except Exception:
                pass
        cls._instance = False
        _digest_at.cache_clear()

    def get(self, path: str, stamp: tuple) -> str | None:
        try:
            row = self.db.execute("SELECT stamp, digest FROM digests WHERE path = ?", (path,)).fetchone()
        except Exception:
            return None
        if row and row[0] == _stamp_text(stamp) and isinstance(row[1], str) and len(row[1]) == 64:
            return row[1]
        return None

    def put(self, path: str, stamp: tuple, digest: str) -> None:
        import os
        import time

        try:
            st = os.stat(path)
            now_stamp = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, st.st_dev)
            if now_stamp != stamp or time.time() - st.st_mtime_ns / 1e9 < RACY_SECONDS:
                return  # changed while hashed, or too recent to trust its stamp
            with self.db:
                self.db.execute("INSERT OR REPLACE INTO digests (path, stamp, digest) VALUES (?, ?, ?)",
                                (path, _stamp_text(stamp), digest))
        except Exception:
            pass


def _stamp_text(stamp: tuple) -> str:
    return ":".join(str(v) for v in stamp)


# How base_fingerprint, weights_fingerprint and adapter_fingerprint are computed; results and
# baselines record it beside the base model's fingerprint, so that a baseline hashed by another
# recipe is refused for that reason, not as "another base model". Raise it whenever unchanged
# model files would hash differently (tests/test_fingerprint_recipe.py pins a fixed folder's hash).
MODEL_FINGERPRINT_RECIPE = 2
# 1: *.safetensors and the eight files of RECIPE_1_FILES. 2: every file that can change the
# outputs (``fingerprinted_files``), weights only those mlx-lm loads; both hash a file by its
# relative path and digest, so a folder holding only files both cover hashes the same.


ENDPOINT_FINGERPRINT_PREFIX = "endpoint:"  # a served model's identity hash, not a file hash (backends/openai.py)


def recorded_fingerprint_recipe(entry: dict) -> int | str | None:
    """The recipe a results.json or baseline ``models`` entry's fingerprint was computed by, so
    that two fingerprints are compared only within one recipe: the recorded one (an integer
    ``MODEL_FINGERPRINT_RECIPE`` for a file hash, an ``endpoint-...`` text for a served
    model's identity, which no file hash can equal); else 1 for a file hash (recorded from
    recipe 2 on); else None for an endpoint identity recorded without one: unknown, since
    its hash holds a local folder's file hash under whichever recipe that harness used."""
    recipe = entry.get("fingerprint_recipe")
    if isinstance(recipe, (int, str)) and not isinstance(recipe, bool):
        return recipe
    fingerprint = entry.get("fingerprint")
    if isinstance(fingerprint, str) and fingerprint.startswith(ENDPOINT_FINGERPRINT_PREFIX):
        return None
    return 1


def _digest_files(files: list[Path], root: Path, extra: str = "") -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        # the name's bytes as on disk: a name that is not UTF-8 (b"\xff.json") holds surrogates
        # that str.encode() refused, an internal error at load; a UTF-8 name hashes as before
        h.update(os.fsencode(f.relative_to(root).as_posix()))
        h.update(b"\0" + _model_file_digest(f).encode() + b"\n")
    h.update(extra.encode())
    return "sha256:" + h.hexdigest()[:32]


def _output_changing(p: Path) -> bool:
    """Whether a top-level entry of a model folder is of a kind the loader may read (not
    documentation, a licence, a hidden file, Python code or weights mlx-lm does not load)."""
    name = p.name.lower()
    return not (name.startswith(".") or name.startswith(INERT_PREFIXES) or p.suffix.lower() in INERT_SUFFIXES)


def _named_templates(path: Path) -> list[Path]:
    templates = path / CHAT_TEMPLATE_DIR
    return sorted(templates.glob("*.jinja")) if templates.is_dir() else []


def weight_files(path: Path) -> list[Path]:
    """The weight files mlx-lm loads from a model folder, regular files only (what is
    fingerprinted; ``check_model_folder`` refuses any other entry of ``WEIGHTS_GLOB``)."""
    return sorted(p for p in path.glob(WEIGHTS_GLOB) if p.is_file())


def fingerprinted_files(path: Path) -> list[Path]:
    """The files of a model folder that can change what it writes: its weights (``weight_files``),
    every other top-level file but documentation, licences, hidden files, Python code and
    weights mlx-lm does not load, and the named chat templates."""
    others = [p for p in path.iterdir() if p.is_file() and _output_changing(p)]
    return weight_files(path) + sorted(others) + [p for p in _named_templates(path) if p.is_file()]


def check_loader_files(path: Path) -> None:
    """Refuse an entry of a model folder the loader may read (of ``fingerprinted_files``' kind)
    that is neither a regular file nor a folder, before anything reads it: mlx-lm opened a
    FIFO named tokenizer.json and blocked forever (in `harness eval` and `lint-data --model`);
    transformers took a link to /dev/zero named tokenizer_config.json for a missing file and
    loaded another tokenizer than the folder shows, which the fingerprint (regular files
    only) did not see either. A link to nothing (a download cut short, a loop) alike."""
    hint = ("the loader would block on it or take it for missing: put the file itself there, or remove it "
            "if the model does not use it")
    entries = [p for p in path.iterdir() if _output_changing(p)] + _named_templates(path)
    for p in sorted(entries):
        if p.is_file() or p.is_dir():
            continue
        refuse_link_to_nothing(p, "model file", hint)
        raise HarnessError("model file is not a regular file (a FIFO, socket or device)", path=p, hint=hint)


def base_fingerprint(path: Path, chat_template: str | None = None) -> str:
    """Hash of what a base model writes with: ``fingerprinted_files`` and the chat template the
    tokenizer loaded. A folder with no file that recipe 2 added (vocab.json...) or dropped
    (weights other than model*.safetensors) hashes as under recipe 1: its caches, baselines
    and adapters stay valid."""
    return _digest_files(fingerprinted_files(path), path, extra=chat_template or "")


def base_fingerprint_recipe_1(path: Path, chat_template: str | None = None) -> str:
    """``base_fingerprint`` as recipe 1 computed it: an adapter trained by an older harness
    records this one."""
    files = [p for p in path.iterdir() if p.is_file() and (p.suffix == ".safetensors" or p.name in RECIPE_1_FILES)]
    return _digest_files(files, path, extra=chat_template or "")


def weights_fingerprint(path: Path) -> str:
    """Hash of the weights alone (a baseline may pin these apart from the tokenizer)."""
    return _digest_files(weight_files(path), path)


def adapter_fingerprint(path: Path) -> str:
    files = [path / n for n in ADAPTER_FILES if (path / n).exists()]
    return _digest_files(files, path)


@dataclass
class Base:
    """A loaded base model: the mlx-lm module, its tokenizer wrapper and identity."""

    path: str
    model: Any
    tokenizer: Any
    config: dict
    fingerprint: str
    weights_fingerprint: str
    local: bool = True
    active_adapter: str | None = field(default=None)
    folder: str | None = None  # where it was loaded from (a hub id's snapshot folder)

    def recipe_1_fingerprint(self) -> str | None:
        """Its fingerprint as recipe 1 computed it, which an adapter trained by an older
        harness records (computed only when asked: recipe 1 hashed any *.safetensors)."""
        if self.folder is None:
            return None
        template = getattr(self.tokenizer, "chat_template", None)
        return base_fingerprint_recipe_1(Path(self.folder), template if isinstance(template, str) else None)


def check_ids_fit(base: Base, token_ids: "Iterator[tuple[str, list[int]]]", path: str | Path | None = None) -> None:
    """Refuse token ids the model's embedding has no row for (``token_ids``: where each came
    from, and its ids). MLX does not bounds-check a gather: such an id reads memory outside
    the weights (garbage outputs, or a segfault), so a tokenizer that does not match its
    model must stop eval, check-generator and training alike, not colour their results."""
    config = getattr(base, "config", None) or {}
    vocab = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    if not isinstance(vocab, int) or vocab <= 0:
        return
    for where, ids in token_ids:
        if ids and max(ids) >= vocab:
            raise HarnessError(f"{where} token id {max(ids)}, but the model's vocab_size is {vocab}",
                               path=path if path is not None else base.path,
                               hint="the tokenizer does not match the model's weights: use the tokenizer "
                                    "saved with them (or fix config.json's vocab_size)")


def load_base(path_or_repo: str) -> Base:
    """Load a base model once per run. A path that is not a folder is a hub id, taken from
    the local Hugging Face cache only (nothing is downloaded at run time)."""
    from mlx_lm.utils import load

    from .preflight import check_chat_template, check_model_folder

    local = Path(path_or_repo).expanduser()
    if not local.exists() and (path_or_repo.startswith((".", "/", "~")) or path_or_repo.count("/") != 1):
        raise HarnessError("model folder not found", path=path_or_repo,
                           hint="pass --model with a local mlx-lm model folder or a hub id")
    if local.exists():
        root = local
    else:  # a hub id: only from the local Hugging Face cache; the harness never downloads
        try:
            root = Path(_resolved_hub_path(path_or_repo))
        except Exception:  # not cached (LocalEntryNotFoundError), or not a valid repo id
            raise HarnessError("model folder not found, and not in the local Hugging Face cache", path=path_or_repo,
                               hint=f"the harness never downloads: `huggingface-cli download {path_or_repo}` "
                                    "first, or pass the model's folder") from None
    check_model_folder(root)  # config.json and weight headers, before mlx-lm reads them
    check_loader_files(root)  # no FIFO or device where a tokenizer file would be
    try:
        # lazy: the weights are read when the model first computes, so a re-run served
        # wholly from the cache (completions and model-computed scores) never reads them;
        # check_model_folder has already checked every weight file's header against its size.
        model, tokenizer, config = load(str(root), return_config=True, lazy=True)
    except Exception as exc:  # the folder's content is at fault, not the harness
        first = (str(exc).splitlines() or [""])[0][:300]
        raise HarnessError(f"cannot load model: {type(exc).__name__}: {first}", path=path_or_repo,
                           hint="the model folder is incomplete or corrupt") from None
    template = getattr(tokenizer, "chat_template", None)
    check_chat_template(root, template)
    try:
        fingerprint = base_fingerprint(root, template if isinstance(template, str) else None)
        weights = weights_fingerprint(root)
    except OSError as exc:  # a file of the folder that cannot be read cannot be told apart
        raise HarnessError(f"cannot read a model file to fingerprint it: {exc.strerror or exc}",
                           path=exc.filename or root,
                           hint="make it readable, or move it out of the model folder if the model does not use it"
                           ) from None
    return Base(
        path=str(path_or_repo),
        model=model,
        tokenizer=tokenizer,
        config=config,
        fingerprint=fingerprint,
        weights_fingerprint=weights,
        local=local.exists(),
        folder=str(root),
    )


def _resolved_hub_path(repo: str) -> str:
    from mlx_lm.utils import hf_repo_to_path

    return str(hf_repo_to_path(repo))


def _recorded_base_folder(name: str) -> Path | None:
    """The local folder of a base an adapter names (a path, or a hub id already in the
    local cache), or None. Nothing is downloaded."""
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            found = Path(snapshot_download(name, local_files_only=True))
            return found if found.is_dir() else None
        except Exception:  # not in the local cache (or no hub library): unresolved
            return None
    return None


@functools.lru_cache(maxsize=16)
def _folder_weights_fingerprint(folder: str, mtime: float) -> str:
    return weights_fingerprint(Path(folder))


def check_adapter_base(base: Base, adapter_path: Path, config: dict, allow_mismatch: bool) -> list[str]:
    """Refuse an adapter trained on a base with other weights (same shapes or not), naming
    both; returns warnings where the base cannot be checked.

    ``harness train`` records ``base_fingerprint``: it must match. mlx-lm's adapters record
    the ``model`` they were trained from: when that folder (or hub id in the local cache)
    is here, its weights' fingerprint must match; otherwise, or when nothing is recorded,
    a warning says the base was checked by tensor shapes only.
    """
    def refuse(trained_on: str, recorded: str, what: str = "other weights", ours: str = "") -> None:
        if allow_mismatch:
            return
        raise HarnessError(
            f"adapter was trained on {trained_on} ({recorded}), not on {base.path} "
            f"({ours or base.weights_fingerprint}): same shapes, {what}{_quantization_note(base, config)}",
            path=adapter_path,
            hint="evaluate it on its own base, or pass --allow-base-mismatch if the bases are compatible",
        )

    recorded = config.get("base_fingerprint")
    if recorded:
        if recorded in (base.fingerprint, base.weights_fingerprint):
            return []
        if recorded == base.recipe_1_fingerprint():  # trained by a harness before recipe 2
            return [f"adapter {adapter_path} records its base's fingerprint as mlx-harness recipe 1 computed it: "
                    f"{base.path} matches under that recipe, which did not hash every tokenizer file "
                    f"(vocab.json, merges.txt, added_tokens.json...), so those were not compared"]
        # harness train records the base's whole fingerprint: an edited chat template or
        # tokenizer file alone was refused as "other weights", which sent users to the weights
        refuse(config.get("base_model") or config.get("model") or "an unnamed base", recorded,
               "other weights, tokenizer or chat template (the adapter's base_fingerprint covers all three)",
               base.fingerprint)
        return []
    name = config.get("model") or config.get("base_model")
    if not isinstance(name, str) or not name:
        return [f"adapter {adapter_path} records no base model (no base_fingerprint, no `model`): "
                f"only its tensor shapes were checked against {base.path}"]
    folder = _recorded_base_folder(name)
    if folder is None:
        same_name = name == base.path or Path(name).name == Path(base.path).name
        if same_name:
            return []
        return [f"adapter {adapter_path} was trained on {name!r}, which is not here to compare "
                f"with {base.path}: only tensor shapes were checked (names differ)"]
    weights = weight_files(folder)
    if not weights:
        return [f"adapter {adapter_path} names base {name!r}, whose folder has no weights: "
                f"only tensor shapes were checked"]
    try:
        fingerprint = _folder_weights_fingerprint(str(folder.resolve()), max(w.stat().st_mtime for w in weights))
    except OSError as exc:  # another user's folder, a file gone since: as if it were not here
        return [f"adapter {adapter_path} names base {name!r}, whose weights cannot be read "
                f"({exc.filename or folder}: {exc.strerror or exc}): only tensor shapes were checked"]
    if fingerprint != base.weights_fingerprint:
        refuse(f"{name} (mlx-lm `model`)", fingerprint)
    return []


def _quantization(config: dict) -> str:
    q = config.get("quantization") or config.get("quantization_config")
    if not isinstance(q, dict):
        return "not quantized"
    bits = q.get("bits")
    return f"{bits}-bit quantized" if isinstance(bits, int) else "quantized"


def _quantization_note(base: Base, adapter_config: dict) -> str:
    """Where the adapter's recorded base is here and only one of the two is quantized (an
    adapter trained on the float model, put on its 4-bit copy, or the other way round): say
    so, since "other weights, tokenizer or chat template" sends the user to the tokenizer."""
    name = adapter_config.get("base_model") or adapter_config.get("model")
    folder = _recorded_base_folder(name) if isinstance(name, str) and name else None
    try:
        theirs = json.loads((folder / "config.json").read_text()) if folder is not None else None
    except (OSError, ValueError):
        return ""
    if not isinstance(theirs, dict):
        return ""
    ours, recorded = _quantization(base.config or {}), _quantization(theirs)
    if ours == recorded:
        return ""
    if ours == "not quantized":
        return (f"; {base.path} is {ours}, the adapter's base {recorded}: an adapter trained on quantized "
                f"weights (QLoRA) belongs to them")
    return (f"; {base.path} is {ours}, the adapter's base {recorded}: to ship on {base.path}, train the adapter "
            f"on it (QLoRA trains on the quantized weights)")


@contextmanager
def adapter_applied(base: Base, name: str, adapter_path: str | Path,
                    allow_base_mismatch: bool = False) -> Iterator[str]:
    """Put an adapter on the loaded base for the block; yields the adapter's fingerprint.

    The base's own weights are shared, never copied, and the LoRA layers are removed
    afterwards, so the next adapter starts from the same base.
    """
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import load_adapters

    from .preflight import check_adapter

    path = Path(adapter_path)
    config = check_adapter(path, base.config, base.path)
    own_weights = tree_flatten(base.model.parameters())  # references: MLX arrays are immutable
    # Hashed before and after loading: the fingerprint keys the completion cache, and a folder
    # rewritten in between (a training run saving into it) stored the old weights' outputs
    # under the new weights' fingerprint, served to every later run of the new adapter.
    loaded_fingerprint = adapter_fingerprint(path)
    # Shapes first (mlx-lm's load checks them), then the recorded base: so a refusal by
    # fingerprint can say "same shapes", and one by shape names the base it was made for.
    try:
        load_adapters(base.model, str(path))
    except (ValueError, KeyError, TypeError) as exc:
        remove_adapter(base.model, own_weights)
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        first = lines[1] if len(lines) > 1 and lines[0].endswith(":") else (lines or [type(exc).__name__])[0]
        made_for = config.get("base_model") or config.get("model")
        made_for = f" (it was trained on {made_for})" if isinstance(made_for, str) and made_for else ""
        raise HarnessError(f"adapter does not fit base {base.path}{made_for}: {first[:300]}", path=path,
                           hint="train the adapter on this base, or pass its own base with --model") from None
    try:
        check_adapter_base(base, path, config, allow_base_mismatch)
    except BaseException:
        remove_adapter(base.model, own_weights)
        raise
    import mlx.core as mx

    mx.eval(base.model.parameters())  # read the adapter's weights now (mx.load is lazy), then hash again
    if adapter_fingerprint(path) != loaded_fingerprint:
        remove_adapter(base.model, own_weights)
        raise HarnessError("adapter folder changed while it was being loaded", path=path,
                           hint="is a training run saving into it? evaluate it when the run has finished "
                                "(or a copy of the folder)")
    base.model.eval()
    base.active_adapter = name
    try:
        yield loaded_fingerprint
    finally:
        remove_adapter(base.model, own_weights)
        base.active_adapter = None


def remove_adapter(model: Any, own_weights: list) -> None:
    """Take any adapter ``load_adapters`` put on ``model`` off again: unwrap every LoRA and
    DoRA layer (mlx-lm's ``remove_lora_layers`` unwraps ``LoRALinear`` only), then put back
    the base's own weights (a ``full`` adapter overwrites them in place). Without this a
    DoRA or full adapter stayed on, and the base and every later adapter ran on it."""
    from mlx.utils import tree_unflatten
    from mlx_lm.tuner.dora import DoRAEmbedding, DoRALinear
    from mlx_lm.tuner.lora import LoRAEmbedding, LoRALinear, LoRASwitchLinear

    wrapped = [(name, m.embedding if isinstance(m, (LoRAEmbedding, DoRAEmbedding)) else m.linear)
               for name, m in model.named_modules()
               if isinstance(m, (LoRALinear, LoRASwitchLinear, DoRALinear, LoRAEmbedding, DoRAEmbedding))]
    if wrapped:
        model.update_modules(tree_unflatten(wrapped))
    model.update(tree_unflatten(own_weights))


def check_adapter_fits(base: Base, name: str, adapter_path: str | Path,
                       allow_base_mismatch: bool = False) -> None:
    """Put an adapter on the base and take it off again, generating nothing: an adapter
    of another base size (harness or mlx-lm) is refused before any model generates."""
    with adapter_applied(base, name, adapter_path, allow_base_mismatch):
        pass
