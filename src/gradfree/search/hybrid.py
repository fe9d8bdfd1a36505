"""Two optimizers in sequence: e.g. a search or zeroth-order phase, then gradient fine-tuning (or the reverse).

A common recipe is to let an explorative, derivative-free method find a good basin and a local method
finish there (hybrid or memetic schemes; P. Moscato, "On evolution, search, optimization, genetic
algorithms and martial arts: towards memetic algorithms", Caltech C3P report 826, 1989). :class:`Hybrid`
runs ``first`` until ``switch_after`` evaluations, or until its losses plateau, then ``second`` for the
rest of the run; either phase may be a search, a zeroth-order or a backprop optimizer.

The trainer reads ``optimizer.zeroth_order`` every step (:class:`~gradfree.optim.protocols.LossOnly`), so it
gives this optimizer a counting :class:`~gradfree.objective.parameters.ParameterObjective` closure in a
zeroth-order phase and runs backprop itself in a gradient phase (calling ``step()`` with no closure). The
hybrid counts evaluations itself, from the closures it hands to the phase optimizer (one per candidate
scored) and one per gradient step, which is exactly how the trainer counts them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.objective.closure import Closure, CoordinateClosure, PopulationClosure, is_managed
from gradfree.objective.coordinates import ChargedCoordinates
from gradfree.optim.base import GradientFreeOptimizer
from gradfree.optim.options import check
from gradfree.optim.protocols import works_from_losses
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER, build_optimizer, needs_gradient


class CountingClosure:
    """Wraps a closure; every call is charged to ``charge`` (one evaluation). It is managed (randomness and
    batch-norm statistics kept by the trainer) exactly when the wrapped closure is."""

    def __init__(self, closure: Closure, charge: Callable[[int], None]) -> None:
        self.closure, self.charge = closure, charge
        self.managed = is_managed(closure)

    def __call__(self) -> Tensor:
        loss = self.closure()
        self.charge(1)
        return loss


class CountingObjective(CountingClosure):
    """Wraps a closure that scores populations and answers coordinate questions (the trainer's
    :class:`~gradfree.objective.parameters.ParameterObjective`), charging every loss those compute too, so
    the phase optimizer keeps the fast paths."""

    def __init__(self, closure: ParameterObjectiveLike, charge: Callable[[int], None]) -> None:
        super().__init__(closure, charge)
        self.inner = closure

    def population(self, vectors: Tensor, tensors: list[Tensor]) -> Tensor:
        losses = self.inner.population(vectors, tensors)
        self.charge(int(vectors.shape[0]))
        return losses

    def coordinates(self, tensors: list[Tensor]) -> ChargedCoordinates:
        return ChargedCoordinates(self.inner.coordinates(tensors), lambda losses: self.charge(losses.numel()))


class ParameterObjectiveLike(PopulationClosure, CoordinateClosure, Protocol):
    """A closure with both abilities of :mod:`gradfree.objective.closure`."""


def counting(closure: Closure, charge: Callable[[int], None]) -> CountingClosure:
    """``closure`` wrapped so that its evaluations are charged, keeping the abilities it has (both or none)."""
    if isinstance(closure, PopulationClosure) and isinstance(closure, CoordinateClosure):
        return CountingObjective(closure, charge)
    return CountingClosure(closure, charge)


@dataclass(frozen=True)
class HybridOptions:
    """The hybrid's options.

    Attributes:
        lr: per-group multiplier of both phases' learning rates (0 freezes a group in both phases).
        first, second: registered optimizer names (``gradfree list optimizers``), e.g. ``"rso"`` and
            ``"adam"``, or ``"adam"`` and ``"one-plus-one"`` for the reverse order.
        first_options, second_options: their options (their own ``lr`` included).
        switch_after: switch once the first phase has spent this many evaluations.
        plateau: switch once the mean loss of the first phase's last ``window`` steps is less than
            ``plateau`` (relative) below the mean of the ``window`` steps before.
        window: steps per plateau window.
        seed: seeds the phases that take a seed (``seed`` for the first, ``seed + 1`` for the second)
            unless their options give one.

    At least one of ``switch_after`` and ``plateau`` is needed; with both, the first reached switches.
    """

    lr: float = 1.0
    first: str = "rso"
    second: str = "adam"
    first_options: Mapping[str, Any] | None = None
    second_options: Mapping[str, Any] | None = None
    switch_after: int | None = None
    plateau: float | None = None
    window: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.switch_after is not None or self.plateau is not None, "hybrid",
              "say when to switch from the first phase to the second: switch_after=N evaluations and/or "
              "plateau=TOL (e.g. 1e-3)")
        check(self.switch_after is None or self.switch_after >= 0, "hybrid",
              f"switch_after must be >= 0 evaluations, got {self.switch_after}")
        check(self.plateau is None or self.plateau >= 0, "hybrid",
              f"plateau must be a relative improvement >= 0, got {self.plateau}")
        check(self.window >= 1, "hybrid", f"window must be >= 1 step, got {self.window}")


@OPTIMIZERS.register("hybrid", summary="two phases, e.g. a search (rso) then backprop fine-tuning (adam); "
                     "switch by evaluations or plateau", kind=ZEROTH_ORDER)
class Hybrid(GradientFreeOptimizer):
    """``first`` until a switch condition, then ``second``: ``Hybrid(params, first="rso", second="adam",
    switch_after=N)``; options in :class:`HybridOptions`.

    A closure given to ``step`` in a gradient phase must return the loss without calling ``backward``
    (the hybrid zeroes the gradients, runs it with autograd on and calls ``backward``).

    Attributes:
        phase: 0 (first) or 1 (second); evaluations: evaluations spent so far; switched_at: the evaluation
        count at the switch (``None`` before); zeroth_order: whether the current phase is zeroth-order.
    """

    Options = HybridOptions
    options: HybridOptions

    def __init__(self, params: Iterable[Any], **options: Any) -> None:
        super().__init__(params, **options)
        o = self.options
        self.names = (o.first, o.second)
        self.phases = [self._build(name, dict(opts or {}), o.seed + i)
                       for i, (name, opts) in enumerate(((o.first, o.first_options), (o.second, o.second_options)))]
        self.switch_after, self.plateau, self.window = o.switch_after, o.plateau, o.window
        self.phase = 0
        self.evaluations = 0
        self.switched_at: int | None = None
        self._losses: deque[float] = deque(maxlen=2 * o.window)

    def _build(self, name: str, options: dict[str, Any], seed: int) -> torch.optim.Optimizer:
        if name == "hybrid":
            raise ConfigError("hybrid: a phase cannot itself be a hybrid; chain phases by name, e.g. rso, adam")
        if "seed" not in options and not needs_gradient(name):
            options["seed"] = seed
        groups = [{"params": group["params"]} for group in self.param_groups]
        optimizer = build_optimizer(name, groups, **options)
        for own, inner in zip(self.param_groups, optimizer.param_groups, strict=True):
            inner["lr"] = inner["lr"] * own["lr"]
        return optimizer

    @property
    def current(self) -> torch.optim.Optimizer:
        """The optimizer of the current phase."""
        return self.phases[self.phase]

    @property
    def zeroth_order(self) -> bool:  # read by the trainer every step
        """Whether the current phase works from losses alone (the trainer then runs no backward)."""
        return works_from_losses(self.current)

    def _charge(self, evaluations: int) -> None:
        self.evaluations += evaluations

    def _step(self, closure: Closure) -> Tensor:
        loss = self.step(closure)
        return loss if loss is not None else torch.tensor(math.nan)

    def step(self, closure: Closure | None = None) -> Tensor | None:  # type: ignore[override]
        """One step of the current phase, then the switch check (the phase optimizer does its own plumbing).

        Returns:
            the phase's loss for this step, or ``None`` for a gradient step the trainer ran backward for.
        """
        optimizer = self.current
        loss: Tensor | None
        if self.zeroth_order:
            if closure is None:
                raise ConfigError(f"hybrid: the {self.names[self.phase]} phase needs a closure that returns the loss")
            returned = optimizer.step(counting(closure, self._charge))  # type: ignore[arg-type]
            loss = returned if isinstance(returned, Tensor) or returned is None else torch.tensor(returned)
        elif closure is None:  # the trainer ran forward and backward: one evaluation
            if self.plateau is not None and self.phase == 0 and self.switch_after is None:
                raise ConfigError("hybrid: a plateau switch out of a gradient phase needs the losses: pass a "
                                  "closure to step(), or switch by switch_after=N evaluations")
            self._charge(1)
            optimizer.step()
            loss = None
        else:
            loss = self._gradient_step(optimizer, closure)
        if loss is not None:
            value = float(loss)
            if math.isfinite(value):
                self._losses.append(value)
        self._maybe_switch()
        return loss

    def _gradient_step(self, optimizer: torch.optim.Optimizer, closure: Closure) -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
            self._charge(1)
            if not loss.requires_grad:
                raise ConfigError("hybrid: in its gradient phase the closure's loss must be computed with autograd "
                                  "(no torch.no_grad() inside the closure)")
            loss.backward()
        optimizer.step()
        return loss.detach()

    def _maybe_switch(self) -> None:
        if self.phase != 0:
            return
        reached = self.switch_after is not None and self.evaluations >= self.switch_after
        if not reached and self.plateau is not None and len(self._losses) == 2 * self.window:
            losses = list(self._losses)
            before = sum(losses[: self.window]) / self.window
            after = sum(losses[self.window :]) / self.window
            reached = before - after <= self.plateau * abs(before)
        if reached:
            self.phase = 1
            self.switched_at = self.evaluations
            self._losses.clear()

    def _extra_state(self) -> dict[str, Any]:
        return {"phase": self.phase, "evaluations": self.evaluations, "switched_at": self.switched_at,
                "losses": list(self._losses), "phases": [p.state_dict() for p in self.phases]}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.phase, self.evaluations = int(extra["phase"]), int(extra["evaluations"])
        self.switched_at = extra["switched_at"]
        self._losses = deque(extra["losses"], maxlen=2 * self.window)
        for optimizer, state in zip(self.phases, extra["phases"], strict=True):
            optimizer.load_state_dict(state)
