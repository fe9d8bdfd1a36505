"""Two optimizers in sequence: e.g. a search or zeroth-order phase, then gradient fine-tuning (or the reverse).

A common recipe is to let an explorative, derivative-free method find a good basin and a local method
finish there (hybrid or memetic schemes; P. Moscato, "On evolution, search, optimization, genetic
algorithms and martial arts: towards memetic algorithms", Caltech C3P report 826, 1989). :class:`Hybrid`
runs ``first`` until ``switch_after`` evaluations, or until its losses plateau, then ``second`` for the
rest of the run; either phase may be a search, a zeroth-order or a backprop optimizer.

The trainer reads ``optimizer.zeroth_order`` every step, so it gives this optimizer a counting
:class:`~gradfree.train.objective.BatchObjective` closure in a zeroth-order phase and runs backprop itself in
a gradient phase (calling ``step()`` with no closure). The hybrid counts evaluations itself, from the
closures it hands to the phase optimizer (one per candidate scored) and one per gradient step, which is
exactly how the trainer counts them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER, build_optimizer, needs_gradient
from gradfree.params.coordinates import ChargedCoordinates
from gradfree.search.evaluation import Closure


class CountingClosure:
    """Wraps a closure; every loss it (or its ``batch`` / ``coordinates``) computes is charged to ``charge``.

    ``batch`` and ``coordinates`` exist only when the wrapped closure has them, so the phase optimizer
    sees the same capabilities as it would without the wrapper.
    """

    def __init__(self, closure: Closure, charge: Callable[[int], None]) -> None:
        self.closure, self.charge = closure, charge
        inner_batch = getattr(closure, "batch", None)
        inner_coordinates = getattr(closure, "coordinates", None)
        if inner_batch is not None:
            def batch(vectors: Tensor, tensors: list[Tensor]) -> Tensor:
                losses: Tensor = inner_batch(vectors, tensors)
                charge(int(vectors.shape[0]))
                return losses

            self.batch = batch
        if inner_coordinates is not None:
            def coordinates(tensors: list[Tensor]) -> ChargedCoordinates:
                return ChargedCoordinates(inner_coordinates(tensors), lambda losses: charge(losses.numel()))

            self.coordinates = coordinates

    def __call__(self) -> Tensor:
        loss = self.closure()
        self.charge(1)
        return loss


@OPTIMIZERS.register("hybrid", summary="two phases, e.g. a search (rso) then backprop fine-tuning (adam); "
                     "switch by evaluations or plateau", kind=ZEROTH_ORDER)
class Hybrid(torch.optim.Optimizer):
    """``first`` until a switch condition, then ``second``.

    Args:
        params: tensors or param groups.
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
    A closure given to ``step`` in a gradient phase must return the loss without calling ``backward``
    (the hybrid zeroes the gradients, runs it with autograd on and calls ``backward``).

    Attributes:
        phase: 0 (first) or 1 (second); evaluations: evaluations spent so far; switched_at: the evaluation
        count at the switch (``None`` before); zeroth_order: whether the current phase is zeroth-order.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1.0, *, first: str = "rso", second: str = "adam",
                 first_options: Mapping[str, Any] | None = None, second_options: Mapping[str, Any] | None = None,
                 switch_after: int | None = None, plateau: float | None = None, window: int = 20,
                 seed: int = 0) -> None:
        if switch_after is None and plateau is None:
            raise ConfigError("hybrid: say when to switch from the first phase to the second: "
                              "switch_after=N evaluations and/or plateau=TOL (e.g. 1e-3)")
        if switch_after is not None and switch_after < 0:
            raise ConfigError(f"hybrid: switch_after must be >= 0 evaluations, got {switch_after}")
        if plateau is not None and plateau < 0:
            raise ConfigError(f"hybrid: plateau must be a relative improvement >= 0, got {plateau}")
        if window < 1:
            raise ConfigError(f"hybrid: window must be >= 1 step, got {window}")
        super().__init__(params, {"lr": lr})
        for group in self.param_groups:
            if not group["lr"] >= 0:
                raise ConfigError(f"hybrid: lr must be >= 0 in every group, got {group['lr']}")
        self.names = (first, second)
        self.phases = [self._build(name, dict(options or {}), seed + i)
                       for i, (name, options) in enumerate(((first, first_options), (second, second_options)))]
        self.switch_after, self.plateau, self.window = switch_after, plateau, window
        self.phase = 0
        self.evaluations = 0
        self.switched_at: int | None = None
        self._losses: deque[float] = deque(maxlen=2 * window)

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
        return bool(getattr(self.current, "zeroth_order", False))

    def _charge(self, evaluations: int) -> None:
        self.evaluations += evaluations

    def step(self, closure: Closure | None = None) -> Tensor | None:  # type: ignore[override]
        """One step of the current phase, then the switch check.

        Returns:
            the phase's loss for this step, or ``None`` for a gradient step the trainer ran backward for.
        """
        optimizer = self.current
        loss: Tensor | None
        if self.zeroth_order:
            if closure is None:
                raise ConfigError(f"hybrid: the {self.names[self.phase]} phase needs a closure that returns the loss")
            returned = optimizer.step(CountingClosure(closure, self._charge))  # type: ignore[arg-type]
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

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim`` state plus both phases' state dicts, the phase and the counters."""
        sd = super().state_dict()
        sd["hybrid"] = {"phase": self.phase, "evaluations": self.evaluations, "switched_at": self.switched_at,
                        "losses": list(self._losses), "phases": [p.state_dict() for p in self.phases]}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        sd = dict(state_dict)
        extra = sd.pop("hybrid", None)
        super().load_state_dict(sd)
        if extra is not None:
            self.phase, self.evaluations = int(extra["phase"]), int(extra["evaluations"])
            self.switched_at = extra["switched_at"]
            self._losses = deque(extra["losses"], maxlen=2 * self.window)
            for optimizer, state in zip(self.phases, extra["phases"], strict=True):
                optimizer.load_state_dict(state)
