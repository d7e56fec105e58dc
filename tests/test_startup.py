"""What a `harness` start costs: the work a run need not do is not done."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_parser_does_not_import_the_training_loop():
    # `harness train --help` lists the config keys, read from harness.train.config; building
    # the parser (every command, eval included) must not pull in the loop, optimizers or numpy.
    loaded = _modules_after("from harness.cli import build_parser; build_parser()")
    assert "harness.train.config" in loaded
    assert "harness.train.loop" not in loaded and "mlx.optimizers" not in loaded


def test_train_names_still_resolve():
    import harness.train as train

    assert train.TrainConfig.__name__ == "TrainConfig" and callable(train.train)
    try:
        train.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("unknown names must raise AttributeError")


# --- weight digests remembered across runs -------------------------------------------------

def _weights(folder, content: bytes):
    import os

    folder.mkdir(exist_ok=True)
    f = folder / "model.safetensors"
    f.write_bytes(content)
    old = f.stat().st_mtime - 60  # older than the racy window: its stamp can be trusted
    os.utime(f, (old, old))
    return f


def _hash_counter(monkeypatch, tmp_path):
    from harness import models

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    models._DigestMemo.reset()
    calls = []
    real = models.file_digest
    monkeypatch.setattr(models, "file_digest", lambda p: calls.append(p) or real(p))
    return models, calls


def test_unchanged_weights_are_not_hashed_again(monkeypatch, tmp_path):
    models, calls = _hash_counter(monkeypatch, tmp_path)
    folder = tmp_path / "m"
    _weights(folder, b"\1" * (models.MEMO_MIN_BYTES + 5))
    first = models.weights_fingerprint(folder)
    assert len(calls) == 1
    models._DigestMemo.reset()  # a new process: only the database remembers
    assert models.weights_fingerprint(folder) == first
    assert len(calls) == 1, "an unchanged file was read again"
    assert (tmp_path / "cache" / "digests.sqlite").is_file()
    models._DigestMemo.reset()


def test_a_changed_file_is_hashed_again_even_with_size_and_mtime_put_back(monkeypatch, tmp_path):
    import os

    models, calls = _hash_counter(monkeypatch, tmp_path)
    folder = tmp_path / "m"
    f = _weights(folder, b"\1" * (models.MEMO_MIN_BYTES + 5))
    first = models.weights_fingerprint(folder)
    st = f.stat()
    with open(f, "r+b") as fh:  # same size, same inode, mtime set back: only ctime tells
        fh.write(b"\2")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    models._DigestMemo.reset()
    second = models.weights_fingerprint(folder)
    assert second != first and len(calls) == 2
    _weights(folder, b"\3" * (models.MEMO_MIN_BYTES + 9))  # rewritten: new size and mtime
    models._DigestMemo.reset()
    assert models.weights_fingerprint(folder) not in (first, second) and len(calls) == 3
    models._DigestMemo.reset()


def test_a_file_modified_just_now_is_not_remembered(monkeypatch, tmp_path):
    models, calls = _hash_counter(monkeypatch, tmp_path)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\1" * (models.MEMO_MIN_BYTES + 5))  # mtime: now
    models.weights_fingerprint(folder)
    models._DigestMemo.reset()
    models.weights_fingerprint(folder)
    assert len(calls) == 2  # within the racy window: hashed each time
    models._DigestMemo.reset()


def test_an_unusable_memo_only_costs_the_hash(monkeypatch, tmp_path):
    models, calls = _hash_counter(monkeypatch, tmp_path)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "digests.sqlite").write_bytes(b"not a database" * 100)
    folder = tmp_path / "m"
    _weights(folder, b"\1" * (models.MEMO_MIN_BYTES + 5))
    expected = models.weights_fingerprint(folder)
    models._DigestMemo.reset()
    assert models.weights_fingerprint(folder) == expected and len(calls) == 2
    models._DigestMemo.reset()


# --- the cached path -------------------------------------------------------------------------

def test_a_failed_integrity_check_leaves_nothing_in_the_cache(fixture_base, cache_dir, monkeypatch, capsys):
    from conftest import ROOT

    from harness import integrity, runner
    from harness.cache import CompletionCache
    from harness.suite import load_suite

    suite = load_suite(ROOT / "suites" / "sql.yaml").limited(4)
    cache = CompletionCache(cache_dir)
    real = integrity.check
    monkeypatch.setattr(integrity, "check", lambda *a, **k: integrity.IntegrityResult(2, False, "planted"))
    _, checked = runner.generate_suite(suite, fixture_base, fixture_base.fingerprint, None, cache, live=False)
    assert not checked["passed"] and len(cache) == 0
    monkeypatch.setattr(integrity, "check", real)
    capsys.readouterr()
    again, checked = runner.generate_suite(suite, fixture_base, fixture_base.fingerprint, None, cache, live=False)
    assert "4 items, 0 from cache, 4 generated" in capsys.readouterr().err
    assert checked["passed"] and checked["checked"] > 0 and not any(c.cached for c in again)
    assert len(cache) == 4  # a passing check keeps them
    cache.close()


def test_token_accuracy_is_not_recomputed_on_an_unchanged_rerun(cache_dir, monkeypatch):
    import dataclasses

    from conftest import FIXTURE_MODEL, ROOT

    from harness.runner import load_suites, run_eval
    from harness.scorers.token_accuracy import TokenAccuracy

    calls = []
    real = TokenAccuracy.score_all
    monkeypatch.setattr(TokenAccuracy, "score_all", lambda self, items, model=None: calls.append(len(items))
                        or real(self, items, model))

    def token_scores(suites):
        results = run_eval(suites, str(FIXTURE_MODEL), [], cache_dir=str(cache_dir), quiet=True)
        return [item["scores"]["token_accuracy"] for item in results["suites"][0]["models"]["base"]["items"]]

    suites = load_suites([ROOT / "suites" / "sql.yaml"], 3)
    first = token_scores(suites)
    assert calls == [3] and first[0]["value"] is not None
    assert token_scores(suites) == first and calls == [3], "cached re-run recomputed token_accuracy"
    assert token_scores(load_suites([ROOT / "suites" / "sql.yaml"], 3)) == first and calls == [3]
    # A changed target (the suite's data) is another key: computed again.
    changed = dataclasses.replace(suites[0], cases=[dataclasses.replace(suites[0].cases[0], target="SELECT 1")]
                                  + list(suites[0].cases[1:]))
    again = token_scores([changed])
    assert calls == [3, 3] and again[1:] == first[1:] and again[0] != first[0]
    # Without the cache nothing is reused.
    run_eval(suites, str(FIXTURE_MODEL), [], use_cache=False, quiet=True)
    assert calls == [3, 3, 3]


def test_the_shipped_schemas_are_valid_schemas():
    # harness.validation no longer checks them against the meta-schema on every run.
    import json
    from importlib import resources

    import jsonschema

    names = [f.name for f in resources.files("harness.schemas").iterdir() if f.name.endswith(".schema.json")]
    assert {"results.schema.json", "baseline.schema.json", "suite.schema.json"} <= set(names)
    for name in names:
        schema = json.loads(resources.files("harness.schemas").joinpath(name).read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)


def test_compiled_report_templates_are_reused_and_a_bad_file_is_recompiled(tmp_path, monkeypatch):
    from factories import item, model_result, results, suite_result

    from harness import reports

    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    folder = tmp_path / "jinja2"
    run = results([suite_result({"base": model_result([item("a", True), item("b", False, "<b>x</b>")]),
                                 "ft": model_result([item("a", False), item("b", True)])})])
    run["verdict"] = "fail"

    def render() -> tuple[list[str], int]:
        env = reports._new_environment(reports._bytecode_cache(folder))
        compiled = []
        real = env.compile
        env.compile = lambda *a, **k: compiled.append(1) or real(*a, **k)
        monkeypatch.setattr(reports, "environment", lambda: env)
        texts = list(reports.render_reports(run).values())
        return texts, len(compiled)

    first, n_first = render()
    assert n_first >= 3 and len(list(folder.iterdir())) == n_first  # each template and include, once
    again, n_again = render()
    assert n_again == 0 and again == first, "the compiled templates were not reused"
    for f in folder.iterdir():
        f.write_bytes(f.read_bytes()[:40])  # truncated files: compiled again, same output
    after, n_after = render()
    assert n_after == n_first and after == first
