"""A :class:`Problem`: the model, its loss and the training batches — everything a worker needs to score a
population of parameter vectors on the batch of any step.

The trainer builds one (:meth:`gradfree.train.Trainer.problem`) and trains on its batches; a remote
evaluator ships it once to every worker, which then rebuilds the batch of step ``s`` from the integer ``s``
(:class:`~gradfree.data.batches.TrainingBatches` is a pure function of the step) and each member from seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from gradfree.data.augment import Augmenter
from gradfree.data.batches import TrainingBatches
from gradfree.data.ragged import Targets, num_rows
from gradfree.data.splits import Split
from gradfree.errors import ConfigError
from gradfree.objective.population import LossFn, Mode, PopulationLoss
from gradfree.params.flat import FlatParams


@dataclass(frozen=True)
class Problem:
    """What an evaluator scores: a model, its loss and the training batches of every step.

    Args:
        model: the module whose parameters the vectors hold (its architecture, buffers and unselected
            parameters matter; every member is written over the selected parameters).
        loss_fn: ``(output, target) -> scalar``, ``torch.vmap``-compatible for the batched paths unless
            ``mode="loop"``; picklable for remote workers (a module-level function or a task's static method).
        batches: the training batches (:class:`~gradfree.data.batches.TrainingBatches`).
        params: qualified names of the parameters a vector holds, in vector order (``None``: every
            parameter with ``requires_grad``); names, not tensors, so the selection survives pickling.
        mode: the :class:`~gradfree.objective.population.PopulationLoss` path (``"auto"``: the fastest valid).
        memory_bytes: bound on the activation memory of one population chunk.
    """

    model: nn.Module
    loss_fn: LossFn
    batches: TrainingBatches
    params: tuple[str, ...] | None = None
    mode: Mode = "auto"
    memory_bytes: int = 256 * 2**20
    _flat: list[FlatParams] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.batches.split) == 0:
            raise ConfigError("the training set is empty")

    @classmethod
    def of(cls, model: nn.Module, loss_fn: LossFn, x: Tensor, y: Targets, *, batch_size: int | None = None,
           batch_seed: int = 0, augmentation: Augmenter | None = None, **options: Any) -> Problem:
        """A problem over the training set ``(x, y)`` with batches of ``batch_size`` rows (``None``: all)."""
        if x.shape[0] != num_rows(y):
            raise ConfigError(f"x has {x.shape[0]} rows but y has {num_rows(y)}")
        if batch_size is not None and batch_size <= 0:
            raise ConfigError(f"batch_size must be positive or None (full batch), got {batch_size}")
        batches = TrainingBatches(Split(x, y), batch_size, seed=batch_seed, augmentation=augmentation)
        return cls(model, loss_fn, batches, **options)

    @property
    def num_rows(self) -> int:
        """Rows in the training set."""
        return len(self.batches.split)

    @property
    def flat(self) -> FlatParams:
        """The flat view of ``model`` the vectors follow (built once, on whichever side holds the problem)."""
        if not self._flat:
            if self.params is None:
                flat = FlatParams(self.model)
            else:
                named = dict(self.model.named_parameters())
                missing = [n for n in self.params if n not in named]
                if missing:
                    raise ConfigError(f"the model has no parameter {', '.join(missing)}")
                flat = FlatParams(self.model, params=[named[n] for n in self.params])
            self._flat.append(flat)
        return self._flat[0]

    @property
    def num_dims(self) -> int:
        """Length ``D`` of a parameter vector."""
        return self.flat.num_dims

    def rows(self, step: int | None) -> Tensor | None:
        """Row indices of the batch of ``step`` (before augmentation), ``None`` meaning all rows."""
        return None if step is None else self.batches.order.rows(step)

    def batch(self, step: int | None) -> tuple[Tensor, Targets]:
        """Inputs and targets of the batch of ``step`` (the whole, unaugmented training set for ``None``)."""
        if step is None:
            return self.batches.split.x, self.batches.split.y
        return self.batches.batch(step)

    def population_loss(self) -> PopulationLoss:
        """A batched scorer of flat vectors on this problem's model."""
        return PopulationLoss(self.flat, self.loss_fn, mode=self.mode, memory_bytes=self.memory_bytes)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_flat"] = []  # rebuilt on the receiving side, bound to its own copy of the model
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
