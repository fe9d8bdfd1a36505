"""The input-space objective: a model treated as a black box, queried on batches of inputs, every query counted.

Black-box attacks and explanations estimate gradients with respect to the *input* of a model they can only
query. :class:`BlackBox` is that model behind a query interface:

* **access level** — what a query returns: ``"logits"`` (raw scores), ``"probabilities"`` (softmax of the
  scores) or ``"label"`` (the top-1 class only, int64: a decision-based attacker's view);
* **an exact query counter per input** — one query is one input row scored by the model, charged to the input
  it belongs to (its *owner*, e.g. the image being attacked), whatever the batching; a query that fails a
  budget check is not made and not charged;
* **an optional query budget per input** — :class:`QueryBudgetExceeded` (a clear error) before a query that
  would pass it, so a method can never spend more than it was given; :meth:`BlackBox.remaining` tells a
  method how much it has left;
* **batched, chunked, gradient-free evaluation** — any number of rows in one call, split into forwards that
  stay under a memory bound, under ``torch.no_grad()`` with the model in eval mode (its training flag is
  restored afterwards: querying never changes the model).

:class:`InputObjective` turns one input's queries into a
:class:`~gradfree.objective.vector.VectorObjective` over the flattened input (``(P, D) -> (P,)`` losses), so
every estimator in :mod:`gradfree.estimators` applies to inputs exactly as it applies to parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import Tensor, nn

from gradfree.errors import ConfigError, GradfreeError
from gradfree.objective.population import activation_elements

AccessLevel = Literal["logits", "probabilities", "label"]
ACCESS_LEVELS: tuple[str, ...] = ("logits", "probabilities", "label")

DEFAULT_MEMORY_BYTES = 256 * 2**20
"""Bound on the activation memory of one forward of a query batch (as for populations of parameters)."""


class QueryBudgetExceeded(GradfreeError, RuntimeError):
    """A query would take an input past its query budget; nothing was queried or charged."""


def check_access(access: str) -> AccessLevel:
    """``access`` if it is one of :data:`ACCESS_LEVELS`, else a :class:`ConfigError` naming them."""
    if access not in ACCESS_LEVELS:
        raise ConfigError(f"access level must be one of {', '.join(ACCESS_LEVELS)}, got {access!r}")
    return access  # type: ignore[return-value]


class BlackBox:
    """A classifier that can only be queried: inputs in, scores or labels out, every query counted.

    Args:
        model: the module (or any function ``(B, *input_shape) -> (B, C)`` scores); never modified.
        input_shape: the shape of one input, e.g. ``(1, 28, 28)``.
        num_inputs: how many inputs share this box, each with its own counter (e.g. the images of an
            attacked batch); a query names its owners ``0 .. num_inputs - 1``.
        access: ``"logits"``, ``"probabilities"`` or ``"label"`` (see the module docstring).
        budget: queries each input may spend (``None``: unlimited).
        memory_bytes: bound on the activation memory of one forward; a query batch is split to stay under it.
        max_batch: at most this many rows per forward, whatever the memory bound (``None``: no cap).

    Attributes:
        queries: ``(num_inputs,)`` int64, the queries charged to each input so far.
        forwards: forward passes run (chunks), for reports of batching.
    """

    def __init__(self, model: nn.Module | Callable[[Tensor], Tensor], *, input_shape: tuple[int, ...],
                 num_inputs: int = 1, access: str = "logits", budget: int | None = None,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, max_batch: int | None = None) -> None:
        if not isinstance(num_inputs, int) or num_inputs < 1:
            raise ConfigError(f"num_inputs must be a positive int, got {num_inputs!r}")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            raise ConfigError(f"the query budget must be a positive number of queries per input, got {budget!r}")
        if memory_bytes <= 0 or (max_batch is not None and max_batch < 1):
            raise ConfigError("memory_bytes must be positive and max_batch >= 1")
        self.model = model
        self.input_shape = tuple(int(s) for s in input_shape)
        self.access: AccessLevel = check_access(access)
        self.budget = budget
        self.memory_bytes, self.max_batch = memory_bytes, max_batch
        self.queries = torch.zeros(num_inputs, dtype=torch.int64)
        self.forwards = 0
        self._rows_per_forward: int | None = None

    @property
    def num_inputs(self) -> int:
        """Inputs with a counter of their own."""
        return int(self.queries.numel())

    @property
    def total_queries(self) -> int:
        """Queries charged to all inputs together."""
        return int(self.queries.sum())

    def remaining(self, owners: Tensor | int | None = None) -> Tensor:
        """Queries left to ``owners`` (all inputs when ``None``) under the budget; a huge number without one."""
        left = (torch.full_like(self.queries, torch.iinfo(torch.int64).max) if self.budget is None
                else self.budget - self.queries)
        return left if owners is None else left[_owner_index(owners, self.num_inputs)]

    def charge(self, owners: Tensor) -> None:
        """Charge one query to each entry of ``owners`` (repeats count each time), or raise before charging any.

        Raises:
            QueryBudgetExceeded: some input would pass its budget; the message names it.
        """
        index = _owner_index(owners, self.num_inputs)
        spent = torch.bincount(index, minlength=self.num_inputs)
        if self.budget is not None:
            over = torch.nonzero(self.queries + spent > self.budget).flatten()
            if over.numel():
                i = int(over[0])
                raise QueryBudgetExceeded(
                    f"input {i} has {int(self.queries[i])} of its {self.budget} queries spent and this call asks "
                    f"for {int(spent[i])} more ({over.numel()} input(s) over budget); ask remaining() first")
        self.queries += spent

    def query(self, x: Tensor, owners: Tensor | int = 0) -> Tensor:
        """Score the rows of ``x`` ``(P, *input_shape)``, charging one query per row to its owner.

        Args:
            x: the inputs; any float dtype and device the model accepts.
            owners: the input each row belongs to: one int for all rows, or ``(P,)`` int64.

        Returns:
            ``(P, C)`` logits or probabilities (float, on ``x``'s device), or ``(P,)`` int64 labels.

        Raises:
            ConfigError: a wrongly shaped batch. QueryBudgetExceeded: see :meth:`charge`.
        """
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ConfigError(f"expected queries of shape (P, {', '.join(map(str, self.input_shape))}), got "
                              f"{tuple(x.shape)}")
        p = x.shape[0]
        owner_rows = (torch.full((p,), owners, dtype=torch.int64) if isinstance(owners, int)
                      else owners.detach().to("cpu", torch.int64).reshape(-1))
        if owner_rows.numel() != p:
            raise ConfigError(f"{p} query rows but {owner_rows.numel()} owners")
        self.charge(owner_rows)
        scores = self._scores(x.detach())
        if self.access == "label":
            return scores.argmax(dim=1)
        if self.access == "probabilities":
            return torch.softmax(scores, dim=1)
        return scores

    def _scores(self, x: Tensor) -> Tensor:
        if x.shape[0] == 0:
            with torch.no_grad():
                probe = self._forward(torch.zeros(1, *self.input_shape, dtype=x.dtype, device=x.device))
            return probe[:0]
        chunk = self._chunk(x)
        with torch.no_grad():
            parts = []
            for rows in x.split(chunk):
                parts.append(self._forward(rows))
                self.forwards += 1
        return torch.cat(parts)

    def _forward(self, x: Tensor) -> Tensor:
        with evaluation_mode(self.model):
            return self.model(x)

    def _chunk(self, x: Tensor) -> int:
        if self._rows_per_forward is None:
            model = self.model
            if isinstance(model, nn.Module):
                with evaluation_mode(model):  # a probe in training mode would move batch-norm statistics
                    elements = activation_elements(model, x[:1])
            else:
                elements = x[:1].numel()
            self._rows_per_forward = max(1, self.memory_bytes // max(1, elements * x.element_size()))
        rows = self._rows_per_forward
        return min(rows, self.max_batch) if self.max_batch is not None else rows

    def __repr__(self) -> str:
        budget = "unlimited" if self.budget is None else str(self.budget)
        return (f"BlackBox(input_shape={self.input_shape}, access={self.access!r}, inputs={self.num_inputs}, "
                f"budget={budget}, queries={self.total_queries})")


@contextmanager
def evaluation_mode(model: nn.Module | Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Run ``model`` in eval mode inside the block and restore its training flags after (a no-op for a
    plain function)."""
    if not isinstance(model, nn.Module):
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _owner_index(owners: Tensor | int, n: int) -> Tensor:
    index = (torch.tensor([owners], dtype=torch.int64) if isinstance(owners, int)
             else owners.detach().to("cpu", torch.int64).reshape(-1))
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
        raise ConfigError(f"query owners must lie in 0..{n - 1}, got {index.min().item()}..{index.max().item()}")
    return index


ScoreFn = Callable[[Tensor], Tensor]
"""``score(outputs) -> (P,)`` losses from what the box returns (scores ``(P, C)`` or labels ``(P,)``)."""


class InputObjective:
    """One input's queries as a vector objective over its flattened pixels: ``(P, D) -> (P,)`` losses.

    Args:
        box: the black box.
        loss: turns the box's outputs for the ``P`` points into ``P`` losses (e.g. a margin on the scores of
            the true class); it sees exactly what the access level allows.
        owner: the input these queries are charged to.

    Shapes:
        ``__call__(points (P, D)) -> (P,)`` with ``D = prod(box.input_shape)``.
    """

    def __init__(self, box: BlackBox, loss: ScoreFn, *, owner: int = 0) -> None:
        self.box, self.loss, self.owner = box, loss, owner
        self.num_dims = 1
        for s in box.input_shape:
            self.num_dims *= s

    def __call__(self, points: Tensor) -> Tensor:
        if points.ndim != 2 or points.shape[1] != self.num_dims:
            raise ConfigError(f"expected points of shape (P, {self.num_dims}), got {tuple(points.shape)}")
        outputs = self.box.query(points.reshape(points.shape[0], *self.box.input_shape), owners=self.owner)
        return self.loss(outputs)

    @property
    def queries(self) -> int:
        """Queries charged to this objective's input so far."""
        return int(self.box.queries[self.owner])
