"""The CLI's rough edges, filed from trying the README: a closed pipe, train --help's
config keys, the cache's size and pruning, `harness init`, and picking items with --ids
and --only-failing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from factories import model_result, results, suite_result
from harness.atomic import write_json
from harness.cache import CompletionCache, parse_duration
from harness.generation import Completion
from hostile_util import assert_bad_input, cli

ROOT = Path(__file__).resolve().parents[1]
SMOKE_IDS = ["add-1", "add-2", "mul-1", "cap-1", "col-1", "day-1"]


def _run_dir(tmp_path: Path, name: str, failing: set[str]) -> Path:
    res = results([suite_result({"base": model_result({i: i not in failing for i in SMOKE_IDS})})])
    write_json(tmp_path / name / "results.json", res)
    return tmp_path / name


def test_a_closed_pipe_ends_quietly(tmp_path):
    a, b = _run_dir(tmp_path, "a", set()), _run_dir(tmp_path, "b", {"add-1"})
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "compare", str(a), str(b),
                             "--out", str(tmp_path / "cmp")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before the first line (`| head -0`)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert "internal error" not in err and "Traceback" not in err and "Exception ignored" not in err, err


def test_train_help_lists_every_config_key_with_its_default(capsys):
    import dataclasses

    from harness.train.config import TrainConfig

    try:
        cli(capsys, "train", "--help")
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for f in dataclasses.fields(TrainConfig):
        assert f"\n  {f.name}" in out, f.name
    for line in ("learning_rate            0.0001", "batch_size               4", "lora_parameters.rank     8",
                 "steps                    1000"):
        assert line in out, line


def test_doctor_shows_the_cache_size_and_prune_drops_old_entries(tmp_path, capsys):
    folder = tmp_path / "cache"
    cache = CompletionCache(folder)
    cache.put_many({f"k{i}": Completion(output="x" * 200, finish_reason="stop", prompt_tokens=3,
                                        output_tokens=50) for i in range(40)})
    cache.close()
    db = sqlite3.connect(folder / "completions.sqlite")
    with db:
        db.execute("UPDATE completions SET created = ? WHERE key IN ('k1', 'k2', 'k3')", (time.time() - 40 * 86400,))
    db.close()

    code, out, _ = cli(capsys, "doctor", "--cache-dir", str(folder))
    size_line = next(line for line in out.splitlines() if line.startswith("cache size"))
    assert " KB in " in size_line and "cache prune" in size_line

    code, out, _ = cli(capsys, "cache", "prune", "--older-than", "30d", "--cache-dir", str(folder))
    assert code == 0 and "removed 3 completion(s) older than 30d, kept 37" in out
    code, out, _ = cli(capsys, "cache", "prune", "--older-than", "30d", "--cache-dir", str(folder))
    assert "removed 0" in out
    assert parse_duration("12h") == 43200 and parse_duration("2w") == 14 * 86400
    code, _, err = cli(capsys, "cache", "prune", "--older-than", "a month", "--cache-dir", str(folder))
    assert_bad_input(code, err, "--older-than", "not a duration")


def test_init_writes_a_suite_a_config_and_a_workflow_that_load(tmp_path, capsys):
    from harness.suite import load_suite
    from harness.train import load_config

    proj = tmp_path / "proj"
    code, out, _ = cli(capsys, "init", str(proj), "--model", "fixtures/model")
    assert code == 0 and out.count("wrote ") == 3
    suite = load_suite(proj / "suites" / "starter.yaml")
    assert [c.id for c in suite.cases] == ["capital-fr", "add-small", "week-days"]
    cfg = load_config(proj / "train" / "config.yaml")
    # a local folder given relative to here is written relative to the project, where the files run
    assert (proj / cfg.model).resolve() == (ROOT / "fixtures" / "model").resolve() and not Path(cfg.model).is_absolute()
    assert cfg.lr_schedule["warmup"] < cfg.steps
    flow = yaml.safe_load((proj / ".github" / "workflows" / "harness.yml").read_text())
    steps = " ".join(str(s.get("run", "")) for s in flow["jobs"]["gate"]["steps"])
    assert f"harness eval suites/ --model {cfg.model}" in steps
    assert f"cd {proj} && harness eval suites/ --model {cfg.model}" in out
    # the training step it prints names the data it needs (init writes none: `data: data folder not found`)
    assert "put train.jsonl and valid.jsonl in data/, then harness lint-data data/" in out
    code, _, err = cli(capsys, "init", str(proj))  # nothing is overwritten by accident
    assert_bad_input(code, err, "exists", "--force")
    assert cli(capsys, "init", str(proj), "--force")[0] == 0


def _completions(tmp_path: Path, wrong: set[str]) -> Path:
    doc = yaml.safe_load((ROOT / "suites" / "smoke.yaml").read_text())
    lines = [{"id": c["id"], "output": "nope" if c["id"] in wrong else c["answer"]} for c in doc["cases"]]
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _scored_ids(out: Path) -> list[str]:
    data = json.loads((out / "results.json").read_text())
    return [i["id"] for i in data["suites"][0]["models"]["base"]["items"]]


def test_ids_and_only_failing_pick_items(tmp_path, capsys):
    completions = _completions(tmp_path, {"add-2", "day-1"})
    first = tmp_path / "first"
    code, _, err = cli(capsys, "score", "suites/smoke.yaml", "--completions", completions, "--out", first)
    assert code == 0, err
    assert len(_scored_ids(first)) == 6

    code, _, err = cli(capsys, "score", "suites/smoke.yaml", "--completions", completions, "--out",
                       tmp_path / "ids", "--ids", "add-1,cap-1", "--ids", "mul-1")
    assert code == 0, err
    assert _scored_ids(tmp_path / "ids") == ["add-1", "mul-1", "cap-1"]

    code, _, err = cli(capsys, "score", "suites/smoke.yaml", "--completions", completions, "--out",
                       tmp_path / "failing", "--only-failing", first)
    assert code == 0, err
    assert _scored_ids(tmp_path / "failing") == ["add-2", "day-1"]

    code, _, err = cli(capsys, "score", "suites/smoke.yaml", "--completions", completions, "--out",
                       tmp_path / "bad", "--ids", "add-1,nope-9")
    assert_bad_input(code, err, "--ids", "nope-9")


def test_only_failing_a_run_of_other_suites_says_so(tmp_path, capsys):
    """--only-failing with a run of other suites (a renamed suite, the wrong run folder) said
    'picked no case of these suites (nothing failed in that run)', though items had failed there."""
    completions = _completions(tmp_path, {"add-2"})
    other = tmp_path / "other"
    run = results([suite_result({"base": model_result({"q1": False, "q2": True})}, name="renamed")])
    write_json(other / "results.json", run)
    code, _, err = cli(capsys, "score", "suites/smoke.yaml", "--completions", completions, "--out",
                       tmp_path / "x", "--only-failing", other)
    assert_bad_input(code, err, "--only-failing", "failed only in suites this run does not have: renamed")
    assert "nothing failed" not in err


def test_eval_ids_runs_only_those_items(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = cli(capsys, "eval", "suites/smoke.yaml", "--model", str(ROOT / "fixtures" / "model"),
                       "--ids", "cap-1", "--out", out, "--cache-dir", tmp_path / "cache", "--quiet")
    assert code in (0, 1), err
    assert _scored_ids(out) == ["cap-1"]


def _named_run(tmp_path: Path, name: str, model: str, failing: set[str]) -> Path:
    res = results([suite_result({"base": model_result({i: True for i in SMOKE_IDS}),
                                 model: model_result({i: i not in failing for i in SMOKE_IDS})})])
    write_json(tmp_path / name / "results.json", res)
    return tmp_path / name


def test_compare_names_unpaired_models_pairs_by_map_and_fails_on_regression(tmp_path, capsys):
    a = _named_run(tmp_path, "a", "adapter-v1", set())
    b = _named_run(tmp_path, "b", "adapter-v2", {"add-1", "mul-1"})
    out = ["--out", tmp_path / "cmp"]
    code, stdout, err = cli(capsys, "compare", a, b, *out, "--fail-on-regression")
    assert code == 1  # nothing paired got worse (base = base), but B lost A's adapter
    assert "only in A: adapter-v1; only in B: adapter-v2; pair them with --map adapter-v1=adapter-v2" in stdout
    assert "not compared" in err  # ... the adapters it could not pair are named, not dropped ...
    lost = [ln for ln in stdout.splitlines() if ln.startswith("REGRESSION")]
    assert lost == ["REGRESSION smoke / adapter-v1: in run A, not in run B (pair a renamed model with --map "
                    "adapter-v1=NEW): B does not evaluate it, so it cannot be shown no worse"]  # ... and fail
    code, _, _ = cli(capsys, "compare", a, b, *out)
    assert code == 0  # without the flag: shown, as before

    code, stdout, _ = cli(capsys, "compare", a, b, *out, "--map", "adapter-v1=adapter-v2", "--fail-on-regression")
    assert code == 1
    assert "adapter-v1 -> adapter-v2: 2/6 outputs changed, 2 pass->fail" in stdout
    assert "REGRESSION smoke / adapter-v2: 2 item(s) pass->fail (add-1, mul-1)" in stdout
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert "(A: adapter-v1)" in html and "2 of 6 outputs changed" in html

    code, _, _ = cli(capsys, "compare", a, a, *out, "--fail-on-regression")
    assert code == 0
    code, _, err = cli(capsys, "compare", a, b, *out, "--map", "nope=adapter-v2")
    assert_bad_input(code, err, "--map", "run A has no model 'nope'")


def test_init_for_a_model_without_chat_template_writes_a_raw_suite_that_runs(tmp_path, capsys):
    """`harness init --model fixtures/stories260K` wrote `template: chat`, so the very next command
    it printed (`harness eval ...`) failed: stories260K has no chat template."""
    from harness.suite import load_suite

    proj = tmp_path / "proj"
    stories = str(ROOT / "fixtures" / "stories260K")
    code, out, _ = cli(capsys, "init", str(proj), "--model", stories)
    assert code == 0 and "has no chat template" in out
    suite = load_suite(proj / "suites" / "starter.yaml")
    assert suite.template == "raw" and suite.cases[0].prompt == "Q: What is the capital of France?\nA:"
    assert list(suite.generation.stop) == ["\n"]
    code, _, err = cli(capsys, "eval", str(proj / "suites"), "--model", stories, "--limit", "1",
                       "--out", str(tmp_path / "out"), "--no-cache")
    assert code == 0, err
    # the fixture model has a chat template: its starter stays a chat suite
    code, out, _ = cli(capsys, "init", str(tmp_path / "chat"), "--model", "fixtures/model")
    assert code == 0 and load_suite(tmp_path / "chat" / "suites" / "starter.yaml").template == "chat"


@pytest.mark.parametrize("model", ["models/my: model #1", "$(touch PWNED) 'x'", 'a"b\\c', "models/ünï",
                                   "x{{MODEL_SHELL}}"])
def test_init_keeps_an_odd_model_name_a_name_in_yaml_and_in_the_workflow_shell(tmp_path, capsys, model):
    """The model was pasted into YAML and into the workflow's shell line as is: `a: b #1` broke
    the training config, and `$(...)` would have run in the user's CI."""
    import shlex

    from harness.train import load_config

    proj = tmp_path / "proj"
    code, _, err = cli(capsys, "init", str(proj), "--model", model)
    assert code == 0, err
    raw = yaml.safe_load((proj / "train" / "config.yaml").read_text(encoding="utf-8"))
    assert raw["model"] == model
    flow = yaml.safe_load((proj / ".github" / "workflows" / "harness.yml").read_text(encoding="utf-8"))
    gate = next(s["run"] for s in flow["jobs"]["gate"]["steps"] if "harness eval" in str(s.get("run", "")))
    line = next(x for x in gate.splitlines() if x.strip().startswith("harness eval"))
    words = shlex.split(line.split(" --adapter")[0])
    assert words[:5] == ["harness", "eval", "suites/", "--model", model]


