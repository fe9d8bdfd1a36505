"""The training batches of a run: a seeded mini-batch order and augmentation, both pure functions of the step.

Step ``s`` of a run trains on :meth:`TrainingBatches.batch` ``(s)``: the rows of
:meth:`BatchOrder.rows` ``(s)`` (a fresh seeded permutation every epoch, the ragged tail dropped so every
step sees the same batch size), augmented with a generator seeded from the run's seed and ``s`` alone. So any
process that holds the training split and these few integers rebuilds exactly the batch of any step — a
resumed run, or a remote worker told only the step number (:mod:`gradfree.distributed`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfree.data.augment import Augmenter
from gradfree.data.ragged import Targets
from gradfree.data.splits import Split

AUGMENT_SEED_STRIDE = 1_000_003
"""The augmentation of step ``s`` draws from a generator seeded ``seed * AUGMENT_SEED_STRIDE + s``."""


class BatchOrder:
    """Index batches over ``n`` rows: a fresh seeded permutation every epoch; ``batch_size=None`` is full batch.

    Epoch ``e``'s permutation is the ``e``-th ``torch.randperm(n)`` drawn from one generator seeded with
    ``seed``; step ``s`` takes batch ``s mod (n // batch_size)`` of epoch ``s // (n // batch_size)``. The last
    epoch's permutation and the generator state after it are cached, so consecutive steps cost one slice.

    Args:
        n: rows in the training split.
        batch_size: rows per batch, or ``None`` (or ``>= n``) for the whole split every step.
        seed: seeds the permutations.
    """

    def __init__(self, n: int, batch_size: int | None, *, seed: int) -> None:
        self.n = n
        self.batch_size = None if batch_size is None or batch_size >= n else batch_size
        self.seed = seed
        self._epoch = -1
        self._perm: Tensor | None = None
        self._generator = torch.Generator().manual_seed(seed)

    @property
    def per_epoch(self) -> int:
        """Steps per epoch (1 for full batch)."""
        return 1 if self.batch_size is None else self.n // self.batch_size

    def epoch(self, step: int) -> int:
        """The epoch step ``step`` lies in (0-based)."""
        return step // self.per_epoch

    def rows(self, step: int) -> Tensor | None:
        """Indices of the batch of ``step`` (CPU int64), or ``None`` meaning all rows."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self.batch_size is None:
            return None
        epoch, pos = divmod(step, self.per_epoch)
        if epoch < self._epoch:  # an earlier epoch (rare): replay the generator from the seed
            self._epoch, self._generator = -1, torch.Generator().manual_seed(self.seed)
        while self._epoch < epoch:
            self._perm = torch.randperm(self.n, generator=self._generator)
            self._epoch += 1
        assert self._perm is not None
        return self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]


class TrainingBatches:
    """The batch of every training step: :class:`BatchOrder` rows of ``split``, then ``augmentation``.

    Args:
        split: the training split (on the device the batches are wanted on).
        batch_size: rows per step, ``None`` for full batch.
        seed: seeds the batch order and the augmentation.
        augmentation: applied to every batch (training batches only), or ``None``.
    """

    def __init__(self, split: Split, batch_size: int | None, *, seed: int,
                 augmentation: Augmenter | None = None) -> None:
        self.split, self.seed, self.augmentation = split, seed, augmentation
        self.order = BatchOrder(len(split), batch_size, seed=seed)

    @property
    def batch_size(self) -> int | None:
        """Rows per step (``None``: every row)."""
        return self.order.batch_size

    def batch(self, step: int) -> tuple[Tensor, Targets]:
        """Inputs and targets of step ``step``."""
        index = self.order.rows(step)
        x: Tensor
        y: Targets
        if index is None:
            x, y = self.split.x, self.split.y
        else:
            x, y = self.split.x[index.to(self.split.x.device)], self.split.y[index.to(self.split.x.device)]
        if self.augmentation is not None:
            generator = torch.Generator().manual_seed(self.seed * AUGMENT_SEED_STRIDE + step)
            x, y = self.augmentation(x, y, generator)
        return x, y

    def to(self, device: torch.device | str) -> TrainingBatches:
        """The same batches with the split on ``device``."""
        return TrainingBatches(self.split.to(device), self.order.batch_size, seed=self.seed,
                               augmentation=self.augmentation)
