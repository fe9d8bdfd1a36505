"""In-memory splits of inputs and targets: what every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradfree.data.ragged import Targets, num_rows


@dataclass(frozen=True)
class Split:
    """Inputs and targets of one split.

    Shapes:
        x: ``(N, *input_shape)`` float32; y: one row per input: ``(N,)`` int64 class labels, ``(N, outputs)``
        float regression targets, or a :class:`~gradfree.data.ragged.Ragged` (e.g. the boxes of each image).
    """

    x: Tensor
    y: Targets

    def __post_init__(self) -> None:
        if self.x.shape[0] != num_rows(self.y):
            raise ValueError(f"x has {self.x.shape[0]} rows but y has {num_rows(self.y)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> Split:
        """This split on ``device``."""
        return Split(self.x.to(device), self.y.to(device))

    def subset(self, index: Tensor) -> Split:
        """The rows at ``index``."""
        return Split(self.x[index], self.y[index])


@dataclass(frozen=True)
class DataSplits:
    """Train / validation / test splits of a dataset.

    ``num_classes`` is what the model's last layer must produce per input: the classes of a classifier, the
    outputs of a regression, the classes of a detector (its head adds box and objectness channels).
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(64,)`` or ``(1, 28, 28)``."""
        return tuple(self.train.x.shape[1:])

    def to(self, device: torch.device | str) -> DataSplits:
        """All splits on ``device``."""
        return DataSplits(self.name, self.train.to(device), self.val.to(device), self.test.to(device),
                          self.num_classes)


def stratified_subset(y: Tensor, size: int, *, generator: torch.Generator) -> Tensor:
    """Indices of a seeded subset of ``size`` rows with class proportions kept (largest remainder).

    Returns:
        sorted int64 indices, shape ``(size,)``.
    """
    n = int(y.shape[0])
    if not 0 < size <= n:
        raise ValueError(f"subset size must be in 1..{n}, got {size}")
    classes, counts = torch.unique(y, return_counts=True)
    quota = counts.double() * size / n
    take = quota.floor().long()
    remainder = size - int(take.sum())
    if remainder:
        order = torch.argsort(quota - take.double(), descending=True, stable=True)
        take[order[:remainder]] += 1
    picked = []
    for c, k in zip(classes.tolist(), take.tolist(), strict=True):
        members = torch.nonzero(y == c, as_tuple=False).flatten()
        picked.append(members[torch.randperm(members.numel(), generator=generator)[:k]])
    return torch.sort(torch.cat(picked)).values
