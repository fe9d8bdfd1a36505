"""Classification: cross-entropy loss and accuracy on a :class:`DataSplits`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.data.splits import DataSplits, Split
from gradfree.params.row_loss import mean_row_loss


@dataclass
class ClassificationTask:
    """A dataset with its loss and metrics.

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

    @staticmethod
    @mean_row_loss("cross_entropy")
    def loss_fn(output: Tensor, target: Tensor) -> Tensor:
        """Mean cross-entropy; ``torch.vmap``-compatible, so populations are scored in one call."""
        return F.cross_entropy(output, target)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: Split, *, chunk: int = 4096) -> dict[str, float]:
        """Mean loss and accuracy of ``model`` on ``split`` (monitoring: not counted in the budget)."""
        was_training = model.training
        model.eval()
        total_loss, correct = 0.0, 0
        try:
            for start in range(0, len(split), chunk):
                x, y = split.x[start : start + chunk], split.y[start : start + chunk]
                out = model(x)
                total_loss += float(F.cross_entropy(out, y, reduction="sum"))
                correct += int((out.argmax(dim=1) == y).sum())
        finally:
            model.train(was_training)
        n = max(len(split), 1)
        return {"loss": total_loss / n, "accuracy": correct / n}
