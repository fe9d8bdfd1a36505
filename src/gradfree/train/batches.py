"""Seeded mini-batch order with a state that can be saved and resumed exactly."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class BatchOrder:
    """Index batches over ``n`` rows: a fresh seeded permutation every epoch; ``batch_size=None`` is full batch.

    Args:
        n: rows in the training split.
        batch_size: rows per batch, or ``None`` for the whole split every step.
        seed: seeds the private generator of the permutations.
    """

    def __init__(self, n: int, batch_size: int | None, *, seed: int) -> None:
        self.n = n
        self.batch_size = None if batch_size is None or batch_size >= n else batch_size
        self._generator = torch.Generator().manual_seed(seed)
        self._perm: Tensor | None = None
        self._pos = 0
        self.epoch = 0

    def next(self) -> Tensor | None:
        """Indices of the next batch (CPU int64), or ``None`` meaning all rows."""
        if self.batch_size is None:
            self.epoch += 1
            return None
        if self._perm is None or self._pos + self.batch_size > self.n:
            # Drop the ragged tail: every step sees the same batch size, so evaluations compare fairly.
            self._perm = torch.randperm(self.n, generator=self._generator)
            self._pos = 0
            self.epoch += 1
        index = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return index

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the same sequence of batches."""
        return {"generator": self._generator.get_state(), "perm": self._perm, "pos": self._pos,
                "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
        self._generator.set_state(state["generator"])
        self._perm, self._pos, self.epoch = state["perm"], state["pos"], state["epoch"]
