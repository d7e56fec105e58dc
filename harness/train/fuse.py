"""``harness fuse``: an adapter merged into a copy of its base (W + scale * (A B)^T).

The base is refused if it is not the one the adapter was trained on (the same check as
``harness eval``); the fused folder is a plain mlx-lm model folder, and the adapter it
came from is recorded in its ``config.json`` under ``fused_adapter``.
"""

from __future__ import annotations

from pathlib import Path

from mlx.utils import tree_unflatten

from ..errors import HarnessError
from ..models import adapter_applied, load_base


def fuse(model_path: str, adapter_path: str | Path, out: str | Path,
         allow_base_mismatch: bool = False) -> Path:
    from mlx_lm.utils import save

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise HarnessError("output folder is not empty", path=out, hint="choose a new --out folder")
    base = load_base(model_path)
    if not base.local:
        raise HarnessError("fuse needs a local base folder", path=model_path,
                           hint="download the model and pass its folder")
    with adapter_applied(base, "fuse", adapter_path, allow_base_mismatch) as adapter_fp:
        fused = [(name, m.fuse()) for name, m in base.model.named_modules() if hasattr(m, "fuse")]
        base.model.update_modules(tree_unflatten(fused))
    config = dict(base.config)
    config["fused_adapter"] = {"path": str(adapter_path), "fingerprint": adapter_fp,
                               "base_fingerprint": base.fingerprint}
    save(out, model_path, base.model, base.tokenizer, config, donate_model=False)
    return out
