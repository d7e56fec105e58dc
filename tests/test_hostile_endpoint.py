"""`harness eval --endpoint` against a hostile server: answers that drip a byte at a time, JSON
nested past the parser's depth, answers of the wrong shape, a malformed `/v1/models`.

Each must fail the items (the `endpoint_requests` gate, exit 1) or be scored as the empty
answer it is, within the `--timeout`, never hang the run or crash it (exit 3).
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

import pytest

from conftest import ROOT, run_harness
from hostile_util import HttpServers

SMOKE = str(ROOT / "suites" / "smoke.yaml")  # chat template: /v1/chat/completions, 6 items
GOOD = {"choices": [{"message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1}}


_TOOL_CALL = {"role": "assistant", "content": None,
              "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
# HTTP 200 answers that carry no answer of the requested model (mode: (answer, the item's error))
NOT_ANSWERS = {
    "tool_calls": {"model": "m", "choices": [{"message": _TOOL_CALL, "finish_reason": "tool_calls"}]},
    "null_content": {"choices": [{"message": _TOOL_CALL, "finish_reason": "stop"}]},
    "no_message": {"choices": [{"index": 0, "finish_reason": "stop"}]},
    "content_filter": {"choices": [{"message": {"role": "assistant", "content": ""},
                                    "finish_reason": "content_filter"}]},
    "substituted": dict(GOOD, model="some-other-model"),
    "substituted_mini": dict(GOOD, model="m-mini"),
    "past_max_tokens": dict(GOOD, usage={"prompt_tokens": 5, "completion_tokens": 400}),  # smoke asks 16
    "error_beside_choices": dict(GOOD, choices=[{"message": {"role": "assistant", "content": ""},
                                                 "finish_reason": "stop"}],
                                 error={"message": "model overloaded", "code": 503}),
}
NOT_ANSWER_ERRORS = {
    "tool_calls": "finish_reason 'tool_calls': the model called a tool",
    "null_content": "the answer has no text: message.content is null (it carries tool_calls)",
    "no_message": "the answer has no text: neither `text` nor a `message` object",
    "content_filter": "finish_reason 'content_filter'",
    "substituted": "answered by model 'some-other-model', not the requested 'm'",
    "substituted_mini": "answered by model 'm-mini', not the requested 'm'",
    "past_max_tokens": "the server wrote 400 tokens, past max_tokens 16: it ignores max_tokens",
    "error_beside_choices": 'the server reports an error: {"message": "model overloaded"',
}


class _Hostile(BaseHTTPRequestHandler):
    mode = "drip"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, body: bytes, headers_too: bool) -> None:
        try:
            if headers_too:
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                for i in range(600):  # one header byte every 50 ms, for 30 s
                    self.wfile.write(head[i:i + 1] if i < len(head) else b"X")
                    self.wfile.flush()
                    time.sleep(0.05)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) * 50))
            self.end_headers()
            for _ in range(600):  # one body byte every 50 ms, for 30 s
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass  # the client hung up, as it should

    def do_GET(self):
        if self.mode == "models_list":
            self._send(json.dumps([{"id": "m"}]).encode())
        elif self.mode == "models_deep":
            self._send(b"[" * 200_000)
        elif self.mode == "models_drip":
            self._drip(b"{}", headers_too=False)
        else:
            self._send(b'{"data": []}')

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        mode = self.mode
        if mode == "drip":
            self._drip(json.dumps(GOOD).encode(), headers_too=False)
        elif mode == "drip_headers":
            self._drip(b"", headers_too=True)
        elif mode == "deep":
            self._send(b'{"choices": ' + b"[" * 200_000)
        elif mode == "deep_valid":  # parses at depth 900, and is then the wrong shape
            self._send(b'{"choices": [' + b"[" * 900 + b"]" * 900 + b"]}")
        elif mode == "list":
            self._send(b"[1, 2, 3]")
        elif mode == "huge":
            self._send(b'{"x": "' + b"a" * (9 << 20) + b'"}')
        elif mode == "shapes":
            self._send(json.dumps({"choices": [{"message": "Paris", "finish_reason": 7}],
                                   "usage": ["not", "a", "dict"]}).encode())
        elif mode in NOT_ANSWERS:
            self._send(json.dumps(NOT_ANSWERS[mode]).encode())
        elif mode == "counts":
            self._send(json.dumps(dict(GOOD, usage={"prompt_tokens": "many", "completion_tokens": -3})).encode())
        else:  # models_*: /v1/models is the hostile part, completions are fine
            self._send(json.dumps(GOOD).encode())


@pytest.fixture
def hostile():
    servers = HttpServers()
    yield lambda mode: servers.start(type("Handler", (_Hostile,), {"mode": mode}))
    servers.close()


def _eval(url: str, tmp_path, name: str, timeout: str = "1"):
    t0 = time.monotonic()
    proc = run_harness("eval", SMOKE, "--endpoint", url, "--model", "m", "--timeout", timeout,
                       "--retries", "0", "--no-cache", "--out", str(tmp_path / name), timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode != 3, proc.stderr[-2000:]
    return proc, elapsed


def _items(tmp_path, name: str) -> list[dict]:
    res = json.loads((tmp_path / name / "results.json").read_text())
    return res["suites"][0]["models"]["base"]["items"]


@pytest.mark.parametrize("mode", ["drip", "drip_headers"])
def test_a_server_that_drips_its_answer_is_cut_at_the_timeout(hostile, tmp_path, mode):
    """A socket timeout alone bounds each read: a byte every 50 ms would hold each request for
    30 s (and a run of 6 items for a minute). The wall-clock watchdog cuts each at 1 s."""
    proc, elapsed = _eval(hostile(mode), tmp_path, mode)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert elapsed < 25, f"took {elapsed:.1f} s: the drip was not cut"
    items = _items(tmp_path, mode)
    assert len(items) == 6 and all("no complete answer within 1 s" in i["error"] for i in items), items[0]
    assert "endpoint_requests" in proc.stdout


@pytest.mark.parametrize("mode, error", [
    ("deep", "not usable JSON (RecursionError)"),
    ("list", "not a JSON object"),
    ("huge", "larger than 8 MiB"),
    ("deep_valid", "response has no choices"),
])
def test_unusable_answers_fail_their_items_not_the_run(hostile, tmp_path, mode, error):
    proc, _ = _eval(hostile(mode), tmp_path, mode, timeout="20")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    items = _items(tmp_path, mode)
    assert all(error in (i.get("error") or "") for i in items), items[0].get("error")


def test_odd_fields_are_read_defensively(hostile, tmp_path):
    """Usage that is a list, counts that are not counts: the item is scored on its text, and
    the numbers are not passed on."""
    proc, _ = _eval(hostile("counts"), tmp_path, "counts")
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    items = _items(tmp_path, "counts")
    assert len(items) == 6 and not any(i.get("error") for i in items)
    assert [i["output"] for i in items] == ["Paris"] * 6
    assert all(i.get("output_tokens") in (0, None) for i in items)


@pytest.mark.parametrize("mode", ["shapes", *NOT_ANSWERS])
def test_an_answer_without_the_models_text_fails_its_item_and_is_not_cached(hostile, tmp_path, mode):
    """HTTP 200 that is no answer of the requested model: content null (a tool call), a
    message that is not an object, the content filter, another model named in `model`.
    Scored as an empty output these passed: smoke's base and adapter both empty is no drop,
    and an empty text passes forbidden keywords and repetition. They are failed requests
    (the endpoint_requests gate, exit 1) and never enter the cache, from where a later run
    would serve them as answers."""
    cache = tmp_path / "cache"
    proc = run_harness("eval", SMOKE, "--endpoint", hostile(mode), "--model", "m", "--timeout", "20",
                       "--retries", "0", "--cache-dir", str(cache), "--out", str(tmp_path / mode), timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED smoke / base / endpoint_requests: 6 of 6 requests failed" in proc.stdout
    expected = NOT_ANSWER_ERRORS.get(mode, "the answer has no text: neither `text` nor a `message` object")
    assert all(expected in (i.get("error") or "") for i in _items(tmp_path, mode)), _items(tmp_path, mode)[0]
    import sqlite3

    db = sqlite3.connect(cache / "completions.sqlite")
    try:
        assert db.execute("SELECT COUNT(*) FROM completions WHERE key NOT LIKE 'scores:%'").fetchone()[0] == 0
    finally:
        db.close()


def test_a_snapshot_or_tag_of_the_requested_model_is_the_same_model():
    from harness.backends.openai import _same_model

    for answered, requested in [("m", "m"), ("gpt-4o-2024-08-06", "gpt-4o"), ("llama3:latest", "llama3"),
                                ("/srv/models/qwen", "qwen"), ("fixtures/model", "/abs/fixtures/model")]:
        assert _same_model(answered, requested), (answered, requested)
    for answered, requested in [("gpt-4o-mini", "gpt-4o"), ("llama3", "llama3:70b"), ("other", "m")]:
        assert not _same_model(answered, requested), (answered, requested)


@pytest.mark.parametrize("mode", ["models_list", "models_deep", "models_drip"])
def test_a_malformed_models_listing_is_ignored(hostile, tmp_path, mode):
    proc, elapsed = _eval(hostile(mode), tmp_path, mode)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert elapsed < 25
    res = json.loads((tmp_path / mode / "results.json").read_text())
    assert res["environment"]["endpoint"]["served"] is None
    assert [i["output"] for i in _items(tmp_path, mode)] == ["Paris"] * 6


SMOKE_ANSWERS = {"2 + 2": "4", "10 + 5": "15", "3 times": "12", "France": "Paris", "sky": "blue", "week": "7"}


class _Retrained(BaseHTTPRequestHandler):
    """A server whose adapter is retrained between two runs: it answers smoke's items right
    until ``state['adapter']`` says 'regressed', then 'no idea'; the base always right."""

    state: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._send({"data": []})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.state.setdefault("requests", []).append(body.get("adapters"))
        question = body["messages"][-1]["content"]
        right = next(v for k, v in SMOKE_ANSWERS.items() if k in question)
        text = "no idea" if body.get("adapters") and self.state.get("adapter") == "regressed" else right
        self._send(dict(GOOD, choices=[{"message": {"role": "assistant", "content": text},
                                        "finish_reason": "stop"}]))

    def _send(self, obj) -> None:
        raw = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.mark.parametrize("model, adapter", [("m", "/srv/adapters/v2"), (str(ROOT / "fixtures" / "model"),
                                                                         "/srv/adapters/v2")])
def test_an_adapter_retrained_on_the_server_is_not_served_from_the_cache(tmp_path, model, adapter):
    """The cache key of a model or adapter that is not a local folder can hold only its name:
    an adapter retrained into the same server path was served the first run's answers (the
    second run: '6 from cache', PASS, although the adapter now answers nothing right). Such
    models are not cached; a local base still is."""
    state: dict = {}
    servers = HttpServers()
    url = servers.start(type("Handler", (_Retrained,), {"state": state}))
    try:
        def run(name):
            return run_harness("eval", SMOKE, "--endpoint", url, "--model", model, "--adapter", f"v2={adapter}",
                               "--retries", "0", "--cache-dir", str(tmp_path / "cache"),
                               "--out", str(tmp_path / name), timeout=120)
        first = run("first")
        assert first.returncode == 0, first.stdout + first.stderr
        state["adapter"] = "regressed"
        second = run("second")
    finally:
        servers.close()
    assert second.returncode == 1, second.stdout + second.stderr
    assert "FAILED smoke / v2 / exact_match" in second.stdout
    assert "not cached: the " in second.stderr
    adapter_requests = [a for a in state["requests"] if a]
    assert len(adapter_requests) == 12  # both runs asked the server for every adapter item
    base_requests = len(state["requests"]) - len(adapter_requests)
    assert base_requests == (6 + 3 if model != "m" else 12)  # a local base is hashed, and cached (3 spot-checked)


def test_a_local_model_and_adapter_are_cached(tmp_path):
    """A server answering as before: the second run takes every answer from the cache and
    requests only the spot check's spread sample (3 of 6 items per model) live."""
    state: dict = {}
    servers = HttpServers()
    url = servers.start(type("Handler", (_Retrained,), {"state": state}))
    try:
        for name in ("first", "second"):
            proc = run_harness("eval", SMOKE, "--endpoint", url, "--model", str(ROOT / "fixtures" / "model"),
                               "--adapter", f"sql={ROOT / 'fixtures' / 'adapters' / 'sql'}", "--retries", "0",
                               "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / name), timeout=120)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            if name == "first":
                assert len(state["requests"]) == 12
    finally:
        servers.close()
    assert len(state["requests"]) == 12 + 2 * 3 and "not cached" not in proc.stderr
    assert proc.stderr.count("6 from cache, 0 requested, 3 spot-checked live (0 differed)") == 2
    warnings = json.loads((tmp_path / "second" / "results.json").read_text())["warnings"]
    assert not [w for w in warnings if "spot-checked" in w], warnings


def test_cached_answers_the_server_no_longer_gives_are_discarded(tmp_path):
    """The first run against a server that had loaded an older version of the adapter (no
    run had seen the folder, so nothing said it changed) cached the old weights' answers under
    the new adapter's fingerprint; after a restart on the retrained (regressed) adapter every
    later run read them from the cache and passed. A live spot check of the cached answers
    now finds the server answering otherwise: every item is requested again (and re-cached),
    the regression fails the run, and a warning names the folder and the server."""
    import shutil

    adapter = tmp_path / "v2"
    shutil.copytree(ROOT / "fixtures" / "adapters" / "sql", adapter)
    state: dict = {}  # the old adapter the server loaded answers right (in capitals)
    servers = HttpServers()
    url = servers.start(type("Handler", (_Shouting,), {"state": state}))
    try:
        def run(name, code):
            proc = run_harness("eval", SMOKE, "--endpoint", url, "--model", str(ROOT / "fixtures" / "model"),
                               "--adapter", f"v2={adapter}", "--retries", "0", "--cache-dir", str(tmp_path / "c"),
                               "--out", str(tmp_path / name), timeout=120)
            assert proc.returncode == code, proc.stdout + proc.stderr
            res = json.loads((tmp_path / name / "results.json").read_text())
            outputs = [i["output"] for i in res["suites"][0]["models"]["v2"]["items"]]
            return proc, outputs, [w for w in res["warnings"] if "spot-checked" in w]
        _, outputs, warned = run("first", 0)
        assert outputs == [v.upper() for v in SMOKE_ANSWERS.values()] and warned == []
        state["adapter"] = "regressed"  # restarted: the retrained adapter answers, and it regressed
        state["requests"] = []
        proc, outputs, (warning,) = run("restarted", 1)
        assert "FAILED smoke / v2 / exact_match" in proc.stdout  # not the old answers from the cache
        assert outputs == ["no idea"] * 6
        assert f"adapter v2 ({adapter})" in warning and url in warning and "3 of 3" in warning
        assert "cached answers discarded" in warning
        assert len(state["requests"]) == 3 + 6  # the base's spot check; the adapter's 3 checked + 3 more
        state["requests"] = []
        proc, outputs, warned = run("again", 1)  # the live answers were re-cached: they stand
        assert outputs == ["no idea"] * 6 and warned == [] and len(state["requests"]) == 3 + 3
    finally:
        servers.close()


@pytest.mark.parametrize("adapter_state, checked", [("ignored", False), ("ignored", True), ("regressed", True)])
def test_an_adapter_the_server_ignores_is_named(tmp_path, adapter_state, checked):
    """A server that ignores the per-request `adapters` field answers the adapter's items with
    the base: its scores were the base's, no paired gate saw a drop, and the run passed with
    nothing said. Now a warning names it, and a suite with checks: {adapter_effect: true}
    fails; an adapter whose answers differ is neither."""
    suite = tmp_path / "smoke.yaml"
    suite.write_text((ROOT / "suites" / "smoke.yaml").read_text()
                     + ("checks: {adapter_effect: true}\n" if checked else ""))
    state = {"adapter": adapter_state}
    servers = HttpServers()
    url = servers.start(type("Handler", (_Retrained,), {"state": state}))
    try:
        proc = run_harness("eval", str(suite), "--endpoint", url, "--model", "m", "--adapter", "v2=/srv/v2",
                           "--retries", "0", "--no-cache", "--out", str(tmp_path / "out"), timeout=120)
    finally:
        servers.close()
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    warned = [w for w in res["warnings"] if "all 6 served outputs equal the base's" in w]
    gates = [g for g in res["suites"][0]["gates"] if g["metric"] == "adapter_effect"]
    if adapter_state == "ignored":
        assert len(warned) == 1 and "adapters" in warned[0]
        assert proc.returncode == (1 if checked else 0), proc.stdout + proc.stderr
        assert [g["passed"] for g in gates] == ([False] if checked else [])
        if checked:
            assert "FAILED smoke / v2 / adapter_effect" in proc.stdout
    else:  # the adapter answers otherwise: it regressed (exit 1 from exact_match), but it was evaluated
        assert not warned and [g["passed"] for g in gates] == [True]
        assert "0 of 6 served outputs equal the base's" in gates[0]["reason"]


def test_an_unanswered_item_is_a_failed_row_with_its_reason_in_the_report_and_export(hostile, tmp_path):
    """A failed request is scored as the empty output: keywords' `forbidden` and repetition
    pass on "". The item table showed it as a pass with an empty output and `harness export`
    had no column saying it was never answered."""
    suite = tmp_path / "kw.yaml"
    suite.write_text("name: kw\nprompt: '{{ q }}'\ntemplate: chat\ngeneration: {max_tokens: 8}\n"
                     "scorers:\n  - keywords: {}\n"
                     "cases:\n  - {id: k1, q: 'Which port?', concepts: [], forbidden: ['8080']}\n")
    out = tmp_path / "out"
    proc = run_harness("eval", str(suite), "--endpoint", hostile("tool_calls"), "--model", "m", "--retries", "0",
                       "--no-cache", "--out", str(out), timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    item = json.loads((out / "results.json").read_text())["suites"][0]["models"]["base"]["items"][0]
    assert item["scores"]["keywords"]["passed"] is True  # the empty output's score, as scored
    from harness.history import read_csv
    from harness.reports.html import context

    (row,) = context(json.loads((out / "results.json").read_text()))["item_rows"]
    assert row["verdict"] == "fail" and row["detail"].startswith("no answer: finish_reason 'tool_calls'")
    assert "no answer: finish_reason" in (out / "index.html").read_text()
    export = run_harness("export", str(out), "--csv", str(tmp_path / "items.csv"))
    assert export.returncode == 0, export.stderr
    assert read_csv(tmp_path / "items.csv")["error"][0].startswith("finish_reason 'tool_calls'")


class _Shouting(_Retrained):
    """As ``_Retrained``, but the adapter it loaded answers in capitals: right (exact_match is
    case-insensitive on smoke) and not the base's text, so it has an effect."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.state.setdefault("requests", []).append(body.get("adapters"))
        question = body["messages"][-1]["content"]
        right = next(v for k, v in SMOKE_ANSWERS.items() if k in question)
        if body.get("adapters"):
            right = "no idea" if self.state.get("adapter") == "regressed" else right.upper()
        self._send(dict(GOOD, choices=[{"message": {"role": "assistant", "content": right},
                                        "finish_reason": "stop"}]))


@pytest.mark.parametrize("checked", [False, True])
def test_an_adapter_folder_changed_since_the_last_run_against_the_server_is_warned(tmp_path, checked):
    """A running mlx_lm.server keeps the adapter it loaded (and a prompt cache keyed by its
    path): after a retrain into the same folder it answered the new run with the old adapter,
    12 of 12 sql outputs, and nothing said so. The run that finds the folder's files changed
    since the last run against the same server says so, and when every served output equals
    the previous version's, that the server still serves the old adapter: a failed
    adapter_effect gate under `checks: {adapter_effect: true}`, and the same again next run
    until the server answers otherwise. Those answers are not cached: they were kept under the
    new adapter's fingerprint, so after the server was restarted on the regressed adapter the
    next run was served the old adapter's answers from the cache and passed."""
    import shutil

    suite = tmp_path / "smoke.yaml"
    suite.write_text((ROOT / "suites" / "smoke.yaml").read_text() + ("checks: {adapter_effect: true}\n" if checked else ""))
    adapter = tmp_path / "v2"
    shutil.copytree(ROOT / "fixtures" / "adapters" / "sql", adapter)
    state: dict = {}  # the adapter the server loaded answers right until it is "regressed" (restarted)
    servers = HttpServers()
    url = servers.start(type("Handler", (_Shouting,), {"state": state}))
    try:
        def run(name, code):
            proc = run_harness("eval", str(suite), "--endpoint", url, "--model", str(ROOT / "fixtures" / "model"),
                               "--adapter", f"v2={adapter}", "--retries", "0", "--cache-dir", str(tmp_path / "c"),
                               "--out", str(tmp_path / name), timeout=120)
            assert proc.returncode == code, proc.stdout + proc.stderr
            res = json.loads((tmp_path / name / "results.json").read_text())
            gates = [g for g in res["suites"][0]["gates"] if g["metric"] == "adapter_effect"]
            return proc, [w for w in res["warnings"] if "changed on disk" in w], gates
        _, warned, _ = run("first", 0)
        assert warned == []
        shutil.copy(ROOT / "fixtures" / "adapters" / "regress" / "adapters.safetensors", adapter)  # retrained
        for name in ("retrained", "not-restarted"):  # the server still answers with the old adapter
            proc, (stale,), gates = run(name, 1 if checked else 0)
            assert f"adapter v2 ({adapter})" in stale and url in stale and "restart the server" in stale
            assert "all 6 served outputs equal its previous version's" in stale
            assert "not cached: adapter v2" in proc.stderr
            assert [g["passed"] for g in gates] == ([False] if checked else [])
            if checked:
                assert "FAILED smoke / v2 / adapter_effect" in proc.stdout and gates[0]["details"]["served_old"]
        state["adapter"] = "regressed"  # restarted: the retrained adapter answers, and it regressed
        proc, (changed,), gates = run("restarted", 1)
        assert "FAILED smoke / v2 / exact_match" in proc.stdout  # not the old answers from the cache
        assert "previous version's" not in changed and "restart the server" in changed
        assert [g["passed"] for g in gates] == ([True] if checked else [])
        _, warned, _ = run("again", 1)
        assert warned == []
    finally:
        servers.close()


@pytest.mark.parametrize("between", ["an item added", "a failed --parity", "the base changed"])
def test_a_folder_the_server_may_still_serve_old_is_not_remembered_as_seen(tmp_path, between):
    """A changed folder's answers are not cached, but the run remembered its new fingerprint
    as seen whenever it could not show the server still served the old version: the next run
    cached the old version's answers under the new fingerprint, and after a restart on the
    regressed adapter the run after it was served them and passed (exit 0). It could not show
    it when the previous version's answers were known for only some items (an item added to
    the suite), when --parity ran (its gate failed: the server answered otherwise than the
    local engine), and when the base folder changed (no check at all). A folder is now
    remembered only when its served outputs differ from its previous version's, or --parity
    matched them to the local engine."""
    import shutil

    suite = tmp_path / "smoke.yaml"
    suite.write_text((ROOT / "suites" / "smoke.yaml").read_text())
    adapter, model = tmp_path / "v2", tmp_path / "model"
    shutil.copytree(ROOT / "fixtures" / "adapters" / "sql", adapter)
    shutil.copytree(ROOT / "fixtures" / "model", model)
    state: dict = {}
    servers = HttpServers()
    url = servers.start(type("Handler", (_Shouting,), {"state": state}))
    try:
        def run(name, code, *extra):
            proc = run_harness("eval", str(suite), "--endpoint", url, "--model", str(model), "--adapter",
                               f"v2={adapter}", "--retries", "0", "--cache-dir", str(tmp_path / "c"),
                               "--out", str(tmp_path / name), *extra, timeout=300)
            assert proc.returncode == code, proc.stdout + proc.stderr
            return proc, json.loads((tmp_path / name / "results.json").read_text())["warnings"]
        run("first", 0)
        if between == "the base changed":
            (model / "generation_config.json").write_text('{"note": "retrained"}')  # a file the loader reads
        else:
            shutil.copy(ROOT / "fixtures" / "adapters" / "regress" / "adapters.safetensors", adapter)
        if between == "an item added":
            last = '  - {id: day-1, category: recall, question: "How many days are in a week?", answer: "7"}\n'
            suite.write_text(suite.read_text().replace(last, last + (  # a case with no previous answer cached
                '  - {id: add-3, category: arithmetic, question: "What is 2 + 2 again?", answer: "4"}\n')))
        parity = ["--parity", "--parity-samples", "2"] if between == "a failed --parity" else []
        _, warned = run("changed", 1 if parity else 0, *parity)
        assert any("changed on disk" in w for w in warned)
        proc, warned = run("not-restarted", 0)  # the server still answers with the old weights
        assert any("changed on disk" in w for w in warned) and "not cached" in proc.stderr
        if between == "an item added":
            assert any("not in the cache for 1 of 7 items" in w for w in warned), warned
        elif between == "the base changed":
            assert any("still answers with the old model" in w for w in warned), warned
        state["adapter"] = "regressed"  # restarted: the new weights answer, and they regressed
        proc, _ = run("restarted", 1)
        assert "FAILED smoke / v2 / exact_match" in proc.stdout  # not the old answers from the cache
    finally:
        servers.close()


def test_an_endpoint_run_records_its_fingerprint_recipe_and_a_local_run_is_not_another_model(tmp_path):
    """An endpoint's fingerprint is a hash of what the server says it serves (and of the
    local folder's files when --model is one), not a file hash; it recorded no recipe, so a
    baseline approved from it read as recipe 1 and a local run against it was refused as 'an
    mlx-harness that computes model fingerprints differently (recipe 1 ...)'."""
    from harness.models import MODEL_FINGERPRINT_RECIPE

    servers = HttpServers()
    url = servers.start(type("Handler", (_Retrained,), {"state": {}}))
    try:
        def run(name, model):
            proc = run_harness("eval", SMOKE, "--endpoint", url, "--model", model, "--adapter", "v2=/srv/v2",
                               "--retries", "0", "--no-cache", "--out", str(tmp_path / name), timeout=120)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            return json.loads((tmp_path / name / "results.json").read_text())["models"]
        bare = run("bare", "m")
        folder = run("folder", str(ROOT / "fixtures" / "model"))
    finally:
        servers.close()
    assert {m["fingerprint_recipe"] for m in bare.values()} == {"endpoint-1"}
    assert {m["fingerprint_recipe"] for m in folder.values()} == {f"endpoint-1+files-{MODEL_FINGERPRINT_RECIPE}"}
    assert bare["base"]["fingerprint"].startswith("endpoint:")
    approved = run_harness("baseline", "approve", str(tmp_path / "folder"), "--to", str(tmp_path / "bl.json"))
    assert approved.returncode == 0, approved.stderr
    assert json.loads((tmp_path / "bl.json").read_text())["models"]["base"]["fingerprint_recipe"] == (
        f"endpoint-1+files-{MODEL_FINGERPRINT_RECIPE}")
    local = run_harness("eval", SMOKE, "--model", str(ROOT / "fixtures" / "model"), "--no-cache",
                        "--baseline", str(tmp_path / "bl.json"), "--out", str(tmp_path / "local"))
    assert local.returncode == 2, local.stdout + local.stderr
    assert "a served model's identity (--endpoint)" in local.stderr and "computes model fingerprints" not in local.stderr


class _StampedListing(_Retrained):
    """/v1/models as mlx_lm.server and vLLM answer it: `created` is the time of the request."""

    created: object = "now"

    def do_GET(self):
        created = int(time.time()) if self.created == "now" else self.created
        self._send({"object": "list", "data": [{"id": "m", "object": "model", "created": created}]})


@pytest.mark.parametrize("created, kept", [("now", False), (1_700_000_000, True)])
def test_a_listing_stamped_with_the_request_time_does_not_change_the_identity(tmp_path, created, kept):
    """A per-request `created` in the endpoint's identity changed its fingerprint every run:
    a run against its own approved baseline was refused (exit 2, 'base model fingerprint
    differs'), so --allow-fingerprint-mismatch became a habit that also lets a real model
    change through. A model's own time (Ollama: when it was pulled) stays in the identity."""
    servers = HttpServers()
    url = servers.start(type("Handler", (_StampedListing,), {"state": {}, "created": created}))
    try:
        def run(name, *extra):
            return run_harness("eval", SMOKE, "--endpoint", url, "--model", "m", "--retries", "0", "--no-cache",
                               "--out", str(tmp_path / name), *extra, timeout=120)
        assert run("first").returncode == 0
        approved = run_harness("baseline", "approve", str(tmp_path / "first"), "--to", str(tmp_path / "bl.json"))
        assert approved.returncode == 0, approved.stderr
        time.sleep(1.1)  # the next second: a per-request stamp differs
        second = run("second", "--baseline", str(tmp_path / "bl.json"))
    finally:
        servers.close()
    assert second.returncode == 0, second.stdout + second.stderr
    served = json.loads((tmp_path / "second" / "results.json").read_text())["environment"]["endpoint"]["served"]
    assert ("created" in served) is kept and served["id"] == "m"


# --- rate limits: 429/503 with Retry-After --------------------------------------------

def _limited(after: list[str | None], status: int = 429):
    """A server that answers its first len(after) POSTs with ``status`` (and ``Retry-After:
    after[i]`` when not None), then GOOD; ``.hits`` counts the POSTs it saw."""
    class Limited(_Hostile):
        hits = 0

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            n = type(self).hits
            type(self).hits += 1
            if n >= len(after):
                return self._send(json.dumps(GOOD).encode())
            body = b'{"error": {"message": "rate limited"}}'
            self.send_response(status)
            if after[n] is not None:
                self.send_header("Retry-After", after[n])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    return Limited


def _client(url: str, retries: int = 2, now: float = 1_000_000.0):
    """An EndpointClient whose waits are recorded, not slept."""
    from harness.backends.openai import EndpointClient, EndpointConfig

    slept: list[float] = []
    client = EndpointClient(EndpointConfig(url=url, model="m", retries=retries, timeout=10),
                            sleep=slept.append, now=lambda: now, jitter=lambda: 0.5)
    return client, slept


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_waited_for(status):
    """The retries used to run out after 0.5 + 1 s whatever the server asked: a hosted API
    that rate-limits for 20 s failed every item it limited."""
    servers = HttpServers()
    try:
        handler = _limited(["20", "7"], status)
        client, slept = _client(servers.start(handler))
        answer = client.post("/v1/chat/completions", {"model": "m"})
        assert answer["choices"][0]["message"]["content"] == "Paris"
        assert slept == [20.0, 7.0] and handler.hits == 3
    finally:
        servers.close()


def test_retry_after_as_an_http_date_is_waited_for():
    from email.utils import formatdate

    now = 1_700_000_000.0
    servers = HttpServers()
    try:
        client, slept = _client(servers.start(_limited([formatdate(now + 30, usegmt=True)])), now=now)
        client.post("/v1/chat/completions", {"model": "m"})
        assert slept == [30.0]
    finally:
        servers.close()


def test_without_retry_after_the_backoff_is_exponential_and_jittered():
    from harness.backends.openai import EndpointClient, EndpointConfig

    servers = HttpServers()
    try:
        url = servers.start(_limited([None, None, None]))
        dice = iter([0.0, 0.999, 0.5])
        slept: list[float] = []
        client = EndpointClient(EndpointConfig(url=url, model="m", retries=3, backoff=1.0),
                                sleep=slept.append, jitter=lambda: next(dice))
        client.post("/v1/chat/completions", {"model": "m"})
        # backoff * 2**attempt, times a factor in [0.5, 1): concurrent requests do not return in step
        assert slept == pytest.approx([0.5, 2 * 0.9995, 4 * 0.75])
    finally:
        servers.close()


def test_a_retry_after_past_the_cap_fails_the_item_at_once_naming_the_request():
    """Retry-After: 3600 on every answer: waiting would hold the run for hours; the item fails
    now, its error naming what the server asked."""
    servers = HttpServers()
    try:
        handler = _limited(["3600"] * 10)
        client, slept = _client(servers.start(handler), retries=5)
        from harness.backends.openai import RequestFailed

        with pytest.raises(RequestFailed) as exc:
            client.post("/v1/chat/completions", {"model": "m"})
        assert slept == [] and handler.hits == 1
        assert str(exc.value).startswith("HTTP 429: ")
        assert ("the server asks to retry after 3600 s (Retry-After: 3600), more than the 60 s the harness waits"
                in str(exc.value))
    finally:
        servers.close()


def test_the_waits_of_one_request_are_bounded_in_all():
    from harness.backends.openai import RETRY_BUDGET_S, RequestFailed

    servers = HttpServers()
    try:
        client, slept = _client(servers.start(_limited(["59"] * 20)), retries=20)
        with pytest.raises(RequestFailed) as exc:
            client.post("/v1/chat/completions", {"model": "m"})
        assert sum(slept) <= RETRY_BUDGET_S and slept == [59.0] * 3
        assert f"would pass the {RETRY_BUDGET_S:.0f} s the harness waits in all for one request" in str(exc.value)
        assert "after 4 attempts" in str(exc.value)
    finally:
        servers.close()


def test_a_server_that_always_asks_for_an_hour_fails_the_run_not_hangs_it(tmp_path):
    """End to end, the real clock: every item fails at once with the server's request named."""
    servers = HttpServers()
    try:
        url = servers.start(_limited(["3600"] * 1000))
        proc = run_harness("eval", SMOKE, "--endpoint", url, "--model", "m", "--no-cache",
                           "--out", str(tmp_path / "out"), timeout=120)
    finally:
        servers.close()
    assert proc.returncode == 1, proc.stderr[-2000:]
    items = _items(tmp_path, "out")
    assert len(items) == 6 and all("Retry-After: 3600" in i["error"] for i in items)
    assert "endpoint_requests" in proc.stdout


def test_retry_after_values():
    from harness.backends.openai import retry_after_seconds

    assert retry_after_seconds("120", 0) == 120.0
    assert retry_after_seconds(" 1.5 ", 0) == 1.5
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0 - 10) == 10.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0 + 99) == 0.0  # past: now
    for unreadable in (None, "", "soon", "-5", "nan", "inf"):
        assert retry_after_seconds(unreadable, 0) is None