@pytest.mark.parametrize("model", ["a\nb", "a\u2028b", "a\x85b", "a\udcffb"])
def test_init_refuses_a_model_name_with_a_line_break(tmp_path, capsys, model):
    """U+2028 and NEL are line breaks to YAML: they split the workflow's shell line (the file
    no longer parsed); an undecodable byte in argv (\\udcff) could not be written at all (exit 3
    after the suite was written)."""
    code, _, err = cli(capsys, "init", str(tmp_path / "p"), "--model", model)
    assert_bad_input(code, err, "--model", "control character")
    assert not (tmp_path / "p").exists()


def test_init_with_a_local_folder_that_has_no_tokenizer_config(tmp_path, capsys, monkeypatch):
    """A local model folder without tokenizer_config.json (tokenizer.json alone) has no chat
    template, and it is a local folder all the same: it got a chat starter (whose next command
    fails) and its relative path was written as given, relative to the wrong folder."""
    from harness.suite import load_suite
    from harness.train import load_config

    (tmp_path / "models" / "base").mkdir(parents=True)
    (tmp_path / "models" / "base" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "init", "proj", "--model", "models/base")
    assert code == 0, err
    assert load_suite(tmp_path / "proj" / "suites" / "starter.yaml").template == "raw"
    assert load_config(tmp_path / "proj" / "train" / "config.yaml").model == "../models/base"


