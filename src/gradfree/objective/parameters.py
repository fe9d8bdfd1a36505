"""The parameter-space objective: the loss of a module on one batch, as a closure that counts every evaluation.

:class:`ParameterObjective` is what the trainer hands an optimizer each step. It is a plain ``torch.optim``
closure (``objective()`` is the loss at the current parameters) and it has both abilities of
:mod:`gradfree.objective.closure`: it scores a whole population of flat vectors in one batched call
(:meth:`~ParameterObjective.population`) and answers single-weight questions through the fastest coordinate
evaluator for the module (:meth:`~ParameterObjective.coordinates`). Every evaluation is charged to the run's
:class:`~gradfree.objective.counter.EvaluationCounter`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gradfree.objective.coordinates import ChargedCoordinates, CoordinateEvaluator, PopulationCoordinateEvaluator
from gradfree.objective.counter import EvaluationCounter
from gradfree.objective.population import LossFn, Mode, PopulationLoss
from gradfree.objective.randomness import same_randomness
from gradfree.params.flat import FlatParams


class PopulationCache:
    """One :class:`PopulationLoss` per set of tensors a caller perturbs (built once, kept for the run).

    Args:
        module: the model.
        loss_fn: ``(output, target) -> scalar``.
        vmappable: whether ``loss_fn`` may run under ``torch.vmap`` (a task's ``loss_vmappable``); when not,
            populations are scored by writing each member into the module.
    """

    def __init__(self, module: nn.Module, loss_fn: LossFn, *, vmappable: bool = True) -> None:
        self.module = module
        self.loss_fn = loss_fn
        self.vmappable = vmappable
        self._cache: dict[tuple[int, ...], PopulationLoss] = {}

    def get(self, tensors: list[Tensor]) -> PopulationLoss:
        """The population loss over ``tensors`` (flat vector in their order)."""
        key = tuple(id(t) for t in tensors)
        if key not in self._cache:
            mode: Mode = "auto" if self.vmappable else "loop"
            self._cache[key] = PopulationLoss(FlatParams(self.module, params=tensors), self.loss_fn, mode=mode)
        return self._cache[key]


class ParameterObjective:
    """Closure over one batch ``(x, y)`` that counts its evaluations in ``counter``.

    Args:
        module: the model.
        loss_fn: ``(output, target) -> scalar``.
        x, y: the batch (``y`` a tensor or :class:`~gradfree.data.ragged.Ragged` targets).
        populations: shared cache of batched evaluators for this module.
        counter: where evaluations are counted.
        step: the trainer's step number: names the batch (a remote evaluator rebuilds it from this number).
        seed: for a model with stochastic layers, the step's seed: every evaluation of the step (the closure,
            the population, the coordinate questions) sees torch's RNG seeded with it — the same dropout mask —
            and the caller's RNG is left as it was (:mod:`gradfree.objective.randomness`). ``None``: the
            model is deterministic.

    The trainer restores batch-norm statistics around the step and moves them once itself
    (:mod:`gradfree.objective.running_stats`), so optimizers leave both randomness and statistics to it
    (:attr:`managed` is true).
    """

    managed = True

    def __init__(self, module: nn.Module, loss_fn: LossFn, x: Tensor, y: Any, *,
                 populations: PopulationCache, counter: EvaluationCounter, step: int | None = None,
                 seed: int | None = None) -> None:
        self.module, self.loss_fn, self.x, self.y = module, loss_fn, x, y
        self.populations = populations
        self.counter = counter
        self.step = step
        self.seed = seed

    @torch.no_grad()
    def __call__(self) -> Tensor:
        with same_randomness(self.seed):
            loss = self.loss_fn(self.module(self.x), self.y)
        self.counter.record(loss.detach().reshape(1))
        return loss

    def coordinates(self, tensors: list[Tensor]) -> ChargedCoordinates:
        """A single-coordinate evaluator over ``tensors`` on this batch, charging its evaluations here."""
        from gradfree.engines.incremental.selection import coordinate_evaluator

        flat = self.populations.get(tensors).flat
        if self.seed is not None:  # a stochastic model: the engines do not model dropout; score whole vectors
            evaluator: CoordinateEvaluator = PopulationCoordinateEvaluator(flat, self.loss_fn, self.x, self.y,
                                                                           seed=self.seed)
        else:
            evaluator = coordinate_evaluator(flat, self.loss_fn, self.x, self.y)
        return ChargedCoordinates(evaluator, self.counter.record)

    def charge(self, losses: Tensor) -> None:
        """Count ``losses`` computed elsewhere (a remote evaluator scoring this step's batch) as evaluations."""
        self.counter.record(losses)

    def population(self, vectors: Tensor, tensors: list[Tensor]) -> Tensor:
        """Losses ``(P,)`` of the flat ``vectors (P, D)`` written into ``tensors``, in one batched call."""
        losses = self.populations.get(tensors)(vectors, self.x, self.y, seed=self.seed)
        self.counter.record(losses)
        return losses
