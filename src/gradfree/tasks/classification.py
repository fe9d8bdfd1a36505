"""Classification: cross-entropy loss and accuracy on a :class:`~gradfree.data.splits.DataSplits`."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.data.splits import Split
from gradfree.objective.row_loss import mean_row_loss
from gradfree.tasks.protocol import ACCURACY, Metric
from gradfree.tasks.supervised import SupervisedTask, for_each_chunk


@dataclass
class ClassificationTask(SupervisedTask):
    """Integer class labels, cross-entropy, accuracy as the headline.

    Attributes:
        data: the splits (on the device the run uses); ``y`` holds int64 labels ``(N,)``.
        default_model: the model spec used when none is given.
    """

    @property
    def headline(self) -> Metric:
        """Accuracy."""
        return ACCURACY

    @staticmethod
    @mean_row_loss("cross_entropy")
    def loss_fn(output: Tensor, target: Tensor) -> Tensor:
        """Mean cross-entropy; ``torch.vmap``-compatible, so populations are scored in one call."""
        return F.cross_entropy(output, target)

    def evaluate(self, model: nn.Module, split: Split, *, chunk: int = 4096) -> dict[str, float]:
        """Mean loss and accuracy of ``model`` on ``split`` (monitoring: not counted in the budget)."""
        total = {"loss": 0.0, "correct": 0}

        def add(out: Tensor, y: Tensor) -> None:
            total["loss"] += float(F.cross_entropy(out, y, reduction="sum"))
            total["correct"] += int((out.argmax(dim=1) == y).sum())

        for_each_chunk(model, self.chunks(split, chunk), add)
        n = max(len(split), 1)
        return {"loss": total["loss"] / n, "accuracy": total["correct"] / n}