def test_init_into_a_path_under_a_file_or_over_a_folder_writes_nothing(tmp_path, capsys):
    """`harness init FILE/sub` was an internal error (NotADirectoryError, exit 3); with --force
    over a project whose train/config.yaml is a folder, suites/starter.yaml was written first."""
    (tmp_path / "afile").write_text("x")
    code, _, err = cli(capsys, "init", str(tmp_path / "afile" / "sub"), "--model", "m")
    assert_bad_input(code, err, "cannot make this folder")
    proj = tmp_path / "proj"
    (proj / "train" / "config.yaml").mkdir(parents=True)
    code, _, err = cli(capsys, "init", str(proj), "--model", "m", "--force")
    assert_bad_input(code, err, "config.yaml", "not a file")
    assert not (proj / "suites").exists()


@pytest.mark.parametrize("name, says", [
    ("v2::x", "'::'"), ("a\nb", "control"), ("a\u2028b", "control"), ("a\u202eb", "control"),
    (" v2", "space"), ("v" * 101, "at most 100"),
])
def test_adapter_names_that_break_reports_and_node_ids_are_refused(name, says):
    """A name goes into junit test names and pytest node ids (``suite.yaml::model: gate``):
    '::' there made the gate impossible to rerun by its node id, a newline split junit's name."""
    from harness.errors import HarnessError
    from harness.runner import parse_adapter_args

    with pytest.raises(HarnessError) as exc:
        parse_adapter_args([f"{name}=fixtures/adapters/sql"])
    assert says in str(exc.value) and "--adapter" in str(exc.value)
    assert [s.name for s in parse_adapter_args(["v2.1-rc_3=fixtures/adapters/sql", "Ünï=x"])] == ["v2.1-rc_3", "Ünï"]


