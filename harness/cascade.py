"""Cascade attention: rows that share a prompt prefix read its keys and values once per step.

With shared-prefix reuse (``harness.prefix``) the prefix is prefilled once, but each row
still starts from its own copy of the prefix's KV cache, so every decoding step reads
``rows x prefix`` keys and values: 48 rows behind a 900-token system prompt read the
same 900 positions 48 times, one small matrix-vector product each. Here the prefix's
K/V is kept once (batch 1) and each row keeps only what follows it. Attention at each
step is split in two and merged exactly:

- all rows' queries against the shared prefix, as one matrix product per KV head
  (queries of every row stacked as the rows of one matrix);
- each row's queries against its own suffix (causal, left padding masked);
- the two partial softmaxes merged with the log-sum-exp rule:
  ``out = (e^(m1-m) o1 + e^(m2-m) o2) / (e^(m1-m) l1 + e^(m2-m) l2)``.

Integration with mlx-lm, without touching its files:

- ``PrefixRowCache`` is the per-row cache handed to ``BatchGenerator.insert(caches=...)``;
  mlx-lm merges a batch's row caches through the cache class's ``merge``, which builds a
  ``CascadeKVCache``: the prefix once plus a ``BatchKVCache`` of the rows' suffixes (so
  left padding, right-padded prefill, ``filter`` and ``extend`` are mlx-lm's own). RoPE
  sees ``cache.offset`` = prefix length + each row's own position.
- Models call ``scaled_dot_product_attention(queries, keys, values, cache=..., ...)``
  from ``mlx_lm.models.base``, imported into each model's module. ``installed(model)``
  rebinds that name in the model's module(s) for the duration of a generation to a
  dispatcher that computes cascade attention when the cache is a ``CascadeKVCache`` and
  calls mlx-lm's own function otherwise.
- ``supported(model)`` probes it once per model: a few tokens through the model with a
  cascade cache must give the logits of a plain ``KVCache``. Models where that fails
  (attention that bypasses the shared function, other cache types) use the copied
  prefix caches as before; the engine says so once in the log.

Batches whose rows have different shared prefixes (or none) are merged by moving the
prefix into each row's suffix ("demoting" it), which is always correct; the engine
decodes each prefix group in its own batches so that this stays rare.
"""

from __future__ import annotations

import os
import sys
import weakref
from contextlib import contextmanager
from functools import partial
from typing import Any

_PROBED: dict[int, tuple] = {}  # id(model) -> (weak reference, passed the probe)
Prefix = tuple  # (id, keys, values, keys transposed) of one layer's shared prefix
_MASK_VALUE = -3.0e38  # finite: a fully masked part gives weight 0, never NaN


def _cache_types():
    from mlx_lm.models.cache import BatchKVCache, KVCache, _BaseCache

    return _BaseCache, KVCache, BatchKVCache


class PrefixRowCache(_cache_types()[0]):
    """One row's cache for one layer: a shared prefix (by reference) plus the row's own K/V.

    ``prefix`` = (id, keys, values, keys transposed), keys/values of shape (1, heads, P, dim), or None.
    ``own`` is an mlx-lm ``KVCache`` holding the positions after the prefix (may be empty).
    """

    def __init__(self, prefix: Prefix | None, own: Any):
        self.prefix = prefix
        self.own = own

    @property
    def prefix_len(self) -> int:
        return 0 if self.prefix is None else self.prefix[1].shape[2]

    @property
    def offset(self) -> int:
        return self.prefix_len + self.own.offset

    def size(self) -> int:
        return self.offset

    def empty(self) -> bool:
        return self.prefix is None and self.own.empty()

    @property
    def nbytes(self) -> int:
        return self.own.nbytes  # the prefix is shared, counted once by its owner

    @property
    def state(self):
        return self.own.state

    def full(self) -> Any:
        """A plain ``KVCache`` with the prefix and the row's own positions (a copy)."""
        import mlx.core as mx
        from mlx_lm.models.cache import KVCache

        if self.prefix is None:
            return self.own
        _, pk, pv, _ = self.prefix
        out = KVCache()
        n = self.own.offset
        out.keys = mx.concatenate([pk, self.own.keys[..., :n, :]], axis=2) if n else pk
        out.values = mx.concatenate([pv, self.own.values[..., :n, :]], axis=2) if n else pv
        out.offset = out.keys.shape[2]
        return out

    @classmethod
    def merge(cls, caches: list["PrefixRowCache"]) -> "CascadeKVCache":
        from mlx_lm.models.cache import BatchKVCache

        first = caches[0].prefix
        if first is not None and all(c.prefix is not None and c.prefix[0] == first[0] for c in caches):
            return CascadeKVCache(first, BatchKVCache.merge([c.own for c in caches]))
        # Rows with different prefixes: each row keeps its whole context as its own.
        return CascadeKVCache(None, BatchKVCache.merge([c.full() for c in caches]))


