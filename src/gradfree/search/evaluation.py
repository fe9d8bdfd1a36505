"""How a search method gets single-coordinate losses from a closure (whole vectors: ``optim.base.batch_objective``).

The trainer's closure (:class:`gradfree.train.objective.BatchObjective`) answers both questions fast and
counts every evaluation: ``closure.coordinates(tensors)`` is a
:class:`~gradfree.params.coordinates.CoordinateEvaluator` (incremental where the module allows it) and
``closure.batch(vectors, tensors)`` scores a population in one call. A plain ``torch.optim`` closure has
neither; then the candidate values are written into the parameters, the closure is called once per
candidate, and the parameters are restored exactly. Either way one candidate costs one evaluation.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

import torch
from torch import Tensor

from gradfree.params.coordinates import CoordinateEvaluator, PassResult, greedy_pass_by_tries
from gradfree.params.flat import FlatParams

Closure = Callable[[], Tensor]
"""``losses = fn(vectors (P, D))``, shape ``(P,)``."""


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
        """See :meth:`~gradfree.params.coordinates.CoordinateEvaluator.greedy_pass` (closure calls)."""
        return greedy_pass_by_tries(self, self.flat, indices, candidates, l2=l2, keep_current=keep_current)


def coordinates_of(closure: Closure, flat: FlatParams) -> CoordinateEvaluator:
    """The fastest coordinate evaluator ``closure`` offers over ``flat``'s tensors on its batch."""
    make = getattr(closure, "coordinates", None)
    if make is not None:
        evaluator: CoordinateEvaluator = make(flat.tensors)
        return evaluator
    return ClosureCoordinates(flat, closure)
