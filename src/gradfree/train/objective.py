"""The loss of a module on one batch, as a closure that counts every evaluation.

One evaluation is one forward pass of one parameter vector over one batch. :class:`BatchObjective` is a
plain ``torch.optim`` closure (``objective()`` is the loss at the current parameters) that also scores a
whole population in one call (``objective.batch(vectors, tensors)``), which zeroth-order optimizers use.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradfree.params.coordinates import ChargedCoordinates, coordinate_evaluator
from gradfree.params.flat import FlatParams
from gradfree.params.population import LossFn, PopulationLoss


@dataclass
class EvaluationCounter:
    """Running counts of a run: evaluations, backward passes, and non-finite (rejected) evaluations."""

    evaluations: int = 0
    backward: int = 0
    rejected: int = 0

    def record(self, losses: Tensor) -> None:
        """Count ``losses.numel()`` evaluations and how many of them were not finite."""
        self.evaluations += losses.numel()
        self.rejected += int((~torch.isfinite(losses)).sum())


class PopulationLosses:
    """Builds and keeps one :class:`PopulationLoss` per set of tensors a caller perturbs."""

    def __init__(self, module: nn.Module, loss_fn: LossFn) -> None:
        self.module = module
        self.loss_fn = loss_fn
        self._cache: dict[tuple[int, ...], PopulationLoss] = {}

    def get(self, tensors: list[Tensor]) -> PopulationLoss:
        """The population loss over ``tensors`` (flat vector in their order)."""
        key = tuple(id(t) for t in tensors)
        if key not in self._cache:
            self._cache[key] = PopulationLoss(FlatParams(self.module, params=tensors), self.loss_fn)
        return self._cache[key]


class BatchObjective:
    """Closure over one batch ``(x, y)`` that counts its evaluations in ``counter``.

    Args:
        module: the model.
        loss_fn: ``(output, target) -> scalar``.
        x, y: the batch.
        populations: shared cache of batched evaluators for this module.
        counter: where evaluations are counted.
    """

    def __init__(self, module: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, *,
                 populations: PopulationLosses, counter: EvaluationCounter) -> None:
        self.module, self.loss_fn, self.x, self.y = module, loss_fn, x, y
        self.populations = populations
        self.counter = counter

    @torch.no_grad()
    def __call__(self) -> Tensor:
        loss = self.loss_fn(self.module(self.x), self.y)
        self.counter.record(loss.detach().reshape(1))
        return loss

    def coordinates(self, tensors: list[Tensor]) -> ChargedCoordinates:
        """A single-coordinate evaluator over ``tensors`` on this batch, charging its evaluations here."""
        flat = self.populations.get(tensors).flat
        return ChargedCoordinates(coordinate_evaluator(flat, self.loss_fn, self.x, self.y), self.counter.record)

    def batch(self, vectors: Tensor, tensors: list[Tensor]) -> Tensor:
        """Losses ``(P,)`` of the flat ``vectors (P, D)`` written into ``tensors``, in one batched call."""
        losses = self.populations.get(tensors)(vectors, self.x, self.y)
        self.counter.record(losses)
        return losses
