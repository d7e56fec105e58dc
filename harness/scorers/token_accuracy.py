"""Teacher-forced next-token accuracy and perplexity on the targets.

The model reads the prompt exactly as it was encoded for generation
(``Item.stats["prompt_token_ids"]``, set by the runner) followed by the target
(``encode_completion``: the answer and EOS, as the trainer teaches it), and at each
target position we ask whether its most likely next token is the target's and what
probability it gives it. This is the number training curves show; it sits beside the
generation metrics of the same suite because a model can predict the next token well
under teacher forcing and still collapse into a loop when it feeds on its own output.

Per item (kept in results.json's items): the value is the share of the item's target
tokens predicted (argmax) and ``nll`` its mean negative log-likelihood per target token.
Per suite (``aggregate``), everything is pooled over target tokens: ``token_accuracy``
= hits / tokens, ``token_accuracy.nll`` = total NLL / tokens and
``token_accuracy.perplexity`` = exp(``nll``), each with a seeded bootstrap interval over
items (kind ``pooled``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..prompts import encode_completion
from .base import Item, Score, Scorer

BATCH_TOKENS = 2048  # padded tokens per forward pass (its logits are tokens x vocab floats)
BOOTSTRAP_SAMPLES = 1000


class TokenAccuracy(Scorer):
    name = "token_accuracy"
    version = "2"  # 2: token_accuracy and nll pooled over tokens (were means of item means)
    needs_model = True
    model_needs = "the model's logits over each target token (teacher forcing: prompt ids + target ids)"
    reuse_scores = True  # one forward pass per batch of items, the same for the same inputs
    lower_is_better = frozenset({"nll", "perplexity"})
    metric_keys = frozenset({"nll", "perplexity"})
    unbounded = frozenset({"nll", "perplexity"})  # nats per token; the accuracy is a share

    def score_all(self, items: list[Item], model: Any = None) -> list[Score]:
        import mlx.core as mx

        tokenizer = model.tokenizer
        scores: list[Score | None] = [None] * len(items)
        work = []  # (index, context ids, target ids)
        for i, item in enumerate(items):
            context = item.stats.get("prompt_token_ids")
            if item.case.target is None:
                scores[i] = Score(None, None, "the suite gives no target for this case")
            elif not context:
                scores[i] = Score(None, None, "no prompt tokens recorded for this item "
                                              "(token accuracy needs a live model run)")
            else:
                target = encode_completion(tokenizer, item.case.target)
                if not target:
                    scores[i] = Score(None, None, "the target encodes to no tokens")
                else:
                    work.append((i, list(context), target))

        work.sort(key=lambda w: len(w[1]) + len(w[2]))
        start = 0
        while start < len(work):
            end = start + 1
            while end < len(work) and (end - start + 1) * (len(work[end][1]) + len(work[end][2])) <= BATCH_TOKENS:
                end += 1
            batch = work[start:end]
            length = max(len(c) + len(t) for _, c, t in batch) - 1
            inputs = np.zeros((len(batch), length), dtype=np.int32)  # right padding: causal, so harmless
            labels = np.zeros((len(batch), length), dtype=np.int32)
            for row, (_, c, t) in enumerate(batch):
                seq = (c + t)[:-1]
                inputs[row, :len(seq)] = seq
                labels[row, len(c) - 1:len(c) - 1 + len(t)] = t
            logits = model.model(mx.array(inputs)).astype(mx.float32)
            label_arr = mx.array(labels)
            picked = mx.take_along_axis(logits, label_arr[..., None], axis=-1)[..., 0]
            nll_all = mx.logsumexp(logits, axis=-1) - picked
            hit_all = mx.argmax(logits, axis=-1) == label_arr
            mx.eval(nll_all, hit_all)
            nll_np, hit_np = np.array(nll_all), np.array(hit_all)
            for row, (i, c, t) in enumerate(batch):
                span = slice(len(c) - 1, len(c) - 1 + len(t))
                scores[i] = _score(int(hit_np[row, span].sum()), len(t), float(nll_np[row, span].sum()))
            start = end
        return scores  # type: ignore[return-value]

    def aggregate(self, scores: list[Score]) -> dict[str, dict]:
        """Suite metrics pooled over target tokens, not averaged over items.

        ``token_accuracy`` = predicted target tokens / target tokens, ``.nll`` = total NLL /
        target tokens, ``.perplexity`` = exp(``.nll``) (so the three agree by definition;
        a mean of per-item means would weight a 3-token answer like a 300-token one).
        Intervals: one seeded bootstrap over items (the unit that was sampled) of the
        same ratios; the perplexity bounds are exp of the nll bounds.
        """
        rows = np.array([(s.extra["hits"], s.extra["nll_sum"], s.extra["target_tokens"]) for s in scores
                         if "nll_sum" in s.extra and "hits" in s.extra], dtype=np.float64)
        if not len(rows):
            return {}
        n = len(rows)
        tokens = rows[:, 2].sum()
        accuracy, nll = rows[:, 0].sum() / tokens, rows[:, 1].sum() / tokens
        rng = np.random.default_rng(0)
        idx = rng.integers(0, n, size=(BOOTSTRAP_SAMPLES, n))
        boot_tokens = rows[idx, 2].sum(axis=1)
        acc_low, acc_high = np.quantile(rows[idx, 0].sum(axis=1) / boot_tokens, [0.025, 0.975])
        nll_low, nll_high = np.quantile(rows[idx, 1].sum(axis=1) / boot_tokens, [0.025, 0.975])

        def pooled(value: float, low: float, high: float) -> dict:
            return {"value": float(value), "ci_low": float(low), "ci_high": float(high), "n": n,
                    "kind": "pooled"}

        return {self.name: pooled(accuracy, acc_low, acc_high),
                f"{self.name}.nll": pooled(nll, nll_low, nll_high),
                f"{self.name}.perplexity": pooled(_exp(nll), _exp(nll_low), _exp(nll_high))}


def _exp(x: float) -> float:
    return math.exp(min(x, 700.0))


def _score(hits: int, n: int, nll_sum: float) -> Score:
    mean_nll = nll_sum / n
    return Score(hits / n, None,
                 f"{hits}/{n} target tokens predicted under teacher forcing; "
                 f"perplexity {_exp(mean_nll):.2f}",
                 metrics={"nll": mean_nll},
                 extra={"target_tokens": n, "nll_sum": nll_sum, "hits": hits})
