"""The :class:`Task` protocol: what the trainer, the benchmarks and the reports need from any task.

A task is a dataset with its loss and its metrics. Classification, regression and detection implement it; the
trainer, the suites, the runner and the reports are written against it alone, so a new task is one file and
one registration line (see ``docs/ARCHITECTURE.md``).

* ``data``: train / validation / test :class:`~gradfree.data.splits.Split` s; targets may be a tensor or
  :class:`~gradfree.data.ragged.Ragged` (a variable number of boxes per image), indexed the same way.
* ``loss_fn(output, target) -> scalar``: the training loss of one batch. ``loss_vmappable`` says whether it
  may run under ``torch.vmap`` over a population of parameter vectors (it must not branch on the outputs'
  values); when it is false, population evaluation writes each member into the model and loops.
* ``evaluate(model, split) -> {"loss": ..., metric: ...}``: monitoring, never counted in a budget.
* ``headline``: the metric summaries, reports and suites show first (accuracy, R^2, mAP@0.5).
* ``monitor``: the validation metric that early stopping and the best-weights restore follow. Classification
  and regression follow the validation loss (smooth, and what their runs have always used); detection
  follows mAP, since its loss is a poor proxy for it.
* ``augmentation(spec)``: the task's training-time augmentation for a spec string (``--augment``), which
  moves targets with the inputs where it must (boxes with a flipped image), or ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor, nn

from gradfree.data.augment import Augmenter
from gradfree.data.splits import DataSplits, Split


@dataclass(frozen=True)
class Metric:
    """A metric a task reports, and which way is better.

    Attributes:
        name: its key in :meth:`Task.evaluate`'s result (``"accuracy"``, ``"loss"``, ``"map50"``) and, with a
            split prefix, in a run's final metrics (``"test_accuracy"``).
        higher_is_better: the direction.
        label: how tables and plots name it (default: ``name``).
        percent: shown as a percentage (accuracies).
    """

    name: str
    higher_is_better: bool
    label: str = ""
    percent: bool = False

    @property
    def display(self) -> str:
        """The label tables and plots use."""
        return self.label or self.name

    def worst(self) -> float:
        """A value every real one beats (``-inf`` or ``+inf``)."""
        return -math.inf if self.higher_is_better else math.inf

    def better(self, value: float, than: float) -> bool:
        """Whether ``value`` is strictly better than ``than`` (NaN is never better)."""
        return value > than if self.higher_is_better else value < than

    def at_least_as_good(self, value: float, than: float) -> bool:
        """Whether ``value`` is as good as ``than`` or better (NaN never is)."""
        return value >= than if self.higher_is_better else value <= than

    def format(self, value: float) -> str:
        """``value`` as tables print it."""
        return f"{value:.2%}" if self.percent else f"{value:.4g}"


LOSS = Metric("loss", higher_is_better=False)
"""The mean training loss on a split: what classification and regression runs select their weights on."""

ACCURACY = Metric("accuracy", higher_is_better=True, label="accuracy", percent=True)


LossFn = Callable[[Tensor, Any], Tensor]
"""``loss_fn(output, target) -> scalar``: the mean training loss of one batch."""


class Task(Protocol):
    """A dataset with its loss and metrics (see the module docstring)."""

    data: DataSplits
    default_model: str

    @property
    def name(self) -> str:
        """The dataset's name."""
        ...

    @property
    def headline(self) -> Metric:
        """The metric summaries and reports lead with."""
        ...

    @property
    def monitor(self) -> Metric:
        """The validation metric early stopping and the best-weights restore follow."""
        ...

    @property
    def loss_vmappable(self) -> bool:
        """Whether :meth:`loss_fn` may run under ``torch.vmap`` over a population of parameter vectors."""
        ...

    def loss_fn(self, output: Tensor, target: Any) -> Tensor:
        """The mean training loss of one batch."""
        ...

    def evaluate(self, model: nn.Module, split: Split) -> dict[str, float]:
        """``loss``, the headline and the other metrics of ``model`` on ``split`` (not counted in a budget)."""
        ...

    def augmentation(self, spec: str | None) -> Augmenter | None:
        """The augmentation ``spec`` names for this task's training batches (``None``: none)."""
        ...
