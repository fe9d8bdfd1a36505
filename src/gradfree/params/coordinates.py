"""Single-coordinate evaluation: the loss when one weight of the flat vector takes other values.

Search methods that change one weight at a time (RSO, per-parameter grid search) ask "what is the loss if
weight ``i`` were ``v1, v2, ...``" thousands of times per second on one batch. :class:`CoordinateEvaluator`
is that question's interface; :func:`coordinate_evaluator` returns the fastest implementation for a module.
The reference implementation here scores the K candidates as a population of K full vectors; the
incremental engine (:mod:`gradfree.params.incremental`) recomputes only what a single weight touches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from gradfree.params.flat import FlatParams
from gradfree.params.population import LossFn, PopulationLoss


class CoordinateEvaluator(Protocol):
    """Losses of single-coordinate changes of ``flat`` on one fixed batch.

    One evaluation is charged per candidate value (a forward pass of one parameter vector over the batch,
    however it is computed); ``evaluations`` counts them, including the one for the current loss.
    """

    num_dims: int
    evaluations: int

    def loss(self) -> float:
        """Loss at the current parameters (computed once, then kept up to date by :meth:`set_value`)."""
        ...

    def try_values(self, index: int, values: Tensor) -> Tensor:
        """Losses ``(K,)`` with flat coordinate ``index`` set to each of ``values (K,)``; nothing changes."""
        ...

    def set_value(self, index: int, value: float, loss: float | None = None) -> None:
        """Write ``value`` into coordinate ``index`` of the module; ``loss``, when known from
        :meth:`try_values`, becomes the current loss without another evaluation."""
        ...


class PopulationCoordinateEvaluator:
    """Reference :class:`CoordinateEvaluator`: each candidate is scored as a full vector (batched).

    Args:
        flat: the parameters coordinates index into.
        loss_fn: ``(output, target) -> scalar``.
        x, y: the batch.
    """

    def __init__(self, flat: FlatParams, loss_fn: LossFn, x: Tensor, y: Tensor) -> None:
        self.flat, self.x, self.y = flat, x, y
        self.population = PopulationLoss(flat, loss_fn)
        self.num_dims = flat.num_dims
        self.evaluations = 0
        self._vector = flat.get()
        self._loss: float | None = None

    def loss(self) -> float:
        if self._loss is None:
            self._loss = float(self.population(self._vector.unsqueeze(0), self.x, self.y)[0])
            self.evaluations += 1
        return self._loss

    def try_values(self, index: int, values: Tensor) -> Tensor:
        candidates = self._vector.unsqueeze(0).repeat(values.shape[0], 1)
        candidates[:, index] = values.to(candidates.dtype)
        self.evaluations += int(values.shape[0])
        return self.population(candidates, self.x, self.y)

    @torch.no_grad()
    def set_value(self, index: int, value: float, loss: float | None = None) -> None:
        self._vector[index] = value
        slot = next(s for s in self.flat.slots if s.offset <= index < s.stop)
        tensor = self.flat.tensors[self.flat.slots.index(slot)]
        tensor.view(-1)[index - slot.offset] = value
        self._loss = loss


class ChargedCoordinates:
    """A :class:`CoordinateEvaluator` that hands every loss it spends (each charged evaluation) to
    ``spend``: a run's counter records them, a hybrid's phase adds up their number."""

    def __init__(self, inner: CoordinateEvaluator, spend: Callable[[Tensor], None]) -> None:
        self.inner, self.spend = inner, spend
        self.num_dims = inner.num_dims

    @property
    def evaluations(self) -> int:
        return self.inner.evaluations

    def loss(self) -> float:
        before = self.inner.evaluations
        value = self.inner.loss()
        if self.inner.evaluations > before:
            self.spend(torch.tensor([value]))
        return value

    def try_values(self, index: int, values: Tensor) -> Tensor:
        losses = self.inner.try_values(index, values)
        self.spend(losses)
        return losses

    def set_value(self, index: int, value: float, loss: float | None = None) -> None:
        self.inner.set_value(index, value, loss)


def coordinate_evaluator(flat: FlatParams, loss_fn: LossFn, x: Tensor, y: Tensor) -> CoordinateEvaluator:
    """The fastest available :class:`CoordinateEvaluator` for ``flat``'s module on the batch ``(x, y)``: an
    incremental engine (:func:`gradfree.params.incremental.incremental_evaluator`) where one supports the
    module, parameters and loss, else the reference :class:`PopulationCoordinateEvaluator`."""
    from gradfree.params.incremental import incremental_evaluator

    fast = incremental_evaluator(flat, loss_fn, x, y)
    return fast if fast is not None else PopulationCoordinateEvaluator(flat, loss_fn, x, y)
