"""Does the adapted model stop? Its EOS prediction at the end of each validation answer.

A base that never saw its EOS token in pretraining (llama2.c's stories models separate
stories with BOS) does not learn to stop from a LoRA adapter: the validation loss falls,
and every output at eval runs to ``max_tokens``. The loss does not show it (one token per
answer), the eval shows it only as truncated outputs. So each validation also reads, from
the logits it already computes, the EOS target that ends each answer: is it the argmax,
and with what probability. No extra forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np

# Below this share of validation answers whose final EOS is the argmax, the adapter does
# not stop. Measured teacher-forced on 32 validation rows: the fixture adapters that stop at
# eval (sql, domain, regress, forgetful) 1.00 (mean EOS probability 0.89-1.00), their base
# 0.91-0.97; stories260K after LoRA runs of 16-200 steps that lower the validation loss
# (2.97 -> 0.45), 0.00 (mean probability 0.003-0.004). The gap is wide; below one half,
# most answers run on, which is what a user must hear about.
MIN_EOS_TOP1 = 0.5


@dataclass
class EosTally:
    """Sums over the validation batches: answers ending in EOS, how many of those EOS
    targets were the argmax, and their summed probability (mx scalars, summed lazily)."""

    eos_id: int
    answers: mx.array = field(default_factory=lambda: mx.array(0.0))
    top1: mx.array = field(default_factory=lambda: mx.array(0.0))
    prob: mx.array = field(default_factory=lambda: mx.array(0.0))

    def add(self, logits: mx.array, targets: np.ndarray, mask: np.ndarray, lengths: np.ndarray) -> None:
        """Count the rows whose last target (position ``length - 1``) is a trained EOS."""
        rows = np.arange(len(lengths))
        last = lengths - 1
        ends = (targets[rows, last] == self.eos_id) & (mask[rows, last] > 0)
        if not ends.any():
            return
        rows, last = mx.array(rows[ends]), mx.array(last[ends])
        end_logits = logits[rows, last].astype(mx.float32)  # (answers, vocab)
        probs = mx.softmax(end_logits, axis=-1)[:, self.eos_id]
        self.answers = self.answers + int(ends.sum())
        self.top1 = self.top1 + (mx.argmax(end_logits, axis=-1) == self.eos_id).sum().astype(mx.float32)
        self.prob = self.prob + probs.sum()

    def arrays(self) -> list[mx.array]:
        return [self.answers, self.top1, self.prob]

    def summary(self) -> dict[str, float] | None:
        """``{"eos_top1": share, "eos_prob": mean}``, None when no answer ends in EOS."""
        answers = self.answers.item()
        if not answers:
            return None
        return {"eos_top1": self.top1.item() / answers, "eos_prob": self.prob.item() / answers}


def stopping_warning(measured: dict[str, float] | None, eos_token: str, max_seq_length: int) -> str | None:
    """One line when the trained adapter does not predict EOS where its answers end, or when
    that could not be measured: no validation answer ends in EOS (``EosTally.summary`` is
    None), because each was cut at ``max_seq_length`` before its end token (the only way a
    training row loses the EOS the encoder appends). Silence there read as "it stops"."""
    if measured is None:
        return (f"whether the adapter stops could not be measured: no validation answer keeps its end "
                f"token {eos_token} (each is longer than max_seq_length={max_seq_length} and was cut "
                f"before it), so none shows where an answer ends; raise max_seq_length or shorten the "
                f"validation rows to measure it")
    if measured["eos_top1"] >= MIN_EOS_TOP1:
        return None
    return (f"the adapter does not predict the end token {eos_token} where validation answers end "
            f"(top choice in {measured['eos_top1']:.0%} of them, mean probability "
            f"{measured['eos_prob']:.3f}): its outputs will run on to max_tokens; give the eval suites "
            f"a `stop:` string, or, if the base never learned its EOS in pretraining (a LoRA adapter "
            f"does not teach it), train the EOS into the base")
