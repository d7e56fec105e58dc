"""Shared prompt prefixes: prefilled once per model (and adapter), copied into each row.

Real suites put the same system prompt, few-shot block or schema instructions in front
of every question, so most prefill work is the same tokens again for every row. Prompts
are sorted by token ids; runs of neighbours that share at least ``MIN_TOKENS`` tokens
form a group whose common prefix is computed once, and groups nest (one system prompt,
then several few-shot blocks under it: each block extends a copy of the system prompt's
cache). A row then starts from a copy of its group's KV cache and prefills only its own
tail, through mlx-lm's ``BatchGenerator.insert(..., caches=...)``.

Only models whose cache is mlx-lm's plain ``KVCache`` on every layer take part (sliding
window and recurrent caches cannot be cut and copied this way); others prefill as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MIN_TOKENS = 32  # shorter shared prefixes are not worth a separate prefill
PREFILL_STEP = 2048  # as mlx-lm's BatchGenerator


@dataclass(eq=False)
class _Node:
    length: int
    tokens: list[int]  # the prefix itself
    parent: "_Node | None"
    rows: int = 0
    cache: list | None = field(default=None, repr=False)
    shared: list | None = field(default=None, repr=False)  # per layer (id, keys, values), for cascade attention

    @property
    def root(self) -> "_Node":
        node = self
        while node.parent is not None:
            node = node.parent
        return node


def _lcp(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan(prompts: list[list[int]], min_tokens: int = MIN_TOKENS) -> list[_Node | None]:
    """For each prompt, the deepest shared-prefix group it belongs to (None: no group).

    A group's prefix is at most its shortest prompt's length minus one, since every row
    must feed at least its last prompt token to the model itself.
    """
    n = len(prompts)
    node_of: list[_Node | None] = [None] * n
    if n < 2:
        return node_of
    order = sorted(range(n), key=lambda i: prompts[i])
    adjacent = [_lcp(prompts[order[k]], prompts[order[k + 1]]) for k in range(n - 1)]
    stack: list[tuple[int, int, _Node | None]] = [(0, n, None)]  # runs order[lo:hi] under a parent
    while stack:
        lo, hi, parent = stack.pop()
        if hi - lo == 1:
            node_of[order[lo]] = parent
            continue
        common = min(adjacent[lo:hi - 1])
        usable = min(common, min(len(prompts[order[k]]) for k in range(lo, hi)) - 1)
        node = parent
        if usable - (parent.length if parent else 0) >= min_tokens:
            node = _Node(usable, list(prompts[order[lo]][:usable]), parent)
        start = lo
        for k in range(lo, hi - 1):
            if adjacent[k] == common:  # the run's common prefix ends here: split into sub-runs
                stack.append((start, k + 1, node))
                start = k + 1
        stack.append((start, hi, node))
    for node in node_of:
        if node is not None:
            node.rows += 1
    return node_of


def supported(model: Any) -> bool:
    from mlx_lm.models.cache import KVCache, make_prompt_cache

    return all(type(c) is KVCache for c in make_prompt_cache(model))


def _copy(cache: list) -> list:
    """New cache objects over the same (immutable) arrays; extending them leaves the source alone."""
    from mlx_lm.models.cache import KVCache

    out = []
    for c in cache:
        k = KVCache()
        k.keys = c.keys[..., :c.offset, :]
        k.values = c.values[..., :c.offset, :]
        k.offset = c.offset
        out.append(k)
    return out


class SharedPrefixes:
    """The shared prefixes of one set of prompts, for one model with its current adapter.

    Caches are prefilled lazily, once each; ``rows`` hands out copies a caller may extend.
    """

    def __init__(self, model: Any, prompts: list[list[int]], min_tokens: int = MIN_TOKENS):
        self.model = model
        self._node_of = plan(prompts, min_tokens) if supported(model) else [None] * len(prompts)
        self.prefilled_tokens = 0  # tokens actually run through the model for prefixes

    def subset(self, indices: list[int]) -> "SharedPrefixes":
        """The same prefixes (and caches already built) for ``prompts[i] for i in indices``."""
        view = SharedPrefixes.__new__(SharedPrefixes)
        view.model = self.model
        view._node_of = [self._node_of[i] for i in indices]
        view.prefilled_tokens = 0
        return view

    def length(self, i: int) -> int:
        node = self._node_of[i]
        return node.length if node else 0

    @property
    def saved_tokens(self) -> int:
        """Prompt tokens the rows do not prefill themselves."""
        return sum(self.length(i) for i in range(len(self._node_of)))

    def cache(self, i: int) -> list | None:
        """A copy of prompt ``i``'s prefix cache (``length(i)`` tokens), or None."""
        node = self._node_of[i]
        return _copy(self._build(node)) if node else None

    # --- cascade attention (harness.cascade): the root prefix kept once, not copied per row ---

    @property
    def cascade(self) -> bool:
        """Can these rows decode with cascade attention (some row has a prefix, the model passes the probe)?"""
        if not any(self._node_of):
            return False
        from .cascade import supported

        return supported(self.model)

    def root_groups(self) -> list[list[int]]:
        """Row indices by top-level prefix group (rows without a prefix last), each in order."""
        groups: dict[int, list[int]] = {}
        none: list[int] = []
        for i, node in enumerate(self._node_of):
            (groups.setdefault(id(node.root), []) if node else none).append(i)
        return [*groups.values(), *([none] if none else [])]

    def root_length(self, i: int) -> int:
        """Length of prompt ``i``'s top-level shared prefix (the part cascade attention keeps once)."""
        node = self._node_of[i]
        return node.root.length if node else 0

    def cascade_cache(self, i: int) -> list:
        """Row ``i``'s cache for cascade attention: its root prefix shared (not copied), deeper
        nested prefix positions as the row's own."""
        from mlx_lm.models.cache import KVCache, make_prompt_cache

        from .cascade import rows_cache, shared_prefix

        node = self._node_of[i]
        if node is None:  # mixes with prefixed rows in a batch (the prefix moves into each row then)
            return rows_cache(None, None, len(make_prompt_cache(self.model)))

        root = node.root
        if root.shared is None:
            root.shared = shared_prefix(self._build(root), id(root))
        own = None
        if node is not root:
            own = []
            for c in self._build(node):
                k = KVCache()
                k.keys = c.keys[..., root.length:c.offset, :]
                k.values = c.values[..., root.length:c.offset, :]
                k.offset = c.offset - root.length
                own.append(k)
        return rows_cache(root.shared, own, len(root.shared))

    def _build(self, node: _Node) -> list:
        if node.cache is not None:
            return node.cache
        import mlx.core as mx
        from mlx_lm.models.cache import make_prompt_cache

        if node.parent is not None:
            cache, start = _copy(self._build(node.parent)), node.parent.length
        else:
            cache, start = make_prompt_cache(self.model), 0
        tokens = node.tokens[start:]
        for at in range(0, len(tokens), PREFILL_STEP):
            self.model(mx.array([tokens[at:at + PREFILL_STEP]]), cache=cache)
            mx.eval([c.state for c in cache])
        self.prefilled_tokens += len(tokens)
        node.cache = cache
        return cache