# --- --parity checks its local model as `harness eval` does --------------------------

class _Completions(_Hostile):
    """Answers every POST with a raw completion; ``.hits`` counts them."""
    hits = 0

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).hits += 1
        self._send(json.dumps({"choices": [{"text": "4", "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 5, "completion_tokens": 1}}).encode())


def _parity_run(tmp_path, local_model, suite):
    servers = HttpServers()
    handler = type("Handler", (_Completions,), {"hits": 0})
    try:
        proc = run_harness("eval", str(suite), "--endpoint", servers.start(handler), "--model", "m",
                           "--parity", "--parity-model", str(local_model), "--retries", "0", "--no-cache",
                           "--out", str(tmp_path / "out"), timeout=180)
    finally:
        servers.close()
    assert proc.returncode != 3, proc.stderr[-2000:]
    return proc, handler.hits


def test_parity_warns_of_prompts_past_the_local_models_positions(tmp_path):
    """`harness eval` warns when prompt + max_tokens pass the model's positions; --parity
    generated locally past them without a word (and the served weights have the same positions)."""
    from conftest import few_positions_llama
    from test_eval_positions import write_suite

    suite = write_suite(tmp_path)
    proc, hits = _parity_run(tmp_path, few_positions_llama(tmp_path / "model", 24), suite)
    assert proc.returncode in (0, 1) and hits == 4, proc.stderr[-2000:]
    [header] = json.loads((tmp_path / "out" / "results.json").read_text())["suites"]
    [warning] = [w for w in header["warnings"] if "positions" in w]
    assert warning.startswith(f"suite {suite}: 3 of 4 items ('long-0', 'long-1', 'long-2') need more positions "
                              "than the model has")
    assert "the model has 24 (config.json's max_position_embeddings (24))" in warning


def test_parity_on_a_learned_position_table_is_refused_before_any_request(tmp_path):
    from conftest import tiny_gpt2
    from test_eval_positions import write_suite

    suite = write_suite(tmp_path)
    proc, hits = _parity_run(tmp_path, tiny_gpt2(tmp_path / "gpt2", 24), suite)
    assert proc.returncode == 2, proc.stderr[-2000:]
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("harness: error:")]
    assert f"{suite} [generation.max_tokens]: 3 of 4 items ('long-0', 'long-1', 'long-2') need more positions" in line
    assert hits == 0 and not (tmp_path / "out").exists()


def test_parity_refuses_prompt_ids_past_the_local_models_vocabulary(tmp_path):
    from test_eval_positions import write_suite
    from test_vocab_fit import small_model

    suite = write_suite(tmp_path)
    proc, hits = _parity_run(tmp_path, small_model(tmp_path / "model", vocab=256), suite)
    assert proc.returncode == 2, proc.stderr[-2000:]
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("harness: error:")]
    assert "suite 'lengths', case " in line and "but the model's vocab_size is 256" in line
    assert hits == 0 and not (tmp_path / "out").exists()
