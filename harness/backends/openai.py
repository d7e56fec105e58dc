"""An OpenAI-compatible endpoint as the model: ``harness eval SUITES --endpoint URL --model NAME``.

Served models (``mlx_lm.server``, LM Studio, vLLM, llama.cpp) are evaluated through
``/v1/chat/completions`` for ``template: chat`` suites (the suite's messages; the server
applies its chat template) and ``/v1/completions`` for ``template: raw`` suites (the
rendered prompt text). Everything after generation (scorers, metrics, gates, reports) is
the local path's.

- Bounded: at most ``concurrency`` requests in flight; each attempt has ``timeout`` seconds
  of wall clock from connect to the last byte (a watchdog shuts its socket, so a server that
  drips its answer a byte at a time cannot hold it), and at most 8 MiB of answer; connection
  errors, timeouts, 429 and 5xx are retried ``retries`` times: after the wait the server asks
  for in ``Retry-After`` (seconds or an HTTP date), else exponential backoff with jitter. One
  wait is at most ``MAX_RETRY_AFTER_S`` and one request's waits together at most
  ``RETRY_BUDGET_S``: a server that asks for longer fails the item at once, its request named.
  Answers are untrusted: JSON nested too deep or of the wrong shape fails the item, never the run;
  so does a 200 that is not the model's answer (no text, a tool call, the content filter, another
  model named in ``model``): scored as an empty output it would pass some scorers. A request that still fails is reported on its item (``error``), scored as an
  empty output, and fails the ``endpoint_requests`` gate: a run never hangs on a server.
- ``--adapter NAME=PATH`` sends ``"adapters": PATH`` per request, as ``mlx_lm.server``
  takes it (the path is the server's; with mlx_lm.server, ``--model`` must name the model
  path, not ``default_model``, or the server ignores per-request adapters).
- The cache key holds the endpoint's model identity: URL, model name, what ``/v1/models``
  says of it (less a ``created`` that is only the time of the request), and the weights' fingerprint when NAME is a local folder. Completions are
  cached only when the model and the adapter are local folders (hashed here): under a bare
  name, retrained weights would be served the old answers. Nor when such a folder changed
  since the last run against this server, which may still hold the old weights, and it is
  remembered as seen only when the served outputs differ from its previous version's or
  ``--parity`` matched them to the local engine. Cached answers of a greedy suite
  (temperature 0) are spot-checked: ``SPOT_CHECK_ITEMS`` spread items requested live; any
  that differs (the first run cached an old adapter's answers under the new fingerprint,
  then the server was restarted) discards them, every item is requested and re-cached, and
  a warning says so. Sampled suites are not checked (their answers vary by draw).
- ``--parity`` generates a spread sample of items with the local engine on the same
  weights, greedily, and compares texts with the endpoint's greedy outputs: a server that
  truncates or drops context fails the ``endpoint_parity`` gate. An output that parts from the
  local one at near-ties (every served token from there within the weights' rounding of the
  local top logit, ``_parts_at_near_tie``) matches: on bfloat16 weights a correct server, which
  batches and caches prompts otherwise, parts so on 1 item in 6. The local model is loaded and
  checked as ``harness eval`` checks it (token ids, positions) before the first request.

HTTP is the standard library's ``urllib``: no client dependency.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

from ..errors import HarnessError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# A rate-limited API (429/503 with Retry-After) is waited for, within bounds: one wait at most
# MAX_RETRY_AFTER_S, one request's waits at most RETRY_BUDGET_S in all. A server asking for
# longer fails the item now (named in its error), rather than hold the run for an hour.
MAX_RETRY_AFTER_S = 60.0
RETRY_BUDGET_S = 180.0


@dataclass
class EndpointConfig:
    url: str
    model: str
    concurrency: int = 4
    timeout: float = 60.0
    retries: int = 2
    backoff: float = 0.5
    api_key: str | None = None

    def __post_init__(self) -> None:
        url = self.url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise HarnessError(f"--endpoint {self.url!r} is not an http(s) URL", field="--endpoint",
                               hint="for example --endpoint http://127.0.0.1:8080")
        if url.endswith("/v1"):
            url = url[:-3]
        self.url = url
        if self.concurrency < 1:
            raise HarnessError("--concurrency must be at least 1", field="--concurrency")
        if self.timeout <= 0:
            raise HarnessError("--timeout must be positive", field="--timeout")
        if self.retries < 0:
            raise HarnessError("--retries must be 0 or more", field="--retries")
        if self.api_key is None:
            self.api_key = os.environ.get("HARNESS_API_KEY") or os.environ.get("OPENAI_API_KEY")


class RequestFailed(Exception):
    def __init__(self, message: str, retryable: bool, retry_after: str | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after  # the server's Retry-After header, as sent


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date, RFC 9110);
    None when absent or unreadable (then the backoff applies), 0 for a date in the past."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)  # the RFC says an integer; some servers send "1.5"
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        return None
    return max(0.0, when.timestamp() - now)


MAX_ANSWER_BYTES = 8 << 20  # far beyond any completion


class _Watchdog:
    """Shuts the sockets of one attempt when its wall-clock deadline passes.

    A socket timeout bounds each read, not the whole answer: a server that sends a byte every
    few seconds would hold a request (and the run) for ever. Shutting the socket down wakes
    the blocked read, whichever phase it is in (headers or body)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket | None) -> None:
        with self._lock:
            if sock is not None:
                self._socks.append(sock)
            if self.expired:
                self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._socks:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket | None) -> None:
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _opener(dog: _Watchdog) -> urllib.request.OpenerDirector:
    """urllib (proxies, HTTPS as usual) with connections that register their socket with ``dog``."""

    class Conn(http.client.HTTPConnection):
        def connect(self):
            super().connect()
            dog.watch(self.sock)

    class SecureConn(http.client.HTTPSConnection):
        def connect(self):
            super().connect()
            dog.watch(self.sock)

    class Plain(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(Conn, req)

    class Secure(urllib.request.HTTPSHandler):
        def https_open(self, req):
            extra = {"check_hostname": self._check_hostname} if hasattr(self, "_check_hostname") else {}
            return self.do_open(SecureConn, req, context=self._context, **extra)

    return urllib.request.build_opener(Plain, Secure)


def _parse_json(raw: bytes) -> object:
    """JSON from an untrusted server: malformed, nested past the parser's depth or not
    UTF-8 is a failed request, never an exception out of the run."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RequestFailed(f"response is not usable JSON ({type(exc).__name__}): {raw[:120]!r}", False) from None


def _fetch(req: urllib.request.Request, seconds: float, limit: int) -> bytes:
    """One HTTP exchange, bounded in wall clock (``seconds``) and size (``limit`` bytes)."""
    with _Watchdog(seconds) as dog:
        try:
            with _opener(dog).open(req, timeout=seconds) as resp:
                raw = resp.read(limit + 1)
        except urllib.error.HTTPError as exc:
            try:
                detail = exc.read(500).decode("utf-8", "replace").strip()
            except (OSError, http.client.HTTPException):
                detail = ""
            retry_after = exc.headers.get("Retry-After") if exc.headers is not None else None
            raise RequestFailed(f"HTTP {exc.code}: {detail[:200]}", exc.code in RETRY_STATUS, retry_after) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, http.client.HTTPException,
                ValueError) as exc:
            if dog.expired:
                raise RequestFailed(f"no complete answer within {seconds:g} s (--timeout)", True) from None
            reason = getattr(exc, "reason", exc)
            raise RequestFailed(f"{type(reason).__name__}: {reason}", True) from None
    if dog.expired:
        raise RequestFailed(f"no complete answer within {seconds:g} s (--timeout)", True)
    if len(raw) > limit:
        raise RequestFailed(f"response larger than {limit >> 20} MiB", False)
    return raw


class EndpointClient:
    """POSTs to one endpoint. ``sleep``, ``now`` and ``jitter`` (a float in [0, 1)) are the
    clock and the dice of the retry waits, replaceable so tests wait for nothing."""

    def __init__(self, config: EndpointConfig, *, sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], float] = time.time, jitter: Callable[[], float] = random.random):
        self.config = config
        self.sleep = sleep
        self.now = now
        self.jitter = jitter

    def _post_once(self, path: str, body: dict) -> dict:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        req = urllib.request.Request(self.config.url + path, data=data, headers=headers, method="POST")
        answer = _parse_json(_fetch(req, self.config.timeout, MAX_ANSWER_BYTES))
        if not isinstance(answer, dict):
            raise RequestFailed(f"response is not a JSON object: {_preview(answer, 120)}", False)
        return answer

    def _wait(self, exc: RequestFailed, attempt: int, waited: float) -> float | str:
        """Seconds to wait before the next attempt, or why not to make one."""
        asked = retry_after_seconds(exc.retry_after, self.now())
        if asked is not None:
            if asked > MAX_RETRY_AFTER_S:
                return (f"the server asks to retry after {asked:.0f} s (Retry-After: {exc.retry_after}), "
                        f"more than the {MAX_RETRY_AFTER_S:.0f} s the harness waits")
            wait = asked
        else:  # exponential backoff, jittered so concurrent requests do not come back together
            wait = min(MAX_RETRY_AFTER_S, self.config.backoff * (2 ** attempt) * (0.5 + self.jitter() / 2))
        if waited + wait > RETRY_BUDGET_S:
            why = f"Retry-After: {exc.retry_after}" if asked is not None else "backoff"
            return (f"waiting {wait:.0f} s more ({why}) would pass the {RETRY_BUDGET_S:.0f} s "
                    "the harness waits in all for one request")
        return wait

    def post(self, path: str, body: dict) -> dict:
        """POST with retries (after the server's Retry-After, else exponential backoff with
        jitter); raises RequestFailed after the last try or once the waits would pass their bounds."""
        attempt = 0
        waited = 0.0
        while True:
            try:
                return self._post_once(path, body)
            except RequestFailed as exc:
                tries = f"after {attempt + 1} attempts" if attempt else ""
                if not exc.retryable or attempt >= self.config.retries:
                    if attempt:
                        raise RequestFailed(f"{exc} ({tries})", False) from None
                    raise
                wait = self._wait(exc, attempt, waited)
                if isinstance(wait, str):
                    raise RequestFailed(f"{exc} ({wait}{'; ' + tries if tries else ''})", False) from None
                self.sleep(wait)
                waited += wait
                attempt += 1

    def models_listing(self) -> dict | None:
        """What GET /v1/models says of our model (None when it says nothing, fails or is malformed)."""
        req = urllib.request.Request(self.config.url + "/v1/models", headers={"Accept": "application/json"})
        if self.config.api_key:
            req.add_header("Authorization", f"Bearer {self.config.api_key}")
        try:
            data = _parse_json(_fetch(req, min(self.config.timeout, 10), 1 << 20))
        except RequestFailed:
            return None
        entries = data.get("data") if isinstance(data, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("id") == self.config.model:
                served = {k: entry.get(k) for k in ("id", "owned_by", "created")
                          if k in entry and isinstance(entry.get(k), (str, int, float, type(None)))}
                if _is_now(served.get("created"), self.now()):
                    del served["created"]
                return served
        return None


CREATED_IS_NOW_S = 300  # a `created` this close to our clock is the request's time, not the model's


def _is_now(created: object, now: float) -> bool:
    """Whether a listing's ``created`` is the time of the request: mlx_lm.server and vLLM
    stamp each answer with ``int(time.time())``. In the identity it changed the endpoint's
    fingerprint every run, so every run refused its baseline ('base model fingerprint
    differs') and only --allow-fingerprint-mismatch, which also lets a real model change
    through, got past it. A model's own time (Ollama: when it was pulled) is kept."""
    return (isinstance(created, (int, float)) and not isinstance(created, bool)
            and abs(created - now) < CREATED_IS_NOW_S)


# How model_identity's fingerprint is computed: sha256 of {endpoint URL, model name, its
# /v1/models entry less a `created` that is the request's time, the local folder's
# base_fingerprint}. Raise it when an unchanged server would hash differently.
ENDPOINT_IDENTITY_RECIPE = 1


def endpoint_fingerprint_recipe(identity: dict) -> str:
    """The ``fingerprint_recipe`` of an endpoint run's models: ``endpoint-N``, and
    ``+files-M`` when the identity holds a local folder's file hash (``MODEL_FINGERPRINT_RECIPE``
    M, which changes that hash too). Text, so it never equals a file-hash recipe (an integer):
    a baseline or trend compares an endpoint's fingerprint only with another endpoint's of
    the same recipe, and a local run's is "another recipe", not "another base model"."""
    from ..models import MODEL_FINGERPRINT_RECIPE

    recipe = f"endpoint-{ENDPOINT_IDENTITY_RECIPE}"
    return recipe + (f"+files-{MODEL_FINGERPRINT_RECIPE}" if identity.get("local_fingerprint") else "")


def model_identity(client: EndpointClient) -> tuple[str, dict]:
    """(fingerprint, identity) of the endpoint's model, for the cache key and results.json
    (how the fingerprint is computed: ``ENDPOINT_IDENTITY_RECIPE``)."""
    from ..models import base_fingerprint

    identity: dict = {"endpoint": client.config.url, "model": client.config.model,
                      "served": client.models_listing(), "local_fingerprint": None}
    local = Path(client.config.model)
    if local.is_dir():
        try:
            identity["local_fingerprint"] = base_fingerprint(local)
        except OSError:
            pass
    return identity_fingerprint(identity), identity


def identity_fingerprint(identity: dict) -> str:
    """The fingerprint of an endpoint identity (``model_identity``'s): also of the identity a
    previous run saw, its local folder's files as they were, whose answers the cache holds."""
    from ..models import ENDPOINT_FINGERPRINT_PREFIX

    blob = json.dumps(identity, sort_keys=True).encode()
    return ENDPOINT_FINGERPRINT_PREFIX + hashlib.sha256(blob).hexdigest()[:32]


def request_body(suite, case, config: EndpointConfig, adapter_path: str | None, greedy: bool = False) -> tuple[str, dict]:
    """(path, JSON body) of one case: chat suites send messages, raw suites the prompt text."""
    from ..prompts import messages_for

    gen = suite.generation
    body: dict = {"model": config.model, "max_tokens": gen.max_tokens,
                  "temperature": 0.0 if greedy else gen.temperature, "stream": False}
    if not greedy and gen.top_p < 1.0:
        body["top_p"] = gen.top_p
    if gen.stop:
        body["stop"] = list(gen.stop)
    if not greedy and gen.temperature > 0:
        body["seed"] = gen.seed
    if gen.repetition_penalty and not greedy:
        body["repetition_penalty"] = gen.repetition_penalty
    if adapter_path:
        body["adapters"] = adapter_path
    if suite.template == "chat":
        body["messages"] = messages_for(case.prompt, suite.system)
        if suite.chat_template_kwargs:  # mlx_lm.server and vLLM read it (e.g. enable_thinking)
            body["chat_template_kwargs"] = dict(suite.chat_template_kwargs)
        return "/v1/chat/completions", body
    body["prompt"] = f"{suite.system}\n\n{case.prompt}" if suite.system else case.prompt
    return "/v1/completions", body


def _prompt_key(suite, case) -> list:
    """What the endpoint is sent for a case (the cache key's prompt part)."""
    from ..prompts import messages_for

    if suite.template == "chat":
        key = ["chat", messages_for(case.prompt, suite.system)]
        return key + [suite.chat_template_kwargs] if suite.chat_template_kwargs else key
    return ["raw", f"{suite.system}\n\n{case.prompt}" if suite.system else case.prompt]


def _preview(obj: object, size: int = 160) -> str:
    """The start of an untrusted JSON value for a message (never raises, however deep it is)."""
    try:
        return json.dumps(obj)[:size]
    except (ValueError, TypeError, RecursionError):
        return f"<{type(obj).__name__}>"


def _count(value: object) -> int:
    """A token count from an untrusted answer: a non-negative int, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


# finish_reasons that say the text is not the model's answer to the prompt: scored as output,
# an empty or cut text passes every scorer that rewards saying little (forbidden keywords,
# repetition, length), so the item fails instead.
NOT_AN_ANSWER = {
    "content_filter": "the server's content filter withheld or cut the answer",
    "tool_calls": "the model called a tool instead of answering",
    "function_call": "the model called a function instead of answering",
    "error": "the server reports an error in place of the answer",
}


def _answer_text(choice: dict) -> str:
    """The answer's text: ``text`` (completions) or ``message.content`` (chat; a string, or a
    list of text parts). Absent or null is a failed request, not an empty answer: a tool
    call or a refusal has ``content: null``, and an empty output passes some scorers."""
    text = choice.get("text")
    if isinstance(text, str):
        return text
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    if isinstance(message, dict):
        extra = [k for k in ("tool_calls", "function_call", "refusal") if message.get(k)]
        why = f"message.content is {_preview(content, 60)}" + (f" (it carries {', '.join(extra)})" if extra else "")
    else:
        why = f"neither `text` nor a `message` object: {_preview(choice, 120)}"
    raise RequestFailed(f"the answer has no text: {why}", False)


def _same_model(answered: str, requested: str) -> bool:
    """Whether the response's ``model`` names the requested model: the same name, a tagged or
    dated variant of it (``gpt-4o`` -> ``gpt-4o-2024-08-06``, ``llama3`` -> ``llama3:latest``),
    or a local folder's name."""
    a, r = answered.strip().lower(), requested.strip().lower()
    if a == r or any(a.startswith(r + sep) for sep in (":", "@")):
        return True
    if a.startswith(r + "-") and a[len(r) + 1:][:1].isdigit():  # a snapshot; gpt-4o-mini is not gpt-4o
        return True
    return a == Path(r.rstrip("/")).name or Path(a.rstrip("/")).name == Path(r.rstrip("/")).name != ""


def _completion_from(response: dict, stop: tuple[str, ...], elapsed: float, requested_model: str | None = None,
                     max_tokens: int | None = None) -> dict:
    from ..generation import cut_at_stop

    if isinstance(response, dict) and response.get("error"):  # an error beside choices is still an error
        raise RequestFailed(f"the server reports an error: {_preview(response.get('error'))}", False)
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise RequestFailed(f"response has no choices: {_preview(response)}", False)
    served = response.get("model")
    if requested_model and isinstance(served, str) and served and not _same_model(served, requested_model):
        raise RequestFailed(f"answered by model {served[:100]!r}, not the requested {requested_model!r}: "
                            "the server substituted another model (load the requested one, or pass "
                            "--model the name the server serves it under)", False)
    choice = choices[0]
    reason = choice.get("finish_reason")
    if isinstance(reason, str) and reason in NOT_AN_ANSWER:
        raise RequestFailed(f"finish_reason {reason!r}: {NOT_AN_ANSWER[reason]}", False)
    text = _answer_text(choice)
    cut = cut_at_stop(text, stop) if stop else text  # some servers return the stop string
    finish = "length" if reason == "length" else "stop"
    usage = response.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    written = _count(usage.get("completion_tokens"))
    if max_tokens is not None and written > max_tokens:  # the suite's max_tokens is part of the test
        raise RequestFailed(f"the server wrote {written} tokens, past max_tokens {max_tokens}: it ignores "
                            "max_tokens, so the answer is not the one the suite asks for", False)
    return {"output": cut, "finish_reason": "stop" if cut != text else finish,
            "prompt_tokens": _count(usage.get("prompt_tokens")), "output_tokens": written,
            "output_token_ids": [], "stopped_by": "stop_string" if cut != text else
            ("length" if finish == "length" else "eos"),
            "ttft_s": None, "decode_tps": None, "prompt_tps": None, "total_s": elapsed,
            "peak_memory_gb": None, "cached": False}


def _failed(message: str) -> dict:
    return {"output": "", "finish_reason": "length", "prompt_tokens": 0, "output_tokens": 0,
            "output_token_ids": [], "stopped_by": "length", "ttft_s": None, "decode_tps": None,
            "prompt_tps": None, "total_s": None, "peak_memory_gb": None, "cached": False, "error": message}


def generate_via_endpoint(client: EndpointClient, suite, cases, adapter_path: str | None,
                          greedy: bool = False) -> list[dict]:
    """One completion dict per case, in order; failures carry ``error`` (never raises on HTTP)."""
    def one(case) -> dict:
        path, body = request_body(suite, case, client.config, adapter_path, greedy)
        t0 = time.perf_counter()
        try:
            return _completion_from(client.post(path, body), tuple(suite.generation.stop),
                                    time.perf_counter() - t0, client.config.model, body.get("max_tokens"))
        except RequestFailed as exc:
            return _failed(str(exc))

    with ThreadPoolExecutor(max_workers=client.config.concurrency) as pool:
        return list(pool.map(one, cases))


# --- the run ------------------------------------------------------------------------

def _draw(client: EndpointClient, suite, adapter_path: str | None, fingerprint: str, adapter_fp: str | None,
          cache, live: bool) -> tuple[list[dict], tuple[int, int] | None]:
    """One completion dict per case of ``suite``: the cache first (unless ``live``), then the
    endpoint; and the spot check's (differed, checked) when cached answers were checked
    (``_spot_check``; None when none were), all requested again when any differed."""
    from ..cache import completion_key
    from ..generation import Completion

    keys = [completion_key(fingerprint, adapter_fp, _prompt_key(suite, c), suite.generation.cache_key(),
                           cache.versions) for c in suite.cases] if cache is not None else []
    found = cache.get_many(keys) if cache is not None and not live else {}
    checked: dict[int, dict] = {}
    spot = None
    if found and suite.generation.temperature == 0:  # sampled answers differ by draw: not checked
        checked, differed = _spot_check(client, suite, adapter_path,
                                        {i: found[k] for i, k in enumerate(keys) if k in found})
        spot = (differed, len(checked))
        if differed:
            found = {}  # not trusted: every item is requested, the checked ones already were
        else:
            checked = {}  # equal: the cached answers stand
    todo = [i for i in range(len(suite.cases)) if i not in checked and (not keys or keys[i] not in found)]
    t0 = time.perf_counter()
    fresh = generate_via_endpoint(client, suite, [suite.cases[i] for i in todo], adapter_path)
    elapsed = time.perf_counter() - t0
    by_index = checked | dict(zip(todo, fresh))
    if cache is not None:
        ok = {keys[i]: Completion.from_json(c) for i, c in by_index.items() if not c.get("error")}
        if ok:
            cache.put_many(ok)
    completions = [by_index[i] if i in by_index else found[keys[i]].to_json() for i in range(len(suite.cases))]
    failed = sum(1 for c in by_index.values() if c.get("error"))
    note = "" if spot is None else f", {spot[1]} spot-checked live ({spot[0]} differed)"
    _log(f"  {suite.name}: {len(completions)} items, {len(found)} from cache, {len(fresh)} requested"
         f"{note} in {elapsed:.1f}s" + (f", {failed} FAILED" if failed else ""))
    return completions, spot


SPOT_CHECK_ITEMS = 3


def _spot_check(client: EndpointClient, suite, adapter_path: str | None, cached: dict) -> tuple[dict[int, dict], int]:
    """A spread sample of a greedy suite's cached answers (``cached``: item index to its
    Completion) requested live: (index to live answer, how many differ or went unanswered).

    A folder is hashed here, not on the server: on the first run against a server that had
    loaded an older version of the adapter, the old weights' answers were cached under the
    new fingerprint, and every later run read them from the cache, after a restart too (a
    regressed adapter passed for ever). A few live requests tell a server that now answers
    otherwise; an unanswered one cannot confirm the cache either."""
    from ..integrity import sample_indices

    indices = list(cached)
    sample = [indices[j] for j in sample_indices(len(indices), SPOT_CHECK_ITEMS)]
    live = generate_via_endpoint(client, suite, [suite.cases[i] for i in sample], adapter_path)
    differed = sum(1 for i, c in zip(sample, live) if c.get("error") or c["output"] != cached[i].output)
    return dict(zip(sample, live)), differed


def _unhashed(identity: dict, adapter_path: str | None) -> str | None:
    """What of the answering model cannot be hashed here (None: all of it can).

    The cache key can hold only names for a model or adapter that is not a local folder: an
    adapter retrained into the same server path, or a server restarted on new weights under
    the same name, would have the old answers served from the cache as the new model's."""
    if identity.get("local_fingerprint") is None:
        return f"the model {identity['model']!r}"
    if adapter_path is not None and not Path(adapter_path).is_dir():
        return f"the adapter {adapter_path!r}"
    return None


# Why a needs_model scorer is skipped here (after what it needed: ``Scorer.model_needs``).
ENDPOINT_HAS_NO_MODEL = ("an endpoint returns text only (with its token counts and the request's wall time), "
                         "and this run loads no model beside it (--parity loads one only to compare outputs)")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_endpoint_eval(suites: list, config: EndpointConfig, adapters: list, *,
                      limit: int | None = None, use_cache: bool = True, cache_dir: str | None = None,
                      baseline: dict | None = None, allow_fingerprint_mismatch: bool = False,
                      parity: bool = False, parity_samples: int = 8, parity_model: str | None = None,
                      parity_min: float = 0.9, command: list[str] | None = None) -> dict:
    """``run_eval`` with an endpoint as the model: the same results.json shape."""
    from ..cache import CompletionCache
    from ..models import adapter_fingerprint
    from ..results import ModelInfo, new_results, suite_entry
    from ..runner import environment, load_suites, score_model, score_sampled, suite_draws
    from ..scorers import make_scorer
    from ..suite import Suite

    if not all(isinstance(s, Suite) for s in suites):
        suites = load_suites(list(suites), limit)  # paths: loaded here
    local_model = parity_model or config.model
    if parity and not Path(local_model).is_dir():
        raise HarnessError(f"--parity needs the endpoint's weights locally; {local_model!r} is not a folder",
                           field="--parity", hint="pass --parity-model PATH (the folder the server loaded)")
    for spec in adapters:
        if parity and not spec.adapter_path.is_dir():
            raise HarnessError("adapter folder not found (--parity applies it locally)", path=spec.adapter_path,
                               field=f"--adapter {spec.name}")
    local = _parity_model(local_model, suites) if parity else None  # refusals before any request
    client = EndpointClient(config)
    fingerprint, identity = model_identity(client)
    recipe = endpoint_fingerprint_recipe(identity)
    _log(f"endpoint {config.url} model {config.model}")
    cache = CompletionCache(cache_dir) if use_cache else None
    scorer_sets = {s.name: [make_scorer(spec, s.dir) for spec in s.scorers] for s in suites}
    results = new_results(
        [suite_entry(s, scorer_sets[s.name]) for s in suites],
        {"base": ModelInfo(path=config.model, adapter_path=None, fingerprint=fingerprint,
                           fingerprint_recipe=recipe, base_fingerprint=None, training_log=None,
                           endpoint=config.url)},
        environment() | {"endpoint": identity}, command)
    for header in results["suites"]:
        if local is not None and header["name"] in local[2]:  # the served weights have these positions too
            header["warnings"].append(local[2][header["name"]])
    adapter_fps: dict[str, str] = {}
    for spec in adapters:
        path = spec.adapter_path
        adapter_fps[spec.name] = adapter_fingerprint(path) if path.is_dir() else f"path:{path}"
        results["models"][spec.name] = {"path": config.model, "adapter_path": str(path),
                                        "fingerprint": f"{fingerprint}+{adapter_fps[spec.name]}",
                                        "fingerprint_recipe": recipe,
                                        "base_fingerprint": fingerprint, "training_log": None,
                                        "endpoint": config.url}
    if baseline is not None:
        from ..baseline import check_baseline

        check_baseline(baseline, results, allow_fingerprint_mismatch)
        results["baseline"] = {"path": baseline.get("_path"), "created": baseline.get("created")}

    endpoint_outputs: dict[tuple[str, str], list[dict]] = {}
    folders = _folders_seen(cache, config, identity, adapters, adapter_fps) if cache is not None else []
    changed = {f["name"]: f for f in folders if isinstance(f["before"], str) and f["before"] != f["now"]}
    for name, adapter_path in [("base", None)] + [(s.name, str(s.adapter_path)) for s in adapters]:
        _log(f"[{name}]")
        adapter_fp = adapter_fps.get(name)
        unhashed = _unhashed(identity, adapter_path)
        model_cache = cache
        if cache is not None and unhashed:
            model_cache = None
            _log(f"  not cached: {unhashed} is not a folder here, so new weights at the same name "
                 "could not be told from the old; every item is requested")
        elif cache is not None and (name in changed or "base" in changed):
            model_cache = None  # its answers may be the old weights': kept, they outlived a server restart
            _log(f"  not cached: {changed.get(name, changed.get('base'))['label']} changed on disk since the "
                 f"last run against {config.url}: a server that loaded it before may answer with the old weights")
        for suite, header in zip(suites, results["suites"]):
            scorers = scorer_sets[suite.name]
            live = any(not s.uses_cache for s in scorers)
            drawn_all = [_draw(client, drawn, adapter_path, fingerprint, adapter_fp, model_cache, live)
                         for drawn in suite_draws(suite)]
            draws = [d for d, _ in drawn_all]
            spots = [spot for _, spot in drawn_all if spot and spot[0]]
            if spots:
                label = f"adapter {name} ({adapter_path})" if adapter_path else f"the model {config.model}"
                results["warnings"].append(
                    f"{label}, suite {suite.name}: {sum(d for d, _ in spots)} of {sum(n for _, n in spots)} "
                    f"cached answers spot-checked live at {config.url} differ or went unanswered: the server's "
                    "answers differ from the cached ones (it was restarted or its weights changed); cached "
                    "answers discarded, every item requested again")
            completions = draws[0]
            errors = [(suite.cases[i].id, c["error"]) for d in draws for i, c in enumerate(d) if c.get("error")]
            fingerprint_m = results["models"][name]["fingerprint"]
            if len(draws) > 1:
                model_result, skipped = score_sampled(suite, scorers, draws, fingerprint_m, None,
                                                      no_model=ENDPOINT_HAS_NO_MODEL)
            else:
                model_result, skipped = score_model(suite, scorers, completions, fingerprint_m, None,
                                                    no_model=ENDPOINT_HAS_NO_MODEL)
            for record, c in zip(model_result["items"], completions):
                if c.get("error"):
                    record["error"] = c["error"]
            model_result["integrity"] = {"checked": 0, "passed": True,
                                         "detail": "served outputs: checked against the local engine only with --parity"}
            header["models"][name] = model_result
            for scorer_name, why in skipped.items():
                header["scorers"][scorer_name]["skipped"] = why  # the scorer's own need, and the endpoint's lack
            n_requests = len(suite.cases) * len(draws)
            gates = header.setdefault("extra_gates", [])
            gates.append({"suite": suite.name, "model": name, "metric": "endpoint_requests", "kind": "endpoint",
                          "passed": not errors,
                          "reason": (f"all {n_requests} requests answered" if not errors else
                                     f"{len(errors)} of {n_requests} requests failed after retries; first: "
                                     f"{errors[0][0]}: {errors[0][1]}"),
                          "details": {"failed": [i for i, _ in errors][:50], "policy": "endpoint"}})
            endpoint_outputs[(name, suite.name)] = completions
    # a changed folder whose served outputs do not show the new weights: `stale` when they all
    # equal the previous version's, `unshown` when that version's answers are not all known
    stale: dict[str, str] = {}
    unshown: dict[str, str] = {}
    if cache is not None:
        # the previous version's answers are keyed by the base's identity as it was then
        before = (identity_fingerprint(dict(identity, local_fingerprint=changed["base"]["before"]))
                  if "base" in changed else fingerprint)
        for name, folder in changed.items():
            same, known, answered = _answered_as_before(cache, before, None if name == "base" else folder["before"],
                                                        name, suites, endpoint_outputs)
            if same < known:
                continue  # outputs changed: the server answers with the new weights
            if known and known == answered:
                stale[name] = _stale_warning(folder, known, config.url)
            else:
                unshown[name] = _changed_warning(folder, config.url, answered - known, answered)
        results["warnings"] += [stale.get(f["name"]) or unshown.get(f["name"]) or _changed_warning(f, config.url)
                                for f in changed.values()]
    for spec in adapters:
        _served_adapter_effect(spec.name, suites, results, None if parity else stale.get(spec.name))
    if parity:
        _parity(suites, results, adapters, local, client, endpoint_outputs, parity_samples, parity_min)
    if cache is not None:
        # a folder is remembered as seen only once the server is shown to answer with it (outputs
        # changed, or --parity matched the local engine): remembered on no evidence, the next run
        # cached what the server answered, the old weights' answers, under the new fingerprint
        for folder in folders:
            if folder["before"] != folder["now"] and (folder["name"] not in stale | unshown
                                                       or _parity_matched(results, folder["name"])):
                cache.put_json(folder["key"], folder["now"])
        cache.close()
    return results


def _parity_model(local_model: str, suites: list) -> tuple:
    """The local engine for ``--parity``, loaded and checked as ``harness eval`` checks before
    generating: chat templates, token ids within the vocabulary, prompt + max_tokens within the
    positions (a warning per suite; a learned position table refuses). Returns (base, each
    suite's prompt ids, each suite's positions warning)."""
    from ..models import load_base
    from ..prompts import check_chat_suites
    from ..runner import encode_suites_fit

    _log(f"parity: loading {local_model} locally")
    base = load_base(local_model)
    check_chat_suites(base.tokenizer, suites, str(local_model))
    prompts, warnings = encode_suites_fit(base, suites)  # ids and positions, as harness eval checks them
    return base, prompts, warnings


def _folders_seen(cache, config: EndpointConfig, identity: dict, adapters: list,
                  adapter_fps: dict[str, str]) -> list[dict]:
    """The local model and adapter folders of this run, each with its fingerprint now and at
    the last run against this endpoint (``before``, remembered in the completion cache's
    database; None the first time): ``{name, label, key, now, before}``.

    A server does not reread a folder it has loaded: mlx_lm.server keeps the model and
    adapter it holds, and its prompt cache is keyed by the adapter's path, so after a retrain
    into the same folder it answered a whole suite with the old adapter (12 of 12 sql outputs
    the old adapter's). The harness hashes the new files; nothing else would say so."""
    seen = [("base", f"the model {config.model}", config.model, identity.get("local_fingerprint"))]
    seen += [(s.name, f"adapter {s.name} ({s.adapter_path})", str(s.adapter_path), adapter_fps[s.name])
             for s in adapters if s.adapter_path.is_dir()]
    out = []
    for name, label, path, fingerprint in seen:
        if fingerprint is None:
            continue
        key = "endpoint-folder:" + hashlib.sha256(f"{config.url}\0{Path(path).resolve()}".encode()).hexdigest()
        before = cache.get_json(key)
        out.append({"name": name, "label": label, "key": key, "now": fingerprint,
                    "before": before if isinstance(before, str) else None})
    return out


def _changed_warning(folder: dict, url: str, unknown: int = 0, answered: int = 0) -> str:
    """A folder changed since the last run against ``url``; ``unknown`` of ``answered`` items
    have no answer of its previous version in the cache, so the outputs could not show which
    version the server answers with."""
    text = (f"{folder['label']} changed on disk since the last run against {url}: a server that "
            "loaded it before answers with the old weights until restarted (mlx_lm.server "
            "does, and keeps its prompt cache)")
    if unknown:
        text += (f"; its previous version's answers are not in the cache for {unknown} of {answered} items, so "
                 "the outputs cannot show which weights answered: not cached, checked again next run")
    return text + "; restart the server, or check with --parity"


def _answered_as_before(cache, fingerprint: str, adapter_fp: str | None, name: str, suites: list,
                        outputs: dict) -> tuple[int, int, int]:
    """(same, known, answered): of the items model ``name`` was answered on, how many have an
    answer cached under the previous version's fingerprints (``fingerprint``, ``adapter_fp``),
    and how many of those it equals."""
    from ..cache import completion_key
    from ..runner import suite_draws

    same = known = answered = 0
    for suite in suites:
        drawn = suite_draws(suite)[0]
        keys = [completion_key(fingerprint, adapter_fp, _prompt_key(drawn, c), drawn.generation.cache_key(),
                               cache.versions) for c in drawn.cases]
        old = cache.get_many(keys)
        for key, c in zip(keys, outputs[(name, suite.name)]):
            if c.get("error"):
                continue
            answered += 1
            if key in old:
                known += 1
                same += old[key].output == c["output"]
    return same, known, answered


def _stale_warning(folder: dict, known: int, url: str) -> str:
    """Why a folder changed on disk is still served old: every item answered now has the
    output its previous version gave it. The warning alone left the run's verdict to the old
    adapter's answers: a retrained adapter that regressed passed its gates while the server
    never loaded it (``_served_adapter_effect`` fails on it)."""
    what = "model" if folder["name"] == "base" else "adapter"
    return (f"{folder['label']} changed on disk since the last run against {url}, but all {known} served outputs "
            f"equal its previous version's: the server likely still answers with the old {what} (mlx_lm.server "
            f"keeps the {what} it loaded, and its prompt cache), or the retrain changed no output; restart the "
            f"server, or pass --parity, which applies the weights locally and tells the two apart")


def _parity_matched(results: dict, name: str) -> bool:
    """Whether --parity ran on model ``name`` and its every ``endpoint_parity`` gate passed."""
    gates = [g for h in results["suites"] for g in h.get("extra_gates") or []
             if g.get("metric") == "endpoint_parity" and g.get("model") == name]
    return bool(gates) and all(g["passed"] for g in gates)


def _served_adapter_effect(name: str, suites: list, results: dict, stale: str | None = None) -> None:
    """An adapter whose served outputs all equal the base's: a warning, and a failed
    ``adapter_effect`` gate where a suite sets ``checks: {adapter_effect: true}`` (as for a
    local adapter whose logits equal the base's). So too an adapter still served old
    (``stale``: ``_stale_warning``, warned by the caller): the adapter under test had
    no effect on what was served.

    A server that ignores the per-request ``adapters`` field (mlx_lm.server for
    ``default_model``; vLLM and LM Studio serve adapters under a model name of their own)
    answers every adapter request with the base: the adapter's scores are the base's, no
    paired gate sees a drop, and the run passed without the adapter ever being evaluated."""
    from ..checks import enabled

    same = n = 0
    for header in results["suites"]:
        models = header["models"]
        base = {str(i["id"]): i for i in models["base"]["items"]}
        for item in models[name]["items"]:
            other = base.get(str(item["id"]))
            if item.get("error") or other is None or other.get("error"):
                continue  # an unanswered item says nothing either way
            n += 1
            same += item.get("output") == other.get("output")
    none = n > 0 and same == n
    reason = (f"adapter {name}: all {n} served outputs equal the base's: the server may ignore the "
              "per-request `adapters` field (mlx_lm.server does when --model is default_model; vLLM and "
              "LM Studio serve an adapter under a model name of its own), or the adapter changes nothing; "
              "--parity applies it locally and compares" if none else
              f"adapter {name}: {same} of {n} served outputs equal the base's")
    if none:
        results["warnings"].append(reason)
    if stale:
        reason = stale if not none else f"{reason}; {stale}"
    for suite, header in zip(suites, results["suites"]):
        if enabled(suite, "adapter_effect"):
            header.setdefault("extra_gates", []).append({
                "suite": suite.name, "model": name, "metric": "adapter_effect", "kind": "check",
                "passed": not (none or stale), "reason": reason,
                "details": {"same_outputs": same, "n": n, "policy": "suite", "served_old": bool(stale)}})


# A served output that parts from the local engine's matches when every served token from there
# is within this many units of the weights' rounding (integrity.rounding_unit) x the step's largest
# |logit| of the local top choice. Tighter than generation_integrity's 16: a server that drops
# context writes tokens the full context ranks close behind. Measured on the bf16 fixture copy
# behind mlx_lm.server, all 500 items of five suites: a correct server's 77 outputs that part
# from the local ones all match at 2 units as at 16; a server keeping the last 12 characters of
# each prompt had 6 (2 units), 13 (4), 36 (8) and 107 (16) of its 500 outputs pass as near-ties.
PARITY_ROUNDING_UNITS = 4


def _parity(suites, results, adapters, local: tuple, client, endpoint_outputs, samples, minimum) -> None:
    """Greedy outputs of the endpoint vs the local engine (``_parity_model``) on a spread sample of each suite."""
    from ..generation import generate
    from ..integrity import rounding_unit, sample_indices
    from ..models import adapter_applied
    from ..suite import GenerationConfig

    base, encoded, _ = local
    rounding = rounding_unit(base.model)
    specs = [("base", None)] + [(s.name, s.adapter_path) for s in adapters]
    for name, path in specs:
        def check() -> None:
            for suite, header in zip(suites, results["suites"]):
                idx = sample_indices(len(suite.cases), samples)
                cases = [suite.cases[i] for i in idx]
                if suite.generation.temperature == 0 and not suite.generation.repetition_penalty:
                    served = [endpoint_outputs[(name, suite.name)][i] for i in idx]
                else:
                    served = generate_via_endpoint(client, suite, cases, None if path is None else str(path),
                                                   greedy=True)
                gen = suite.generation
                cfg = GenerationConfig(max_tokens=gen.max_tokens, stop=tuple(gen.stop), batch_size=max(2, len(cases)))
                prompts = [encoded[suite.name][i] for i in idx]
                local = generate(base.model, base.tokenizer, prompts, cfg)
                # leading/trailing whitespace differs by detokenizer (servers strip the first space)
                identical = [s.get("error") is None and s["output"].strip() == loc.output.strip()
                             for s, loc in zip(served, local)]
                tied = [not ok and s.get("error") is None
                        and _parts_at_near_tie(base, prompt, s, loc, rounding)
                        for ok, s, loc, prompt in zip(identical, served, local, prompts)]
                same = [a or b for a, b in zip(identical, tied)]
                n_same = sum(same)
                mismatched = [c.id for c, ok in zip(cases, same) if not ok]
                near_ties = [c.id for c, t in zip(cases, tied) if t]
                passed = bool(cases) and n_same / len(cases) >= minimum
                first = ""
                if mismatched:
                    j = same.index(False)
                    first = f"; first {cases[j].id}: " + (
                        served[j]["error"][:120] if served[j].get("error")
                        else _first_difference(served[j]["output"], local[j].output))
                ties = (f"; {len(near_ties)} of them part from the local output at near-ties (from there "
                        f"every served token within a {rounding[1]} model's rounding of the local weights' "
                        f"top logit)" if near_ties else "")
                header.setdefault("extra_gates", []).append({
                    "suite": suite.name, "model": name, "metric": "endpoint_parity", "kind": "parity",
                    "passed": passed,
                    "reason": (f"endpoint matches the local engine on {n_same} of {len(cases)} sampled items "
                               f"(greedy; at least {minimum:.0%} required){ties}{first}"),
                    "details": {"matched": n_same, "n": len(cases), "mismatched": mismatched,
                                "near_ties": near_ties, "policy": "parity"}})
                header["models"][name]["integrity"] = {
                    "checked": len(cases), "passed": True,
                    "detail": (f"parity with the local engine: {sum(identical)}/{len(cases)} identical greedy "
                               f"outputs" + (f", {len(near_ties)} more equal up to near-ties" if near_ties else ""))}

        if path is None:
            check()
        else:
            with adapter_applied(base, name, path, False):
                check()


def _parts_at_near_tie(base, prompt_ids: list[int], served: dict, local, rounding: tuple[float, str]) -> bool:
    """Whether a served output that differs from the local engine's is still a greedy decoding
    of the local weights: from where the two part, every served token is the full-context
    recomputation's top choice or within the weights' rounding of it (``integrity.compare``,
    with ``PARITY_ROUNDING_UNITS``). Measured on a bfloat16 copy of the fixture
    model behind mlx_lm.server: 78 of 500 served outputs differed from the local engine's,
    each parting at a margin of 0 to 2 bf16 units (0.0625 at a largest logit of 15;
    mlx_lm.server batches and caches prompts otherwise), so 8 sampled items seldom all
    matched and parity failed a correct server.

    Up to the parting the context is the local engine's own tokens (the served text re-encoded
    is not always the tokens the server wrote: 'Qurilles' came back in other pieces than were
    generated); after it, the served text re-encoded. Checking only the parting token let a
    server that dropped the context pass 16 of 24 items on the fixture: its first other token
    was often a near-tie, the ones after it were not. A served output cut short (``length``)
    is no near-tie."""
    from ..integrity import compare

    tok = base.tokenizer
    text = served["output"].lstrip()  # servers strip the first space
    ids = list(local.output_token_ids)
    j = 0
    while j < len(ids) and text.startswith(tok.decode(ids[:j + 1]).lstrip()):
        j += 1
    rest = text[len(tok.decode(ids[:j]).lstrip()):]
    if rest:
        tokens = tok.encode(rest, add_special_tokens=False)
    elif served.get("stopped_by") == "eos" and tok.eos_token_id is not None:
        tokens = [tok.eos_token_id]  # the server stopped where the local engine went on
    else:
        return False
    if not tokens or (j < len(ids) and tokens[0] == ids[j]):
        return False  # no token-level parting to judge
    return compare(base.model, list(prompt_ids) + ids[:j], tokens, rounding=rounding,
                   units=PARITY_ROUNDING_UNITS) is None

def _first_difference(served: str, local: str, width: int = 60) -> str:
    """Where two outputs part, with a little of what came before: 'endpoint ... vs local ...'."""
    k = next((i for i, (x, y) in enumerate(zip(served, local)) if x != y), min(len(served), len(local)))
    start = max(0, k - 20)
    cut = "…" if start else ""
    return (f"at character {k}, endpoint {cut + served[start:start + width]!r} vs local "
            f"{cut + local[start:start + width]!r}")
