"""Closures and what they can do: the parameter-space side of "the objective", for any optimizer.

An optimizer's ``step(closure)`` gets a closure that returns the loss at the current parameters, exactly as
for ``torch.optim``. A closure may have two further abilities, each named by a protocol here (and checked with
``isinstance``, never by probing attributes):

* :class:`PopulationClosure` — ``closure.population(vectors, tensors)`` scores a whole population of flat
  vectors written into ``tensors`` in one batched call;
* :class:`CoordinateClosure` — ``closure.coordinates(tensors)`` returns a
  :class:`~gradfree.objective.coordinates.CoordinateEvaluator` for single-weight changes (incremental where
  the module allows it).

The trainer's :class:`~gradfree.objective.parameters.ParameterObjective` has both. A plain closure has
neither; :func:`vector_objective` and :func:`coordinates_of` then write candidate values into the
parameters, call the closure once per candidate and restore the parameters exactly. Either way one candidate
costs one evaluation, counted by the closure.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from gradfree.objective.coordinates import CoordinateEvaluator, PassResult, greedy_pass_by_tries
from gradfree.objective.vector import VectorObjective
from gradfree.params.flat import FlatParams

Closure = Callable[[], Tensor]
"""``closure() -> loss`` at the current parameters (no ``backward``)."""


@runtime_checkable
class PopulationClosure(Protocol):
    """A closure that also scores a population of flat parameter vectors in one call."""

    def __call__(self) -> Tensor: ...

    def population(self, vectors: Tensor, tensors: list[Tensor]) -> Tensor:
        """Losses ``(P,)`` of ``vectors (P, D)`` written into ``tensors`` (flat in their order)."""
        ...


@runtime_checkable
class CoordinateClosure(Protocol):
    """A closure that also answers single-coordinate questions on its batch."""

    def __call__(self) -> Tensor: ...

    def coordinates(self, tensors: list[Tensor]) -> CoordinateEvaluator:
        """A coordinate evaluator over ``tensors`` (flat in their order) on this closure's batch."""
        ...


@runtime_checkable
class ManagedClosure(Protocol):
    """A closure whose owner (the trainer's :class:`~gradfree.objective.parameters.ParameterObjective`) keeps
    common random numbers and batch-norm statistics itself, so an optimizer must not (``managed`` true)."""

    managed: bool


def is_managed(closure: object) -> bool:
    """Whether ``closure`` is a :class:`ManagedClosure` that says so."""
    return isinstance(closure, ManagedClosure) and bool(closure.managed)


def vector_objective(closure: Closure, flat: FlatParams) -> VectorObjective:
    """The vector objective ``(P, D) -> (P,)`` over the parameters of ``flat``, built from ``closure``.

    Uses ``closure.population(vectors, flat.tensors)`` (one batched call) when the closure is a
    :class:`PopulationClosure`; otherwise writes each vector into the parameters, calls the closure, and
    restores the parameters afterwards. Either way every member costs one evaluation, counted by the closure.
    """
    if isinstance(closure, PopulationClosure):
        population = closure.population
        return lambda vectors: population(vectors, flat.tensors)

    @torch.no_grad()
    def loop(vectors: Tensor) -> Tensor:
        saved = flat.get()
        losses = torch.empty(vectors.shape[0], dtype=vectors.dtype, device=vectors.device)
        try:
            for i, v in enumerate(vectors):
                flat.set_(v)
                losses[i] = closure()
        finally:
            flat.set_(saved)
        return losses

    return loop


class ClosureCoordinates:
    """A :class:`CoordinateEvaluator` over a plain closure: write a value, call the closure, restore.

    Args:
        flat: the parameters the coordinates index into (flat order of ``flat.tensors``).
        closure: returns the loss at the current parameters (no backward).

    ``evaluations`` counts closure calls. The restore writes back the saved element itself, so a candidate
    that is not kept leaves the parameter bit-for-bit as it was.
    """

    def __init__(self, flat: FlatParams, closure: Closure) -> None:
        self.flat, self.closure = flat, closure
        self.num_dims = flat.num_dims
        self.evaluations = 0
        self._loss: float | None = None
        self._offsets = [s.offset for s in flat.slots]

    def _element(self, index: int) -> tuple[Tensor, int]:
        """The 1-D view of the tensor holding flat ``index``, and the index inside it."""
        k = bisect.bisect_right(self._offsets, index) - 1
        slot = self.flat.slots[k]
        return self.flat.tensors[k].view(-1), index - slot.offset

    @torch.no_grad()
    def loss(self) -> float:
        """Loss at the current parameters (one evaluation the first time, then kept up to date)."""
        if self._loss is None:
            self._loss = float(self.closure())
            self.evaluations += 1
        return self._loss

    @torch.no_grad()
    def try_values(self, index: int, values: Tensor) -> Tensor:
        """Losses ``(K,)`` with coordinate ``index`` set to each of ``values (K,)``; nothing changes."""
        view, i = self._element(index)
        saved = view[i].clone()
        losses = torch.empty(values.shape[0], dtype=torch.float64)
        try:
            for k, value in enumerate(values.tolist()):
                view[i] = value
                losses[k] = float(self.closure())
                self.evaluations += 1
        finally:
            view[i] = saved
        return losses

    @torch.no_grad()
    def set_value(self, index: int, value: float, loss: float | None = None) -> None:
        """Write ``value`` into coordinate ``index``; ``loss`` (when known) becomes the current loss."""
        view, i = self._element(index)
        view[i] = value
        self._loss = loss

    def greedy_pass(self, indices: Tensor, candidates: Tensor, *, l2: float = 0.0,
                    keep_current: bool = True) -> PassResult:
        """See :meth:`~gradfree.objective.coordinates.CoordinateEvaluator.greedy_pass` (closure calls)."""
        return greedy_pass_by_tries(self, self.flat, indices, candidates, l2=l2, keep_current=keep_current)


def coordinates_of(closure: Closure, flat: FlatParams) -> CoordinateEvaluator:
    """The fastest coordinate evaluator ``closure`` offers over ``flat``'s tensors on its batch."""
    if isinstance(closure, CoordinateClosure):
        return closure.coordinates(flat.tensors)
    return ClosureCoordinates(flat, closure)