class CascadeKVCache(_cache_types()[0]):
    """A batch's cache for one layer: the shared prefix once, each row's suffix in a ``BatchKVCache``."""

    def __init__(self, prefix: Prefix | None, suffix: Any):
        self.prefix = prefix
        self.suffix = suffix

    # --- what the model reads -------------------------------------------------
    @property
    def prefix_len(self) -> int:
        return 0 if self.prefix is None else self.prefix[1].shape[2]

    @property
    def offset(self):
        """Each row's position (an array): prefix length + the row's own offset (RoPE)."""
        return self.suffix.offset + self.prefix_len

    def update_and_fetch(self, keys, values):
        return self.suffix.update_and_fetch(keys, values)  # the suffix only; the prefix is read in attention

    def make_mask(self, N: int, return_array: bool = False, **kwargs):
        return self.suffix.make_mask(N, return_array=return_array, **kwargs)

    # --- what mlx-lm's BatchGenerator calls -----------------------------------
    def prepare(self, **kwargs):
        self.suffix.prepare(**kwargs)

    def finalize(self):
        self.suffix.finalize()

    @property
    def state(self):
        state = list(self.suffix.state)
        if self.prefix is not None:
            state += [self.prefix[1], self.prefix[2]]
        return state

    def filter(self, batch_indices):
        self.suffix.filter(batch_indices)

    def extend(self, other: "CascadeKVCache"):
        if not (self.prefix is not None and other.prefix is not None and self.prefix[0] == other.prefix[0]):
            self._demote()
            other._demote()
        self.suffix.extend(other.suffix)

    def extract(self, idx: int):
        import mlx.core as mx

        row = self.suffix.extract(idx)
        if self.prefix is None:
            return row
        row.keys = mx.concatenate([self.prefix[1], row.keys], axis=2)
        row.values = mx.concatenate([self.prefix[2], row.values], axis=2)
        row.offset = row.keys.shape[2]
        return row

    def size(self) -> int:
        return self.prefix_len + self.suffix.size()

    def empty(self) -> bool:
        return self.prefix is None and self.suffix.empty()

    def is_trimmable(self) -> bool:
        return True

    def trim(self, n: int) -> int:
        return self.suffix.trim(n)  # never into the shared prefix

    @property
    def nbytes(self) -> int:
        shared = 0 if self.prefix is None else self.prefix[1].nbytes + self.prefix[2].nbytes
        return shared + self.suffix.nbytes

    def __deepcopy__(self, memo):
        import copy

        # mlx-lm copies a prompt batch before splitting it: the prefix is shared, never copied.
        return CascadeKVCache(self.prefix, copy.deepcopy(self.suffix, memo))

    def _demote(self) -> None:
        """Move the shared prefix into every row's suffix (after the row's left padding)."""
        import mlx.core as mx

        if self.prefix is None:
            return
        _, pk, pv, _ = self.prefix
        P = pk.shape[2]
        s = self.suffix
        B = s.offset.shape[0]
        if s.keys is None:  # nothing of its own yet: the prefix becomes the rows' whole cache
            s.keys = mx.broadcast_to(pk, (B, *pk.shape[1:]))
            s.values = mx.broadcast_to(pv, (B, *pv.shape[1:]))
            s.keys, s.values = mx.contiguous(s.keys), mx.contiguous(s.values)
        else:
            # row b: [pad (lp_b), own] -> [pad (lp_b), prefix, own]; one gather over [prefix, own]
            n = s._idx
            both_k = mx.concatenate([mx.broadcast_to(pk, (B, *pk.shape[1:])), s.keys[..., :n, :]], axis=2)
            both_v = mx.concatenate([mx.broadcast_to(pv, (B, *pv.shape[1:])), s.values[..., :n, :]], axis=2)
            j = mx.arange(P + n)[None, :]
            lp = s.left_padding[:, None]
            idx = mx.where(j < lp, 0, mx.where(j < lp + P, j - lp, j))
            idx = idx[:, None, :, None]
            s.keys = mx.take_along_axis(both_k, idx, axis=2)
            s.values = mx.take_along_axis(both_v, idx, axis=2)
        s._idx += P
        s.offset = s.offset + P
        self.prefix = None


# --- attention ----------------------------------------------------------------