@pytest.mark.parametrize("command", ["train", "eval"])
def test_the_current_folder_as_output_is_refused(tmp_path, capsys, monkeypatch, command):
    """Reports and adapters are written as a set and swapped into place as a whole folder:
    `--out .` (or `adapter_path: .`) was an internal error (EBUSY renaming "."), after the
    whole eval or the first training steps had run."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    model = ROOT / "fixtures" / "model"
    if command == "train":
        data = tmp_path / "data"
        data.mkdir()
        for split in ("train", "valid"):
            (data / f"{split}.jsonl").write_text("".join(
                json.dumps({"prompt": f"{split} q{i}?", "completion": f"a{i}"}) + "\n" for i in range(4)))
        argv = ["train", str(write_config(tmp_path, model, data)), "--adapter_path", "."]
    else:
        argv = ["eval", str(ROOT / "suites" / "smoke.yaml"), "--model", str(model), "--limit", "1",
                "--no-cache", "--out", "."]
    code, _, err = cli(capsys, *argv)
    assert_bad_input(code, err, "current folder")
    assert sorted(p.name for p in work.iterdir()) == []


def write_config(folder: Path, model: Path, data: Path) -> Path:
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump({"model": str(model), "data": str(data), "batch_size": 2, "steps": 2,
                                    "eval_every": 2, "save_every": 1}))
    return path


def test_an_output_folder_holding_the_current_folder_is_refused(tmp_path, monkeypatch):
    from harness.errors import HarnessError
    from harness.preflight import check_out_dir, check_out_file

    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    for out in (".", str(tmp_path / "a" / "b"), "..", str(tmp_path)):
        with pytest.raises(HarnessError, match="current folder"):
            check_out_dir(out)
    assert check_out_dir("reports") == Path("reports")
    assert check_out_file("history.csv", "--csv") == Path("history.csv")  # a file here is fine


def test_an_output_folder_in_a_read_only_parent_is_refused(tmp_path, monkeypatch):
    """Reports and adapters are written beside their folder and swapped in: a writable
    folder in a read-only parent passed the check and failed at the first write (for
    training, after the first save_every steps, as an internal error)."""
    import os

    import harness.preflight as preflight
    from harness.errors import HarnessError

    (tmp_path / "ro" / "adapters").mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(preflight.os, "access",  # root passes every access check: pretend
                        lambda p, mode: False if Path(p) == tmp_path / "ro" else real_access(p, mode))
    with pytest.raises(HarnessError, match="read-only"):
        preflight.check_out_dir(tmp_path / "ro" / "adapters")
    assert preflight.check_out_dir(tmp_path / "adapters") == tmp_path / "adapters"


def test_compare_fail_on_regression_fails_what_b_lost_and_not_what_b_added(tmp_path, capsys):
    """A suite or a model of run A that run B does not have (a suite file deleted, an adapter
    dropped from --adapter): printed and exit 0, so B read 'no worse' on what it never ran."""
    two = results([suite_result({"base": model_result({i: True for i in SMOKE_IDS}),
                                 "ft": model_result({i: True for i in SMOKE_IDS})}),
                   suite_result({"base": model_result({i: True for i in SMOKE_IDS}),
                                 "ft": model_result({i: True for i in SMOKE_IDS})}, name="other")])
    write_json(tmp_path / "two" / "results.json", two)
    one = _named_run(tmp_path, "one", "ft", set())  # suite smoke alone
    out = ["--out", tmp_path / "cmp"]
    code, stdout, _ = cli(capsys, "compare", tmp_path / "two", one, *out, "--fail-on-regression")
    assert code == 1
    assert "REGRESSION other: in run A, not in run B: B does not evaluate this suite" in stdout
    code, stdout, _ = cli(capsys, "compare", one, tmp_path / "two", *out, "--fail-on-regression")
    assert code == 0 and "REGRESSION" not in stdout  # B has more: fine
    base_only = results([suite_result({"base": model_result({i: True for i in SMOKE_IDS})})])
    write_json(tmp_path / "base" / "results.json", base_only)
    code, stdout, _ = cli(capsys, "compare", one, tmp_path / "base", *out, "--fail-on-regression")
    assert code == 1 and "REGRESSION smoke / ft: in run A, not in run B" in stdout
    code, stdout, _ = cli(capsys, "compare", tmp_path / "base", one, *out, "--fail-on-regression")
    assert code == 0


def test_compare_fail_on_regression_fails_a_suite_scored_another_way(tmp_path, capsys):
    """B's suite scored under other options than A's (a scorer loosened between the runs): its
    deltas compare two definitions, and a regressed adapter read 'better' with exit 0."""
    a = _named_run(tmp_path, "a", "ft", {"add-1", "mul-1"})
    loose = results([suite_result({"base": model_result({i: True for i in SMOKE_IDS}),
                                   "ft": model_result({i: True for i in SMOKE_IDS})},
                                  scorers={"exact_match": {"version": "1", "options": {"case_sensitive": False},
                                                           "skipped": None}})])
    write_json(tmp_path / "b" / "results.json", loose)
    code, stdout, _ = cli(capsys, "compare", a, tmp_path / "b", "--out", tmp_path / "cmp", "--fail-on-regression")
    assert code == 1
    assert "REGRESSION smoke: not comparable (scorer exact_match options differs)" in stdout
    code, stdout, _ = cli(capsys, "compare", a, tmp_path / "b", "--out", tmp_path / "cmp")
    assert code == 0 and "differs: scorer exact_match options" in stdout  # without the flag: shown, as before


def test_init_s_workflow_says_when_it_gates_without_the_baseline(tmp_path, capsys):
    """The generated Gate step dropped `--baseline` without a word when the file was missing: right
    on the first pull request, but a change that removed or moved reports/baselines/baseline.json
    turned every baseline gate off and the job stayed green. It now warns (a GitHub annotation)."""
    import os

    proj = tmp_path / "proj"
    assert cli(capsys, "init", str(proj), "--model", "my models/base")[0] == 0
    flow = yaml.safe_load((proj / ".github" / "workflows" / "harness.yml").read_text(encoding="utf-8"))
    gate = next(s["run"] for s in flow["jobs"]["gate"]["steps"] if "harness eval" in str(s.get("run", "")))
    stub = tmp_path / "bin" / "harness"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nfor a in \"$@\"; do echo \"arg:$a\"; done\n")
    stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{stub.parent}{os.pathsep}{os.environ['PATH']}")

    def run() -> tuple[str, list[str]]:
        out = subprocess.run(["bash", "-e", "-c", gate], cwd=proj, env=env, capture_output=True, text=True,
                             check=True).stdout
        return out, [line[4:] for line in out.splitlines() if line.startswith("arg:")]

    out, args = run()
    assert "::warning::no reports/baselines/baseline.json" in out and "--baseline" not in args
    assert args[:4] == ["eval", "suites/", "--model", "my models/base"]
    (proj / "reports" / "baselines").mkdir(parents=True)
    (proj / "reports" / "baselines" / "baseline.json").write_text("{}")
    out, args = run()
    assert "::warning::" not in out
    assert args[args.index("--baseline") + 1] == "reports/baselines/baseline.json" and args[-2:] == ["--out", "reports/ci"]


def test_score_without_base_completions_names_the_models_it_found_and_what_to_add(tmp_path, capsys):
    """Completions of the candidate alone (my new adapter's outputs, to gate against a baseline)
    were refused with "no completions for model 'base' (lines without `model` count as base)":
    not which models the file had, nor that the base's outputs must be added."""
    completions = tmp_path / "c.jsonl"
    completions.write_text("".join(json.dumps({"id": i, "output": "x", "model": "v2"}) + "\n" for i in SMOKE_IDS))
    code, _, err = cli(capsys, "score", "suites/smoke.yaml", "--completions", completions, "--out", tmp_path / "o")
    assert_bad_input(code, err, str(completions), "no completions for model 'base'", "the file has: v2",
                     "add its completions")
