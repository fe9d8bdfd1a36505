"""What classification and regression share: a dataset whose targets have one row per input, a loss that is a
mean over rows (so it vmaps over a population and the incremental engines can update it row by row), and the
image augmentation of :mod:`gradfree.data.augment`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradfree.data.augment import Augmenter, build_augmentation
from gradfree.data.ragged import dense
from gradfree.data.splits import DataSplits, Split
from gradfree.tasks.protocol import LOSS, Metric


@dataclass
class SupervisedTask:
    """Base of the tasks whose targets are one tensor row per input.

    Attributes:
        data: the splits (on the device the run uses).
        default_model: the model spec used when none is given.
    """

    data: DataSplits
    default_model: str

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self.data.name

    @property
    def monitor(self) -> Metric:
        """Validation follows the loss (smooth, and what these tasks' runs have always selected on)."""
        return LOSS

    @property
    def loss_vmappable(self) -> bool:
        """A mean over rows of a per-row loss: ``torch.vmap``-compatible."""
        return True

    def augmentation(self, spec: str | None) -> Augmenter | None:
        """Shifts and flips of the training images (targets unchanged); see :mod:`gradfree.data.augment`."""
        return build_augmentation(spec, self.data.train.x)

    def chunks(self, split: Split, chunk: int) -> list[tuple[Tensor, Tensor]]:
        """``split`` in chunks of ``chunk`` rows, targets as tensors."""
        y = dense(split.y)
        return [(split.x[s : s + chunk], y[s : s + chunk]) for s in range(0, len(split), chunk)]


@torch.no_grad()
def for_each_chunk(model: nn.Module, chunks: list[tuple[Tensor, Tensor]], fn: Callable[[Tensor, Tensor], None]) -> None:
    """Call ``fn(output, target)`` on every chunk with the model in eval mode, restoring its mode after."""
    was_training = model.training
    model.eval()
    try:
        for x, y in chunks:
            fn(model(x), y)
    finally:
        model.train(was_training)
