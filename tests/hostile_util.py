"""Helpers for the bad-input tests: run the CLI in-process, make broken adapters, serve
faulty HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_MODEL = ROOT / "fixtures" / "model"


class HttpServers:
    """Threaded HTTP servers on 127.0.0.1 for one test; ``start(handler)`` gives the URL."""

    def __init__(self) -> None:
        self.servers: list = []

    def start(self, handler: type) -> str:
        import threading
        from http.server import ThreadingHTTPServer

        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    def close(self) -> None:
        for s in self.servers:
            s.shutdown()
            s.server_close()


def opens_of(monkeypatch, *names: str) -> list[str]:
    """A list that collects the base name of every file opened (``os.open``, ``io.open``)
    whose name is one of ``names``, until the test ends: a file read twice shows twice."""
    import io
    import os

    opened: list[str] = []
    real_os_open, real_io_open = os.open, io.open

    def note(path) -> None:
        if not isinstance(path, int) and Path(os.fspath(path)).name in names:
            opened.append(Path(os.fspath(path)).name)

    def os_open(path, *args, **kwargs):
        note(path)
        return real_os_open(path, *args, **kwargs)

    def io_open(path, *args, **kwargs):
        note(path)
        return real_io_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(io, "open", io_open)
    return opened


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """`harness ARGS` in this process: (exit code, stdout, stderr)."""
    from harness.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_bad_input(code: int, err: str, *needles: str) -> None:
    """Exit 2, at most three lines on stderr, no traceback, and the line names what it should."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}, stderr: {err}"
    assert "Traceback" not in err and "internal error" not in err, err
    errors = [line for line in lines if line.startswith("harness: error:")]
    assert len(errors) == 1 and len(lines) <= 3, err
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"


def lora_adapter(out: Path, *, hidden: int | None = None, intermediate: int | None = None,
                 layers: int | None = None, num_layers: int = 2, rank: int = 4, kv_heads: int | None = None,
                 head_dim: int | None = None, heads: int | None = None, fill: float | None = None, seed: int = 0,
                 keys: tuple[str, ...] = ("self_attn.q_proj", "self_attn.v_proj")) -> Path:
    """A random mlx-lm LoRA adapter for a llama of the given size (no base file needed);
    sizes left out are the fixture model's, so by default it fits fixtures/model."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models.llama import Model, ModelArgs
    from mlx_lm.tuner.utils import linear_to_lora_layers

    fx = json.loads((FIXTURE_MODEL / "config.json").read_text())
    args = ModelArgs(model_type="llama", hidden_size=hidden or fx["hidden_size"],
                     num_hidden_layers=layers or fx["num_hidden_layers"],
                     intermediate_size=intermediate or fx["intermediate_size"],
                     num_attention_heads=heads or fx["num_attention_heads"], rms_norm_eps=1e-5,
                     vocab_size=fx["vocab_size"], num_key_value_heads=kv_heads or fx["num_key_value_heads"],
                     head_dim=head_dim or fx["head_dim"],
                     tie_word_embeddings=True)
    model = Model(args)
    params = {"rank": rank, "scale": 10.0, "dropout": 0.0, "keys": list(keys)}
    model.freeze()
    linear_to_lora_layers(model, num_layers, params)
    mx.random.seed(seed)
    weights = {k: (mx.full(v.shape, fill) if fill is not None else mx.random.normal(v.shape) * 0.01)
               for k, v in tree_flatten(model.trainable_parameters())}
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    (out / "adapter_config.json").write_text(json.dumps(
        {"fine_tune_type": "lora", "num_layers": num_layers, "lora_parameters": params}))
    return out
