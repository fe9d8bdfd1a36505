"""Single-coordinate evaluation: the loss when one weight of the flat vector takes other values.

Search methods that change one weight at a time (RSO, per-parameter grid search) ask "what is the loss if
weight ``i`` were ``v1, v2, ...``" thousands of times per second on one batch. :class:`CoordinateEvaluator`
is that question's interface.
Its :meth:`~CoordinateEvaluator.greedy_pass` asks the question for a whole list of weights, keeping the best
value of each as it goes; :func:`greedy_pass_by_tries` is that pass through single tries, and an engine may
run it in compiled code instead.
The reference implementation here scores the K candidates as a population of K full vectors; the
incremental engines (:mod:`gradfree.engines.incremental`) recompute only what a single weight touches, and
:func:`gradfree.engines.incremental.selection.coordinate_evaluator` picks the fastest for a module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.objective.population import LossFn, PopulationLoss
from gradfree.params.flat import FlatParams


class PassResult(NamedTuple):
    """What a :meth:`CoordinateEvaluator.greedy_pass` did."""

    choices: Tensor
    """``(n,)`` int64: the candidate column each coordinate was set to, -1 where it kept its value."""
    losses: Tensor
    """``(n, K)`` float64: every loss tried (each an evaluation)."""


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

    def greedy_pass(self, indices: Tensor, candidates: Tensor, *, l2: float = 0.0,
                    keep_current: bool = True) -> PassResult:
        """For each of the distinct coordinates ``indices (n,)`` in turn, try ``candidates (n, K)`` (in the
        parameters' dtype) against the network as the pass has left it, and set the coordinate to the
        candidate with the lowest ``loss + l2 / 2 * value**2`` if that beats the current value's score (with
        ``keep_current=False`` the best finite candidate is always taken). Ties keep the earlier, the current
        value first; a NaN loss never wins. Equal to :func:`greedy_pass_by_tries`."""
        ...


def greedy_pass_by_tries(evaluator: CoordinateEvaluator, flat: FlatParams, indices: Tensor, candidates: Tensor,
                         *, l2: float = 0.0, keep_current: bool = True) -> PassResult:
    """:meth:`CoordinateEvaluator.greedy_pass` through ``evaluator``'s :meth:`~CoordinateEvaluator.try_values`
    and :meth:`~CoordinateEvaluator.set_value` (``flat``: the parameters its coordinates index into)."""
    index_list = check_pass(indices, candidates, evaluator.num_dims)
    values = candidates.detach().cpu().to(flat.dtype).double().tolist()  # as writing them would round
    current = flat.get().cpu()
    half_l2 = 0.5 * l2
    choices = torch.full((len(index_list),), -1, dtype=torch.int64)
    losses = torch.empty(tuple(candidates.shape), dtype=torch.float64)
    for t, index in enumerate(index_list):
        offered = values[t]
        tried = evaluator.try_values(index, torch.tensor(offered, dtype=flat.dtype, device=flat.device)).cpu()
        losses[t] = tried
        best = math.inf
        if keep_current:
            cur = float(current[index])
            best = evaluator.loss() + half_l2 * cur * cur
        choice = -1
        tried_list = tried.tolist()
        for k, loss in enumerate(tried_list):
            score = loss + half_l2 * offered[k] * offered[k]
            if score < best:
                best, choice = score, k
        if choice >= 0:
            evaluator.set_value(index, offered[choice], tried_list[choice])
            choices[t] = choice
    return PassResult(choices, losses)


def check_pass(indices: Tensor, candidates: Tensor, num_dims: int) -> list[int]:
    """The pass's coordinates as a list, after checking the shapes, the range and that none repeats."""
    if indices.ndim != 1 or candidates.ndim != 2 or candidates.shape[0] != indices.shape[0]:
        raise ConfigError(f"a greedy pass takes indices (n,) and candidates (n, K); got {tuple(indices.shape)} "
                          f"and {tuple(candidates.shape)}")
    index_list = indices.tolist()
    if index_list and (min(index_list) < 0 or max(index_list) >= num_dims):
        raise IndexError(f"coordinates out of range 0..{num_dims - 1}")
    if len(set(index_list)) != len(index_list):
        raise ConfigError("a greedy pass visits each coordinate once; the indices repeat")
    return index_list


class PopulationCoordinateEvaluator:
    """Reference :class:`CoordinateEvaluator`: each candidate is scored as a full vector (batched).

    Args:
        flat: the parameters coordinates index into.
        loss_fn: ``(output, target) -> scalar``.
        x, y: the batch.
        seed: for a stochastic model, the step's seed: every candidate sees the same random numbers
            (:mod:`gradfree.objective.randomness`).
    """

    def __init__(self, flat: FlatParams, loss_fn: LossFn, x: Tensor, y: Any, *, seed: int | None = None) -> None:
        self.flat, self.x, self.y, self.seed = flat, x, y, seed
        self.population = PopulationLoss(flat, loss_fn)
        self.num_dims = flat.num_dims
        self.evaluations = 0
        self._vector = flat.get()
        self._loss: float | None = None

    def loss(self) -> float:
        if self._loss is None:
            self._loss = float(self.population(self._vector.unsqueeze(0), self.x, self.y, seed=self.seed)[0])
            self.evaluations += 1
        return self._loss

    def try_values(self, index: int, values: Tensor) -> Tensor:
        candidates = self._vector.unsqueeze(0).repeat(values.shape[0], 1)
        candidates[:, index] = values.to(candidates.dtype)
        self.evaluations += int(values.shape[0])
        return self.population(candidates, self.x, self.y, seed=self.seed)

    @torch.no_grad()
    def set_value(self, index: int, value: float, loss: float | None = None) -> None:
        self._vector[index] = value
        slot = next(s for s in self.flat.slots if s.offset <= index < s.stop)
        tensor = self.flat.tensors[self.flat.slots.index(slot)]
        tensor.view(-1)[index - slot.offset] = value
        self._loss = loss

    def greedy_pass(self, indices: Tensor, candidates: Tensor, *, l2: float = 0.0,
                    keep_current: bool = True) -> PassResult:
        return greedy_pass_by_tries(self, self.flat, indices, candidates, l2=l2, keep_current=keep_current)


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

    def greedy_pass(self, indices: Tensor, candidates: Tensor, *, l2: float = 0.0,
                    keep_current: bool = True) -> PassResult:
        result = self.inner.greedy_pass(indices, candidates, l2=l2, keep_current=keep_current)
        self.spend(result.losses.reshape(-1))
        return result
