"""Where a strategy's population is evaluated: the evaluator interface, the problem it evaluates, and the
in-process implementation.

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
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import torch
from torch import Tensor, nn

from gradfree.errors import ConfigError
from gradfree.params.flat import FlatParams
from gradfree.params.population import LossFn, Mode, PopulationLoss
from gradfree.strategies.base import Strategy
from gradfree.strategies.noise import row_seed


@dataclass(frozen=True)
class Problem:
    """What an evaluator scores: a model, its loss, the training set and the seeded mini-batch order.

    Shipped once to every remote worker (pickled into the object store), never per generation.

    Args:
        model: the module whose parameters the strategy's vectors hold (only its architecture, buffers and
            unselected parameters matter: every member is written over the selected parameters).
        loss_fn: ``(output, target) -> scalar``, ``torch.vmap``-compatible for the batched paths (e.g.
            ``torch.nn.functional.cross_entropy``); must be picklable for remote workers (a module-level
            function, not a lambda defined in a test or notebook unless cloudpickle can pickle it by value).
        x, y: the training inputs ``(N, ...)`` and targets ``(N, ...)`` (CPU).
        batch_size: rows of a mini-batch; ``None`` (or ``>= N``) evaluates every step on all rows.
        batch_seed: seeds the per-epoch permutations of :meth:`rows`.
        include: which parameters the flat vector holds (regular expressions, see
            :class:`~gradfree.params.FlatParams`); ``None`` selects all trainable ones.
        mode: the :class:`~gradfree.params.PopulationLoss` path (``"auto"`` picks the fastest valid one).
        memory_bytes: bound on the activation memory of one population chunk.
    """

    model: nn.Module
    loss_fn: LossFn
    x: Tensor
    y: Tensor
    batch_size: int | None = None
    batch_seed: int = 0
    include: tuple[str, ...] | None = None
    mode: Mode = "auto"
    memory_bytes: int = 256 * 2**20
    _flat: list[FlatParams] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ConfigError(f"x has {self.x.shape[0]} rows but y has {self.y.shape[0]}")
        if self.x.shape[0] == 0:
            raise ConfigError("the training set is empty")
        if self.batch_size is not None and self.batch_size <= 0:
            raise ConfigError(f"batch_size must be positive or None (full batch), got {self.batch_size}")

    @property
    def num_rows(self) -> int:
        """Rows in the training set."""
        return int(self.x.shape[0])

    @property
    def flat(self) -> FlatParams:
        """The flat view of ``model`` the strategy's vectors follow (built once)."""
        if not self._flat:
            self._flat.append(FlatParams(self.model, include=self.include))
        return self._flat[0]

    @property
    def num_dims(self) -> int:
        """Length ``D`` of a parameter vector."""
        return self.flat.num_dims

    def rows(self, step: int | None) -> Tensor | None:
        """Row indices of mini-batch ``step`` (CPU int64, ``(batch_size,)``), or ``None`` meaning all rows.

        Step ``s`` lies in epoch ``s // (N // batch_size)``; each epoch is a fresh permutation drawn from a
        generator seeded with ``row_seed(batch_seed, epoch)``, cut into ``N // batch_size`` batches (the
        ragged tail is dropped so every step costs the same). A pure function of ``(batch_seed, step)``.
        """
        n = self.num_rows
        if step is None or self.batch_size is None or self.batch_size >= n:
            return None
        if step < 0:
            raise ConfigError(f"step must be >= 0, got {step}")
        per_epoch = n // self.batch_size
        epoch, pos = divmod(step, per_epoch)
        gen = torch.Generator().manual_seed(row_seed(self.batch_seed, epoch))
        perm = torch.randperm(n, generator=gen)
        return perm[pos * self.batch_size : (pos + 1) * self.batch_size]

    def batch(self, step: int | None) -> tuple[Tensor, Tensor]:
        """Inputs and targets of mini-batch ``step`` (all rows for ``None``)."""
        index = self.rows(step)
        return (self.x, self.y) if index is None else (self.x[index], self.y[index])

    def population_loss(self) -> PopulationLoss:
        """A batched scorer of flat vectors on this problem's model."""
        return PopulationLoss(self.flat, self.loss_fn, mode=self.mode, memory_bytes=self.memory_bytes)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_flat"] = []  # rebuilt on the receiving side, bound to its own copy of the model
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


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
            step: the mini-batch (``problem.rows(step)``); ``None`` evaluates on the whole training set.
        """

    def close(self) -> None:  # noqa: B027  (nothing to release locally)
        """Release workers and memory held by the evaluator; it cannot be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
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
