"""A suite's chat_template_kwargs reach the model's chat template (Qwen3's enable_thinking,
gpt-oss's reasoning_effort). mlx-lm itself passes enable_thinking (true only for a vocabulary
with thinking markers), so the test template reads another variable."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from conftest import FIXTURE_MODEL, run_harness
from harness.errors import HarnessError
from harness.suite import load_suite

# The fixture's template, plus a line gpt-oss's writes for reasoning_effort
THINKING_TEMPLATE = (
    "{% if reasoning_effort is defined %}<|system|>\nReasoning: {{ reasoning_effort }}<|end|>\n{% endif %}"
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.fixture
def thinking_model(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(FIXTURE_MODEL, model)
    (model / "chat_template.jinja").write_text(THINKING_TEMPLATE)
    return model


def write_suite(tmp_path, name="s", **extra):
    suite = {"name": name, "prompt": "{{ q }}", "target": "{{ a }}", "template": "chat",
             "generation": {"max_tokens": 4}, "scorers": [{"exact_match": {}}],
             "integrity": {"samples": 0},
             "cases": [{"id": "one", "q": "What is 2 + 2?", "a": "4"}], **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def test_kwargs_render_into_the_prompt(thinking_model):
    from mlx_lm import load

    from harness.prompts import encode_prompt, rendered_format

    _, tok = load(str(thinking_model))
    plain = encode_prompt(tok, "hi", "chat")
    low = encode_prompt(tok, "hi", "chat", None, {"reasoning_effort": "low"})
    assert "Reasoning: low" in tok.decode(low) and tok.decode(low).endswith(tok.decode(plain))
    assert "Reasoning" not in tok.decode(plain)
    assert "Reasoning: low" in rendered_format(tok, "chat", None, {"reasoning_effort": "low"})


def test_kwargs_are_part_of_the_suite_and_its_hash(tmp_path):
    with_kwargs = load_suite(write_suite(tmp_path, "a", chat_template_kwargs={"enable_thinking": False}))
    without = load_suite(write_suite(tmp_path, "b"))
    assert with_kwargs.chat_template_kwargs == {"enable_thinking": False}
    assert without.chat_template_kwargs is None
    renamed = load_suite(write_suite(tmp_path, "a", chat_template_kwargs={"enable_thinking": True}))
    assert renamed.fingerprint != with_kwargs.fingerprint  # the prompt changed, so does the hash


def test_kwargs_on_a_raw_suite_are_refused_with_their_line(tmp_path):
    path = write_suite(tmp_path, chat_template_kwargs={"enable_thinking": False}, template="raw")
    with pytest.raises(HarnessError) as err:
        load_suite(path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "chat_template_kwargs" in text)
    assert err.value.line == line and "template: chat" in str(err.value)


def test_a_reserved_name_is_refused(tmp_path):
    with pytest.raises(HarnessError) as err:
        load_suite(write_suite(tmp_path, chat_template_kwargs={"add_generation_prompt": False}))
    assert "chat_template_kwargs" in str(err.value)


def test_eval_prompts_carry_the_kwargs(tmp_path, thinking_model):
    """End to end: the same case costs the template's extra line more with the kwarg."""
    tokens = {}
    for name, extra in (("plain", {}), ("off", {"chat_template_kwargs": {"reasoning_effort": "low"}})):
        out = tmp_path / f"out-{name}"
        proc = run_harness("eval", str(write_suite(tmp_path, name, **extra)), "--model", str(thinking_model),
                           "--out", str(out), "--no-cache")
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        item = json.loads((out / "results.json").read_text())["suites"][0]["models"]["base"]["items"][0]
        tokens[name] = item["prompt_tokens"]
    assert tokens["off"] > tokens["plain"], tokens


def test_an_endpoint_is_sent_the_kwargs_and_caches_them_apart(tmp_path):
    """A served model renders its own template: the request carries chat_template_kwargs (as
    mlx_lm.server and vLLM read them), and answers with and without them are cached apart."""
    from harness.backends.openai import EndpointConfig, _prompt_key, request_body

    config = EndpointConfig(url="http://127.0.0.1:9", model="m")
    off = load_suite(write_suite(tmp_path, "a", chat_template_kwargs={"enable_thinking": False}))
    plain = load_suite(write_suite(tmp_path, "b"))
    path, body = request_body(off, off.cases[0], config, None)
    assert path == "/v1/chat/completions" and body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "chat_template_kwargs" not in request_body(plain, plain.cases[0], config, None)[1]
    assert _prompt_key(off, off.cases[0]) != _prompt_key(plain, plain.cases[0])