def attention(queries, keys, values, cache: CascadeKVCache, scale: float):
    """Softmax attention of ``queries`` (B, Hq, L, D) over the cache's prefix and ``keys``/``values``.

    ``keys``/``values`` are the rows' suffixes (B, Hkv, S, D) as returned by
    ``update_and_fetch`` (the L new positions last); the prefix (1, Hkv, P, D) is visible to
    every query, the suffix causally and after each row's left padding.
    """
    import mlx.core as mx
    from mlx_lm.models.base import create_causal_mask

    B, Hq, L, D = queries.shape
    Hkv, S, Dv = keys.shape[1], keys.shape[2], values.shape[3]
    r = Hq // Hkv  # grouped-query attention: query head h reads KV head h // r
    f32 = mx.float32
    q = (queries * scale).reshape(B, Hkv, r * L, D)

    # Each row against its own suffix.
    s = (q @ keys.swapaxes(-1, -2)).astype(f32).reshape(B, Hkv, r, L, S)
    mask = create_causal_mask(L, offset=S - L, left_padding=cache.suffix.left_padding)  # (B, 1, L, S)
    s = mx.where(mask[:, :, None], s, _MASK_VALUE)
    m_s = s.max(axis=-1, keepdims=True)
    e_s = mx.exp(s - m_s)
    l_s = e_s.sum(axis=-1, keepdims=True)
    o_s = (e_s.astype(values.dtype).reshape(B, Hkv, r * L, S) @ values).astype(f32).reshape(B, Hkv, r, L, Dv)
    if cache.prefix is None:
        return (o_s / l_s).reshape(B, Hq, L, Dv).astype(queries.dtype)

    # Every row's queries against the one shared prefix: one (B*r*L x D) @ (D x P) product per KV head.
    _, _, pv, pkt = cache.prefix
    qp = q.reshape(B, Hkv, r, L, D).transpose(1, 2, 0, 3, 4).reshape(1, Hkv, r * B * L, D)
    o_p, m_p, l_p = _prefix_part()(qp, pkt, pv)

    def rows(x):  # (1, Hkv, r*B*L, k) -> (B, Hkv, r, L, k)
        return x.reshape(Hkv, r, B, L, x.shape[-1]).transpose(2, 0, 1, 3, 4)

    o_p, m_p, l_p = rows(o_p), rows(m_p), rows(l_p)
    m = mx.maximum(m_p, m_s)
    a, b = mx.exp(m_p - m), mx.exp(m_s - m)
    out = (o_p * a + o_s * b) / (l_p * a + l_s * b)
    return out.reshape(B, Hq, L, Dv).astype(queries.dtype)


# 2^f on [0, 1): Taylor coefficients of e^(f ln 2), degree 7 (relative error < 1e-6 after rounding)
_EXP2 = (1.0, 0.6931471805599453, 0.2402265069591007, 0.05550410866482158, 0.009618129107628477,
         0.0013333558146428443, 0.00015403530393381606, 1.525273380405984e-05)


def _exp_nonpositive(x):
    """e^x for x <= 0 from multiplies, adds and an exponent-bit shift.

    MLX's CPU ``exp`` costs ~13 ns an element here, and the prefix part computes one per
    row, head and prefix position at every step (most of cascade attention's time); this
    polynomial, fused by ``mx.compile``, is ~6x faster and within a few float32 ulps.
    """
    import mlx.core as mx

    t = mx.maximum(x * 1.4426950408889634, -126.0)  # below: 2^-126, a weight of ~1e-38
    n = mx.floor(t)
    f = t - n
    p = _EXP2[-1]
    for c in reversed(_EXP2[:-1]):
        p = p * f + c
    return p * mx.left_shift((n + 127).astype(mx.int32), 23).view(mx.float32)


def _prefix_stats(qp, pkt, pv, fast_exp: bool):
    """Unnormalised attention of the stacked queries over the prefix: (output, max, sum)."""
    import mlx.core as mx

    s = (qp @ pkt).astype(mx.float32)
    m = s.max(axis=-1, keepdims=True)
    e = _exp_nonpositive(s - m) if fast_exp else mx.exp(s - m)
    return (e.astype(pv.dtype) @ pv).astype(mx.float32), m, e.sum(axis=-1, keepdims=True)


_COMPILED: dict = {}


def _prefix_part():
    """``_prefix_stats`` compiled once per device kind (CPU: with the polynomial exp)."""
    import mlx.core as mx

    cpu = mx.default_device() == mx.cpu
    if cpu not in _COMPILED:
        fn = partial(_prefix_stats, fast_exp=cpu)
        try:
            compiled = mx.compile(fn)
            q, k, v = mx.zeros((1, 1, 2, 4)), mx.zeros((1, 1, 4, 3)), mx.zeros((1, 1, 3, 4))
            mx.eval(compiled(q, k, v))  # fails here if this machine cannot compile kernels
            _COMPILED[cpu] = compiled
        except Exception:
            _COMPILED[cpu] = fn
    return _COMPILED[cpu]


