"""An adapter on a base with the same shapes but other weights is refused (exit 2) when it
records its base (harness fingerprint, or mlx-lm's `model` resolvable here); a warning says
so when the base cannot be checked."""

from __future__ import annotations

import json
import shutil

import mlx.core as mx
import pytest
from conftest import FIXTURE_MODEL, ROOT, make_random_adapter, run_harness

from harness.errors import HarnessError
from harness.models import check_adapter_base, load_base


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory):
    """fixtures/model with every weight nudged: same shapes, same tokenizer, another model
    (as base vs instruct, or another quantisation, would be)."""
    out = tmp_path_factory.mktemp("other") / "model"
    shutil.copytree(FIXTURE_MODEL, out)
    weights = mx.load(str(out / "model.safetensors"))
    mx.save_safetensors(str(out / "model.safetensors"), {k: v * 1.01 for k, v in weights.items()})
    return out


def mlx_lm_adapter(tmp_path, model_field):
    path = make_random_adapter(FIXTURE_MODEL, tmp_path / "mlx")
    cfg = json.loads((path / "adapter_config.json").read_text())
    if model_field is not None:
        cfg["model"] = model_field
    (path / "adapter_config.json").write_text(json.dumps(cfg))
    return path


def test_mlx_lm_model_field_is_checked(tmp_path, other_weights, fixture_base):
    path = mlx_lm_adapter(tmp_path, str(FIXTURE_MODEL))
    config = json.loads((path / "adapter_config.json").read_text())
    assert check_adapter_base(fixture_base, path, config, False) == []  # its own base: quiet
    other = load_base(str(other_weights))
    with pytest.raises(HarnessError) as exc:
        check_adapter_base(other, path, config, False)
    assert "same shapes, other weights" in str(exc.value) and str(FIXTURE_MODEL) in str(exc.value)
    assert check_adapter_base(other, path, config, True) == []  # --allow-base-mismatch
    unknown = check_adapter_base(fixture_base, path, dict(config, model="someone/not-downloaded"), False)
    assert len(unknown) == 1 and "not here to compare" in unknown[0]
    nothing = check_adapter_base(fixture_base, path, {k: v for k, v in config.items() if k != "model"}, False)
    assert len(nothing) == 1 and "records no base model" in nothing[0]


def test_a_named_base_whose_weights_cannot_be_read_is_a_warning(tmp_path, other_weights, fixture_base,
                                                               monkeypatch):
    """An adapter's `model` may name any folder (an adapter from the hub names its author's):
    one whose weights this user cannot read (another user's, mode 000) raised PermissionError
    out of the check, an internal error (exit 3). It is checked as a base that is not here:
    a warning naming the file, tensor shapes only. (Unreadable is simulated: tests may run
    as root, where chmod 000 denies nothing.)"""
    import harness.models as models

    folder = tmp_path / "named"
    shutil.copytree(other_weights, folder)
    real = models.file_digest

    def digest(path):
        if str(path).startswith(str(folder)):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(models, "file_digest", digest)
    models._digest_at.cache_clear()
    models._folder_weights_fingerprint.cache_clear()
    path = mlx_lm_adapter(tmp_path, str(folder))
    config = json.loads((path / "adapter_config.json").read_text())
    warnings = check_adapter_base(fixture_base, path, config, False)
    assert len(warnings) == 1 and "cannot be read" in warnings[0] and "Permission denied" in warnings[0]
    assert "model.safetensors" in warnings[0]


def test_eval_refuses_before_generating(tmp_path, other_weights):
    out = tmp_path / "out"
    for adapter in (ROOT / "fixtures" / "adapters" / "sql", mlx_lm_adapter(tmp_path, str(FIXTURE_MODEL))):
        done = run_harness("eval", str(ROOT / "suites" / "smoke.yaml"), "--model", str(other_weights),
                           "--adapter", f"a={adapter}", "--out", str(out), "--no-cache")
        assert done.returncode == 2, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("harness: error:") and "other weights" in last
        assert "[base]" not in done.stderr and not out.exists()  # nothing generated or written


def test_adapter_of_another_size_is_not_called_same_shapes(stories_base):
    """A harness adapter (which records its base's fingerprint) on a base of another width
    was refused as "same shapes, other weights": the fingerprint was compared before the
    shapes. The shapes speak first, and the base it was trained on is named."""
    from harness.models import check_adapter_fits

    adapter = ROOT / "fixtures" / "adapters" / "sql"
    with pytest.raises(HarnessError) as exc:
        check_adapter_fits(stories_base, "sql", adapter)
    text = exc.value.one_line()
    assert "same shapes" not in text and "does not fit base" in text
    assert "trained on fixtures/model" in text


def test_a_base_whose_chat_template_alone_changed_is_not_called_other_weights(tmp_path, fixture_base):
    """The harness adapter records its base's whole fingerprint (weights, tokenizer, template):
    an edited chat template alone was refused as "same shapes, other weights"."""
    import shutil

    from harness.models import load_base

    edited = tmp_path / "base"
    shutil.copytree(FIXTURE_MODEL, edited)
    (edited / "chat_template.jinja").write_text((edited / "chat_template.jinja").read_text() + "\n")
    base = load_base(str(edited))
    assert base.weights_fingerprint == fixture_base.weights_fingerprint and base.fingerprint != fixture_base.fingerprint
    adapter = ROOT / "fixtures" / "adapters" / "sql"
    config = json.loads((adapter / "adapter_config.json").read_text())
    with pytest.raises(HarnessError) as exc:
        check_adapter_base(base, adapter, config, False)
    assert "other weights, tokenizer or chat template" in str(exc.value) and base.fingerprint in str(exc.value)
