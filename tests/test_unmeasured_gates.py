"""A gate the suite wrote on a metric whose scorer the run skipped fails (kind `unmeasured`).

An endpoint returns text only (no logits, no timings) and `harness score` has no model, so
`latency` and `token_accuracy` are skipped there. Their written gates were a warning and
the run said PASS, exit 0: `latency: {max: 2.0}` through `--endpoint` was a green verdict
that checked nothing. `harness eval` on a local model never skips them: a suite with
`latency` generates afresh even on a warm cache, so the shipped latency suite still passes.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler

import yaml

from conftest import FIXTURE_MODEL, ROOT, run_harness
from hostile_util import HttpServers

SMOKE = ROOT / "suites" / "smoke.yaml"
ANSWERS = {"2 + 2": "4", "10 + 5": "15", "3 times": "12", "France": "Paris", "sky": "blue", "week": "7"}


class _Answers(BaseHTTPRequestHandler):
    """An OpenAI-compatible server answering smoke's items right (text only, as any endpoint)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._send({"data": []})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        question = body["messages"][-1]["content"]
        text = next(v for k, v in ANSWERS.items() if k in question)
        self._send({"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1}})

    def _send(self, obj) -> None:
        raw = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def _smoke_with(tmp_path, scorer: str, gate: dict):
    doc = yaml.safe_load(SMOKE.read_text())
    doc["scorers"].append({scorer: {}})
    doc["gates"].update(gate)
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _assert_failed_everywhere(out, proc, metric: str, scorer: str, why: str) -> dict:
    """The unmeasured gate fails the run and shows as every failed gate does: the FAILED line,
    results.json, summary.md, junit.xml, the scorecard, `harness verdict`."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["verdict"] == "fail"
    (gate,) = [g for g in res["suites"][0]["gates"] if not g["passed"]]
    assert (gate["metric"], gate["kind"]) == (metric, "unmeasured")
    assert f"suite 'smoke' gates {metric}" in gate["reason"] and f"scorer {scorer} was skipped" in gate["reason"]
    assert why in gate["reason"] and "remove the gate" in gate["reason"]
    assert f"FAILED smoke / base / {metric}: suite 'smoke' gates {metric}" in proc.stdout
    assert f"`{metric}` | unmeasured" in (out / "summary.md").read_text()
    failures = [c for c in ET.parse(out / "junit.xml").iter("testcase") if c.find("failure") is not None]
    assert [(c.get("name"), c.find("failure").get("type")) for c in failures] == [(f"{metric} unmeasured",
                                                                                  "unmeasured")]
    assert f"scorer {scorer} was skipped in this run" in (out / "index.html").read_text()
    verdict = run_harness("verdict", str(out))
    assert verdict.returncode == 1, verdict.stdout + verdict.stderr
    return gate


def _eval_through_endpoint(suite, out):
    """`harness eval SUITE --endpoint` against a server that answers every item right."""
    servers = HttpServers()
    url = servers.start(_Answers)
    try:
        return run_harness("eval", str(suite), "--endpoint", url, "--model", "m", "--retries", "0",
                           "--no-cache", "--out", str(out), timeout=120)
    finally:
        servers.close()


def test_a_latency_gate_through_an_endpoint_fails_unmeasured(tmp_path):
    suite = _smoke_with(tmp_path, "latency", {"latency": {"max": 2.0}})
    out = tmp_path / "out"
    proc = _eval_through_endpoint(suite, out)
    gate = _assert_failed_everywhere(out, proc, "latency", "latency", "an endpoint returns text only")
    assert gate["details"]["written"] == ["max"]
    # every item answered right: the endpoint itself passed
    res = json.loads((out / "results.json").read_text())
    assert [g["passed"] for g in res["suites"][0]["gates"] if g["metric"] == "endpoint_requests"] == [True]


def test_a_token_accuracy_gate_on_stored_completions_fails_unmeasured(tmp_path):
    suite = _smoke_with(tmp_path, "token_accuracy", {"token_accuracy": {"min": 0.1}})
    completions = tmp_path / "c.jsonl"
    completions.write_text("".join(json.dumps({"id": i, "output": a}) + "\n"
                                   for i, a in [("add-1", "4"), ("add-2", "15"), ("mul-1", "12"),
                                                ("cap-1", "Paris"), ("col-1", "blue"), ("day-1", "7")]))
    out = tmp_path / "out"
    proc = run_harness("score", str(suite), "--completions", str(completions), "--out", str(out))
    _assert_failed_everywhere(out, proc, "token_accuracy", "token_accuracy",
                              "stored completions were scored without one")


def test_the_shipped_latency_suite_is_measured_again_on_a_warm_cache(tmp_path):
    """Its written peak-memory gate never meets a skipped scorer in `harness eval`: a suite with
    latency bypasses the completion cache, so the second run (as `nox -s eval`'s second run)
    measures it again and passes as the first did."""
    env = {"HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    for run in ("cold", "warm"):
        out = tmp_path / run
        proc = run_harness("eval", "suites/latency.yaml", "--limit", "3", "--model", str(FIXTURE_MODEL),
                           "--adapter", f"sql={ROOT / 'fixtures' / 'adapters' / 'sql'}", "--out", str(out), env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stderr.count("0 from cache, 3 generated") == 2, proc.stderr
        res = json.loads((out / "results.json").read_text())
        assert res["suites"][0]["scorers"]["latency"]["skipped"] is None
        gates = {(g["metric"], g["kind"]): g["passed"] for g in res["suites"][0]["gates"]}
        assert gates == {("latency.peak_memory_gb.max", "rel_tolerance_vs_base"): True}


def test_each_skipped_scorer_says_what_it_lacked_through_an_endpoint(tmp_path):
    """Every scorer an endpoint run skipped read the same text ('needs the model itself
    (logits, timings)'), whatever it needed: a failed gate on token_accuracy and one on
    latency gave the same reason. Each now names what it needed and the endpoint's lack."""
    doc = yaml.safe_load(SMOKE.read_text())
    doc["scorers"] += [{"latency": {}}, {"token_accuracy": {}}]
    doc["gates"].update({"latency": {"max": 2.0}, "token_accuracy": {"min": 0.1}})
    suite = tmp_path / "smoke.yaml"
    suite.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "out"
    proc = _eval_through_endpoint(suite, out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    res = json.loads((out / "results.json").read_text())
    skipped = {n: s["skipped"] for n, s in res["suites"][0]["scorers"].items() if s["skipped"]}
    assert set(skipped) == {"latency", "token_accuracy"}
    assert skipped["latency"] != skipped["token_accuracy"]
    assert "logits" in skipped["token_accuracy"] and "logits" not in skipped["latency"]
    assert "time to first token" in skipped["latency"] and "peak memory" in skipped["latency"]
    assert "time to first token" not in skipped["token_accuracy"]
    for why in skipped.values():  # the endpoint's words are added, not substituted
        assert "an endpoint returns text only" in why and "stored completions" not in why
    gates = {g["metric"]: g for g in res["suites"][0]["gates"] if g["kind"] == "unmeasured"}
    assert set(gates) == {"latency", "token_accuracy"}
    for metric, gate in gates.items():
        assert skipped[metric] in gate["reason"] and gate["details"]["skipped"] == skipped[metric]
    page = (out / "index.html").read_text()
    assert "logits over each target token" in page and "time to first token" in page