def _dispatcher(original):
    def scaled_dot_product_attention(queries, keys, values, cache=None, scale=1.0, mask=None, **kwargs):
        if isinstance(cache, CascadeKVCache):
            if kwargs.get("sinks") is not None:
                raise NotImplementedError("cascade attention does not support attention sinks")
            return attention(queries, keys, values, cache, scale)
        return original(queries, keys, values, cache=cache, scale=scale, mask=mask, **kwargs)

    scaled_dot_product_attention.harness_cascade_original = original
    return scaled_dot_product_attention


def _attention_modules(model: Any) -> list:
    """The Python modules (model files) whose code calls mlx-lm's shared attention function."""
    from mlx_lm.models import base

    found = {}
    for _, m in model.named_modules():
        mod = sys.modules.get(type(m).__module__)
        fn = getattr(mod, "scaled_dot_product_attention", None)
        if fn is None:
            continue
        if getattr(fn, "harness_cascade_original", None) is base.scaled_dot_product_attention \
                or fn is base.scaled_dot_product_attention:
            found[mod.__name__] = mod
    return list(found.values())


@contextmanager
def installed(model: Any):
    """Route the model's attention through the cascade dispatcher while the block runs."""
    patched = []
    try:
        for mod in _attention_modules(model):
            fn = mod.scaled_dot_product_attention
            if getattr(fn, "harness_cascade_original", None) is None:  # not already installed (nesting)
                mod.scaled_dot_product_attention = _dispatcher(fn)
                patched.append((mod, fn))
        yield
    finally:
        for mod, fn in patched:
            mod.scaled_dot_product_attention = fn


# --- building rows ------------------------------------------------------------

def shared_prefix(cache: list, key: int) -> list[tuple[int, Any, Any, Any]]:
    """Per layer (key, keys, values, keys transposed) of a prefilled plain-``KVCache`` prefix, contiguous, evaluated."""
    import mlx.core as mx

    out = [(key, mx.contiguous(c.keys[..., :c.offset, :]), mx.contiguous(c.values[..., :c.offset, :]),
            mx.contiguous(c.keys[..., :c.offset, :].swapaxes(-1, -2)))  # keys transposed: a plain GEMM
           for c in cache]
    mx.eval([x for part in out for x in part[1:]])
    return out


def rows_cache(prefix: list[Prefix] | None, own: list | None, n_layers: int) -> list:
    """One row's cache list (one ``PrefixRowCache`` per layer)."""
    from mlx_lm.models.cache import KVCache

    own = own if own is not None else [KVCache() for _ in range(n_layers)]
    return [PrefixRowCache(prefix[l] if prefix is not None else None, own[l]) for l in range(n_layers)]


def supported(model: Any) -> bool:
    """Does the model compute the same logits with a cascade cache as with a plain one? (probed once)"""
    return why_not(model) is None


def why_not(model: Any) -> str | None:
    """None if cascade attention is used for this model, else the reason it is not."""
    if os.environ.get("HARNESS_CASCADE", "1") == "0":
        return "HARNESS_CASCADE=0"
    known = _PROBED.get(id(model))
    if known is None or known[0]() is not model:  # (a dead model's id can be reused)
        known = _PROBED[id(model)] = (weakref.ref(model), _probe(model))
    return None if known[1] else ("the model's attention does not give the same logits through a "
                                      "cascade cache (not a plain KVCache model, or its attention bypasses "
                                      "mlx-lm's scaled_dot_product_attention)")


def _probe(model: Any) -> bool:
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache, make_prompt_cache

    try:
        caches = make_prompt_cache(model)
        if not caches or not all(type(c) is KVCache for c in caches) or not _attention_modules(model):
            return False
        prefix, rows = [5, 9, 13, 17, 21, 25], [[31, 7, 3], [11, 2]]
        plain = []
        for row in rows:
            cache = make_prompt_cache(model)
            plain.append(model(mx.array([prefix + row]), cache=cache)[0, -1])
            plain[-1] = model(mx.array([[4]]), cache=cache)[0, -1]  # one decoding step too
        pre = make_prompt_cache(model)
        model(mx.array([prefix]), cache=pre)
        shared = shared_prefix(pre, -1)
        n = len(pre)
        batch = [PrefixRowCache.merge([rows_cache(shared, None, n)[l], rows_cache(shared, None, n)[l]])
                 for l in range(n)]
        for c in batch:
            c.prepare(lengths=[3, 2], right_padding=[0, 1])
        with installed(model):
            model(mx.array([rows[0], rows[1] + [0]]), cache=batch)
            for c in batch:
                c.finalize()
            got = model(mx.array([[4], [4]]), cache=batch)[:, -1]
        want = mx.stack(plain).astype(mx.float32)
        err = mx.abs(got.astype(mx.float32) - want).max().item()
        tol = 1e-3 if want.dtype == got.dtype == mx.float32 and plain[0].dtype == mx.float32 else 3e-2
        return err <= tol * max(1.0, mx.abs(want).max().item())
    except Exception:  # any model code that cannot run this way falls back to copied caches
        return False
