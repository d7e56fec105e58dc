"""``harness fuse``: an adapter merged into a copy of its base (W + scale * (A B)^T).

The base is refused if it is not the one the adapter was trained on (the same check as
``harness eval``); the fused folder is a plain mlx-lm model folder, and the adapter it
came from is recorded in its ``config.json`` under ``fused_adapter``. The folder appears
whole or not at all (written beside it, then renamed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

from ..errors import HarnessError
from ..models import adapter_applied, check_adapter_base, load_base
from ..preflight import read_adapter_config


def fuse(model_path: str, adapter_path: str | Path, out: str | Path,
         allow_base_mismatch: bool = False) -> Path:
    from mlx_lm.utils import save

    from ..preflight import check_out_dir

    out = check_out_dir(out)
    if out.exists() and any(out.iterdir()):
        raise HarnessError("output folder is not empty", path=out, hint="choose a new --out folder")
    base = load_base(model_path)
    if not base.local:
        raise HarnessError("fuse needs a local base folder", path=model_path,
                           hint="download the model and pass its folder")
    # Saved inside the block: leaving it puts the base's own weights back.
    with adapter_applied(base, "fuse", adapter_path, allow_base_mismatch) as adapter_fp:
        # what eval records in results.json: a base that could only be checked by shapes
        for text in check_adapter_base(base, Path(adapter_path), read_adapter_config(Path(adapter_path)),
                                       allow_base_mismatch):
            print(f"harness fuse: warning: {text}", file=sys.stderr)
        fused = [(name, m.fuse()) for name, m in base.model.named_modules() if hasattr(m, "fuse")]
        base.model.update_modules(tree_unflatten(fused))
        bad = [name for name, w in tree_flatten(base.model.parameters())
               if mx.issubdtype(w.dtype, mx.floating) and not bool(mx.all(mx.isfinite(w)).item())]
        if bad:  # never write a NaN model (a finite adapter on a finite base cannot get here)
            raise HarnessError(f"the fused weight {bad[0]} has NaN or infinite values; nothing written",
                               path=adapter_path, hint="check the base and the adapter weights")
        config = dict(base.config)
        config["fused_adapter"] = {"path": str(adapter_path), "fingerprint": adapter_fp,
                                   "base_fingerprint": base.fingerprint}
        _save_whole(out, lambda folder: save(folder, model_path, base.model, base.tokenizer, config,
                                             donate_model=False))
    return out


def _save_whole(out: Path, save_into) -> None:
    """mlx-lm's ``save`` writes file by file; it writes into a temporary folder beside
    ``out`` that is renamed into place, so a kill leaves no folder or the whole one (a
    temporary left by a killed run is removed by the next)."""
    import os
    import shutil
    import tempfile

    from ..atomic import clean_stale

    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out.parent, out.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=out.parent))
    try:
        save_into(tmp)
        os.chmod(tmp, 0o755)
        if out.is_dir():
            out.rmdir()  # empty (checked before anything loaded)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
