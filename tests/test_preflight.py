"""`--model` folders are checked for the weights mlx-lm's loader reads (``model*.safetensors``).

Any ``*.safetensors`` passed preflight: a folder holding only ``weights.safetensors``, or an
adapter folder passed as ``--model`` (a common mistake), then failed inside mlx-lm with an
error that named neither the folder nor the fix.
"""

from __future__ import annotations

import shutil

import pytest

from conftest import FIXTURE_MODEL, ROOT, run_harness
from harness.errors import HarnessError
from harness.preflight import check_model_folder

SQL_ADAPTER = ROOT / "fixtures" / "adapters" / "sql"


def test_weights_mlx_lm_does_not_read_are_refused_naming_the_folder(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(FIXTURE_MODEL, folder)
    (weights,) = folder.glob("model*.safetensors")
    weights.rename(folder / "weights.safetensors")
    with pytest.raises(HarnessError) as err:
        check_model_folder(folder)
    text = str(err.value)
    assert "no model*.safetensors weights" in text and "weights.safetensors is not read" in text
    assert str(folder) in text and "--model" in text
    proc = run_harness("eval", "suites/smoke.yaml", "--model", str(folder), "--no-cache",
                       "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no model*.safetensors weights" in proc.stderr and str(folder) in proc.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_an_adapter_folder_passed_as_the_model_says_so(tmp_path):
    proc = run_harness("eval", "suites/smoke.yaml", "--model", str(SQL_ADAPTER), "--no-cache",
                       "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "this is an adapter folder, not a model folder" in proc.stderr
    assert f"--adapter NAME={SQL_ADAPTER}" in proc.stderr and "--model" in proc.stderr
    assert proc.stderr.count("\n") <= 3, proc.stderr  # one clear error, not a traceback


def test_an_adapter_folder_with_a_config_json_is_still_an_adapter_folder(tmp_path):
    """A full fine-tune's adapter folder may carry the base's config.json beside its adapter
    files; with no model*.safetensors it is not loadable as a model either."""
    folder = tmp_path / "a"
    shutil.copytree(SQL_ADAPTER, folder)
    shutil.copy(FIXTURE_MODEL / "config.json", folder)
    with pytest.raises(HarnessError, match="this is an adapter folder") as err:
        check_model_folder(folder)
    assert (err.value.path, err.value.field) == (str(folder), "--model")


def test_a_model_folder_still_passes():
    assert check_model_folder(FIXTURE_MODEL)["model_type"]


@pytest.mark.parametrize("name", ["model.safetensors", "model-00002-of-00002.safetensors"])
def test_a_fifo_named_like_a_weight_file_is_named_as_one(tmp_path, name):
    """mlx-lm's glob loads it. As the only weights it was "no model*.safetensors weights in
    the model folder" (weight_files keeps regular files) beside a visible model.safetensors;
    beside other weights the hint said the file was truncated or corrupt. It is a FIFO: the
    error says so, and what to do."""
    import os

    folder = tmp_path / "m"
    shutil.copytree(FIXTURE_MODEL, folder)
    (folder / name).unlink(missing_ok=True)
    os.mkfifo(folder / name)
    with pytest.raises(HarnessError) as err:
        check_model_folder(folder)
    assert err.value.path == str(folder / name), err.value.one_line()
    assert "not a regular file (a FIFO, socket or device)" in err.value.one_line()
    assert "put the weight file itself there" in err.value.one_line() and "truncated" not in err.value.one_line()
