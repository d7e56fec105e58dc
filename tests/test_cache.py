"""The completion cache: re-runs are served from it, --no-cache bypasses it, and an
adapter never shares an entry with the base."""

from __future__ import annotations

from harness.cache import CompletionCache, completion_key
from harness.generation import Completion
from harness.runner import ModelSpec, run_eval
from conftest import FIXTURE_MODEL, ROOT, make_random_adapter

SMOKE = ROOT / "suites" / "smoke.yaml"


def outputs(results, model="base"):
    return [(i["output"], i["cached"]) for i in results["suites"][0]["models"][model]["items"]]


def test_rerun_is_served_from_cache(cache_dir):
    first = run_eval([SMOKE], str(FIXTURE_MODEL), [], cache_dir=str(cache_dir))
    second = run_eval([SMOKE], str(FIXTURE_MODEL), [], cache_dir=str(cache_dir))
    assert not any(c for _, c in outputs(first)) and all(c for _, c in outputs(second))
    assert [o for o, _ in outputs(first)] == [o for o, _ in outputs(second)]
    assert len(CompletionCache(cache_dir)) == len(first["suites"][0]["models"]["base"]["items"])


def test_no_cache_generates_everything(cache_dir):
    run_eval([SMOKE], str(FIXTURE_MODEL), [], cache_dir=str(cache_dir))
    again = run_eval([SMOKE], str(FIXTURE_MODEL), [], use_cache=False, cache_dir=str(cache_dir))
    assert not any(c for _, c in outputs(again))


def test_adapter_never_shares_entries_with_base(tmp_path, cache_dir):
    adapter = make_random_adapter(FIXTURE_MODEL, tmp_path / "adapter")
    results = run_eval([SMOKE], str(FIXTURE_MODEL), [ModelSpec("a", adapter)], cache_dir=str(cache_dir))
    base_out, adapter_out = outputs(results), outputs(results, "a")
    assert not any(c for _, c in adapter_out)  # base entries were written first, yet not reused
    assert [o for o, _ in base_out] != [o for o, _ in adapter_out]
    assert len(CompletionCache(cache_dir)) == 2 * len(base_out)
    fps = results["models"]
    assert fps["a"]["fingerprint"] != fps["base"]["fingerprint"]


def test_key_depends_on_every_part():
    versions = {"mlx": "1", "mlx-lm": "1"}
    ref = completion_key("m", None, [1, 2], {"max_tokens": 8}, versions)
    assert ref == completion_key("m", None, [1, 2], {"max_tokens": 8}, versions)
    assert ref != completion_key("m2", None, [1, 2], {"max_tokens": 8}, versions)
    assert ref != completion_key("m", "a", [1, 2], {"max_tokens": 8}, versions)
    assert ref != completion_key("m", None, [1, 3], {"max_tokens": 8}, versions)
    assert ref != completion_key("m", None, [1, 2], {"max_tokens": 9}, versions)
    assert ref != completion_key("m", None, [1, 2], {"max_tokens": 8}, {"mlx": "2", "mlx-lm": "1"})


def test_entries_written_before_an_engine_fix_are_not_served(cache_dir):
    """Base completions stored while a DoRA/full adapter was wrongly still on the base (before
    ENGINE_EPOCH 2) sit under the base's key of that time; the key of today differs."""
    from importlib.metadata import version

    from harness import cache as cache_mod

    cache = CompletionCache(cache_dir)
    assert cache.versions["harness-engine"] == cache_mod.ENGINE_EPOCH >= 2
    then = {"mlx": version("mlx"), "mlx-lm": version("mlx-lm")}  # the key's versions before epochs
    old_key = completion_key("base-fp", None, [1, 2], {"max_tokens": 8}, then)
    cache.put_many({old_key: Completion(output="the full adapter's answer", finish_reason="stop",
                                        prompt_tokens=2, output_tokens=4)})
    now_key = completion_key("base-fp", None, [1, 2], {"max_tokens": 8}, cache.versions)
    assert cache.get_many([old_key])[old_key].output == "the full adapter's answer"
    assert now_key != old_key and cache.get_many([now_key]) == {}


def test_prompt_format_mismatch_is_warned(cache_dir):
    adapter = ROOT / "fixtures" / "adapters" / "domain"  # trained with the chat template
    results = run_eval([ROOT / "suites" / "sql.yaml"], str(FIXTURE_MODEL), [ModelSpec("domain", adapter)],
                       limit=2, cache_dir=str(cache_dir))
    warnings = results["suites"][0]["warnings"]
    assert any("trained with the 'chat' prompt format" in w and "'raw'" in w for w in warnings), warnings


def test_an_adapter_rewritten_while_it_loads_is_refused_not_cached_under_the_new_hash(fixture_base, tmp_path,
                                                                                     monkeypatch):
    """The adapter's fingerprint keys its completions. It was hashed after loading: a training
    run that saved into the folder in between got the old weights' outputs stored under the
    new weights' fingerprint, and every later run of the new adapter was served them."""
    import shutil

    import mlx_lm.tuner.utils as tuner_utils
    import pytest

    from harness.errors import HarnessError
    from harness.models import adapter_applied, adapter_fingerprint

    folder = tmp_path / "v2"
    shutil.copytree(ROOT / "fixtures" / "adapters" / "sql", folder)
    real_load = tuner_utils.load_adapters

    def load_then_retrain(model, path):  # the weights loaded are sql's; then the folder is rewritten
        loaded = real_load(model, path)
        shutil.copy(ROOT / "fixtures" / "adapters" / "regress" / "adapters.safetensors", folder)
        return loaded

    monkeypatch.setattr(tuner_utils, "load_adapters", load_then_retrain)
    with pytest.raises(HarnessError, match="changed while it was being loaded"):
        with adapter_applied(fixture_base, "v2", folder, allow_base_mismatch=True):
            pass
    monkeypatch.setattr(tuner_utils, "load_adapters", real_load)
    with adapter_applied(fixture_base, "v2", folder, allow_base_mismatch=True) as fingerprint:  # settled: fine
        assert fingerprint == adapter_fingerprint(folder)
    assert fixture_base.active_adapter is None  # the refused load left the base as it was


def test_the_adapter_weights_in_use_are_the_ones_hashed(fixture_base, tmp_path, monkeypatch):
    """mx.load is lazy: an adapter file overwritten in place after its fingerprint was taken
    (cp over it) was read at the first generation, so the completions cached under the old
    fingerprint came from the new bytes. The weights are read before the second hash."""
    import shutil

    import mlx.core as mx

    import harness.models as models
    from harness.models import adapter_applied

    folder = tmp_path / "v2"
    shutil.copytree(ROOT / "fixtures" / "adapters" / "sql", folder)
    prompt = mx.array([[1, 2, 3, 4, 5]])
    with adapter_applied(fixture_base, "v2", folder):
        hashed_logits = fixture_base.model(prompt)
        mx.eval(hashed_logits)
    real, calls = models.adapter_fingerprint, []

    def hash_then_overwrite(path):
        fingerprint = real(path)
        calls.append(path)
        if len(calls) == 2:  # the check after loading: the file changes right after it
            with open(folder / "adapters.safetensors", "r+b") as f:
                f.write((ROOT / "fixtures" / "adapters" / "regress" / "adapters.safetensors").read_bytes())
        return fingerprint

    monkeypatch.setattr(models, "adapter_fingerprint", hash_then_overwrite)
    with adapter_applied(fixture_base, "v2", folder):
        logits = fixture_base.model(prompt)
    assert mx.array_equal(logits, hashed_logits).item()
