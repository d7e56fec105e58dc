"""Batches: rows of similar length together, and a loss mask over exactly the real targets.

Why this differs from mlx-lm's ``iterate_batches``: there every row's "length" is the
length of its raw record (1), so the sort is a no-op and a batch pads its rows to the
longest random one, rounded up to 32 + 1; and its mask admits one padding target per row.
Here rows are sorted by token count each epoch (ties broken by a seeded shuffle), cut
into batches, and the batches shuffled, so padding is a few tokens per row; the mask is
1 exactly where the target is a real answer token.

The order is a pure function of (seed, epoch), so a data position is just the number of
micro-batches consumed: resume needs no iterator state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import Example


@dataclass
class Batch:
    inputs: np.ndarray  # (rows, T) int32
    targets: np.ndarray  # (rows, T) int32
    mask: np.ndarray  # (rows, T) float32: 1 where the target is trained on
    ntokens: int  # mask.sum(): real target tokens
    lengths: np.ndarray  # (rows,) real input length of each row


def epoch_order(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Row indices of every batch of one epoch, length-bucketed, in shuffled batch order.

    The ``len % batch_size`` rows left over are drawn at random each epoch (not always
    the longest ones), so every batch has the same row count and a compiled step sees
    few distinct shapes.
    """
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    perm = perm[len(lengths) % batch_size:]
    order = perm[np.argsort(lengths[perm], kind="stable")]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def make_batch(examples: list[Example], pad_multiple: int) -> Batch:
    """Inputs/targets shifted by one, padded to a multiple of ``pad_multiple``."""
    longest = max(len(e.ids) for e in examples) - 1
    width = -(-longest // pad_multiple) * pad_multiple
    inputs = np.zeros((len(examples), width), np.int32)
    targets = np.zeros((len(examples), width), np.int32)
    mask = np.zeros((len(examples), width), np.float32)
    for row, e in enumerate(examples):
        n = len(e.ids) - 1
        inputs[row, :n] = e.ids[:-1]
        targets[row, :n] = e.ids[1:]
        # Target t is token t + 1: trained when it is past the prompt.
        mask[row, max(e.prompt_len, 1) - 1:n] = 1.0
    return Batch(inputs, targets, mask, int(mask.sum()), np.array([len(e.ids) - 1 for e in examples]))


def split_rows(batch: Batch, max_tokens: int | None, pad_multiple: int) -> list[Batch]:
    """Slices of a batch's rows, each at most ``max_tokens`` padded tokens (one row at least).

    The loss is a token sum normalised once per optimizer step, so the slices' summed
    gradients are the whole batch's: the update is the same and the peak memory (which
    a single long-tail batch sets) is lower.
    """
    rows, width = batch.inputs.shape
    if max_tokens is None or rows * width <= max_tokens:
        return [batch]
    per = max(1, max_tokens // width)
    out = []
    for i in range(0, rows, per):
        n = -(-int(batch.lengths[i:i + per].max()) // pad_multiple) * pad_multiple
        out.append(Batch(batch.inputs[i:i + per, :n], batch.targets[i:i + per, :n], batch.mask[i:i + per, :n],
                         int(batch.mask[i:i + per].sum()), batch.lengths[i:i + per]))
    return out


@dataclass
class TrainStream:
    """The training batches as a function of the position (micro-batches consumed).

    With ``world > 1`` the global batch is split row-wise: rank r takes rows r, r+world,
    ... of each length-sorted batch, so every rank gets rows of the same length range.
    """

    examples: list[Example]
    batch_size: int
    seed: int
    pad_multiple: int
    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        self.lengths = np.array([len(e.ids) for e in self.examples])
        self.per_epoch = len(self.examples) // self.batch_size
        self._epoch, self._order = -1, []

    def batch(self, position: int) -> Batch:
        epoch, index = divmod(position, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, epoch_order(self.lengths, self.batch_size, self.seed, epoch)
        rows = self._order[index][self.rank::self.world]
        return make_batch([self.examples[i] for i in rows], self.pad_multiple)


def eval_batches(examples: list[Example], batch_size: int, pad_multiple: int,
                 rank: int = 0, world: int = 1) -> list[Batch]:
    """Validation batches in a fixed order (sorted by length), every row exactly once."""
    order = np.argsort([len(e.ids) for e in examples], kind="stable")
    out = []
    for i in range(0, len(order), batch_size):
        rows = order[i:i + batch_size][rank::world]
        if len(rows):
            out.append(make_batch([examples[j] for j in rows], pad_multiple))
    return out
