"""Where a strategy's population is evaluated: the evaluator interface and the in-process implementation.

A strategy never knows where its population is scored. The driver loop is always::

    losses = evaluator.evaluate(strategy, step=g)   # (P,) float64: the pending generation on batch g
    strategy.tell(losses)

and the evaluator is either :class:`LocalEvaluator` (this process, one batched forward pass through
:class:`~gradfree.params.PopulationLoss`) or :class:`~gradfree.distributed.ray_evaluator.RayEvaluator` (a pool
of Ray actors that rebuild the members from seeds). Both are built from the same :class:`Problem`, so the
same seed gives the same losses on either.

Mini-batches are named by a *step* number, not shipped: ``Problem.rows(step)`` is a pure function of the
problem's ``batch_seed`` and ``step`` (a fresh seeded permutation per epoch, the ragged tail dropped), so a
remote worker that holds the training set finds the batch of step ``g`` from the integer ``g`` alone.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.objective.problem import Problem
from gradfree.strategies.base import Strategy


class Evaluator(ABC):
    """Scores the pending generation of a strategy on one mini-batch of a :class:`Problem`.

    Attributes:
        problem: what is evaluated.
        evaluations: members scored and returned so far, counted here at the driver (one evaluation is one
            forward pass of one parameter vector over one batch). Work lost to a failed worker is not counted.
    """

    problem: Problem
    evaluations: int = 0

    @abstractmethod
    def evaluate(self, strategy: Strategy, *, step: int | None = None) -> Tensor:
        """Losses ``(P,)`` (float64, CPU) of the strategy's pending generation, starting one if none is pending.

        Args:
            strategy: any registered strategy; it is only asked, never told (the caller tells it the
                returned losses, unchanged).
            step: the batch (``problem.batch(step)``); ``None`` evaluates on the whole training set.
        """

    def close(self) -> None:  # noqa: B027  (nothing to release locally)
        """Release workers and memory held by the evaluator; it cannot be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


EvaluatorFactory = Callable[[Problem], Evaluator]
"""Builds an evaluator for a problem: ``LocalEvaluator`` itself, or e.g.
``functools.partial(RayEvaluator, address="auto", num_actors=8)``."""


def check_strategy(strategy: Strategy, problem: Problem) -> None:
    """Raise :class:`ConfigError` unless ``strategy`` searches vectors of ``problem``'s dimension and dtype."""
    if strategy.num_dims != problem.num_dims:
        raise ConfigError(
            f"the strategy searches {strategy.num_dims} dims but the model has {problem.num_dims} "
            "parameters to optimise; build it with num_dims=problem.num_dims"
        )
    if strategy.dtype != problem.flat.dtype:
        raise ConfigError(
            f"the strategy's vectors are {strategy.dtype} but the model's parameters are {problem.flat.dtype}; "
            "build the strategy with init_mean=problem.flat.get()"
        )


class LocalEvaluator(Evaluator):
    """Evaluates the whole population in this process with one batched :class:`PopulationLoss` call.

    Args:
        problem: the model, loss and data.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.evaluations = 0
        self._loss = problem.population_loss()

    def evaluate(self, strategy: Strategy, *, step: int | None = None) -> Tensor:
        """Losses ``(P,)`` float64 of ``strategy.ask()`` on mini-batch ``step`` (see :class:`Evaluator`)."""
        check_strategy(strategy, self.problem)
        x, y = self.problem.batch(step)
        members = strategy.ask().to(x.device)
        losses = self._loss(members, x, y).detach().to("cpu", torch.float64)
        self.evaluations += int(losses.shape[0])
        return losses

    def __repr__(self) -> str:
        return f"LocalEvaluator(num_dims={self.problem.num_dims}, mode={self._loss.mode!r})"


def state_digest(state: Mapping[str, Any]) -> bytes:
    """A 16-byte BLAKE2b digest of a strategy ``state_dict``: equal digests mean bit-identical states.

    Tensors are hashed by dtype, shape and raw bytes; other values by ``repr`` (floats by their exact
    ``float.hex``), in key order. Used to check that a remote replica of a strategy is the driver's to the bit.
    """
    h = hashlib.blake2b(digest_size=16)
    _feed(h, state)
    return h.digest()


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, Tensor):
        t = value.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).reshape(-1).numpy().data)  # no copy
    elif isinstance(value, Mapping):
        h.update(b"{")
        for key in sorted(value, key=str):
            h.update(repr(key).encode())
            _feed(h, value[key])
        h.update(b"}")
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        h.update(b"[")
        for item in value:
            _feed(h, item)
        h.update(b"]")
    elif isinstance(value, float):
        h.update(b"f" + (value.hex() if math.isfinite(value) else repr(value)).encode())
    else:
        h.update(repr(value).encode())
