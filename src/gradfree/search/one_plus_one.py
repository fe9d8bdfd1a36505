"""(1+1) adaptive local search: perturb, keep the candidate if it is no worse, adapt the step by the 1/5 rule.

Reference: I. Rechenberg, "Evolutionsstrategie" (1973) for the (1+1)-ES and its 1/5th success rule;
S. Kern, S. D. Mueller, N. Hansen, D. Buche, J. Ocenasek, P. Koumoutsakos, "Learning probability
distributions in continuous evolutionary algorithms - a comparative review", Natural Computing 3 (2004),
for the implementation used here (also A. Auger, "Benchmarking the (1+1) evolution strategy with one-fifth
success rule on the BBOB-2009 function testbed", GECCO 2009): on success the step is multiplied by
``exp(1/3)``, on failure by ``exp(1/3) ** (-1/4)``, so it is stationary at a success rate of 1/5. A
candidate that ties the current loss is accepted (``f(y) <= f(x)``, as in N. Hansen, D. V. Arnold,
A. Auger, "Evolution strategies", Springer Handbook of Computational Intelligence 2015): on plateaus of the
loss a tie lets the search drift.

Each step draws ``z ~ N(0, I)`` on all weights, or on a random block of ``block_size`` of them, and forms
``candidate = x + scale * lr * z`` (``lr`` per group: the initial step; ``scale`` the adapted multiplier,
kept within ``scale_bounds``). Current and candidate are scored on the same mini-batch in one batched call
(2 evaluations per step), so the comparison is not blurred by batch-to-batch noise. Optional box bounds
clamp the candidate (weights outside the box are first projected into it).

This is the open equivalent of population-1 explorative methods such as MDP (sgo-lab), which is closed source.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradfree.objective.closure import Closure, vector_objective
from gradfree.optim.base import GradientFreeOptimizer
from gradfree.optim.options import check
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER


@dataclass(frozen=True)
class OnePlusOneOptions:
    """(1+1) local search's options.

    Attributes:
        lr: initial standard deviation of the perturbation (per group; 0 freezes a group).
        block_size: perturb a random block of this many weights per step (``None``: all of them).
        success_rate: the target success rate of the rule (1/5).
        adapt: factor on the step after a success; a failure divides it by
            ``adapt ** (success_rate / (1 - success_rate))``.
        scale_bounds: ``(min, max)`` of the adapted multiplier of ``lr``: it keeps the rule from collapsing
            the step under mini-batch noise (where successes are rarer than on the true loss) and keeps
            ``lr`` an honest bound of the step size.
        bounds: optional ``(lo, hi)`` box for every weight.
        seed: seeds the perturbations and the blocks.
    """

    lr: float = 0.01
    block_size: int | None = None
    success_rate: float = 0.2
    adapt: float = math.exp(1 / 3)
    scale_bounds: tuple[float, float] = (1e-3, 1e3)
    bounds: tuple[float, float] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.block_size is None or self.block_size >= 1, "one-plus-one",
              f"block_size must be >= 1 (or None for all weights), got {self.block_size}")
        check(0 < self.success_rate < 1, "one-plus-one", f"success_rate must be in (0, 1), got {self.success_rate}")
        check(self.adapt > 1, "one-plus-one", f"adapt must be > 1 (the step grows on success), got {self.adapt}")
        low, high = (float(v) for v in self.scale_bounds)
        check(0 < low <= 1 <= high, "one-plus-one",
              f"scale_bounds must satisfy 0 < min <= 1 <= max, got {self.scale_bounds}")
        check(self.bounds is None or float(self.bounds[0]) < float(self.bounds[1]), "one-plus-one",
              f"bounds must be (lo, hi) with lo < hi, got {self.bounds}")


@OPTIMIZERS.register("one-plus-one", summary="(1+1) local search with the 1/5th success rule, optional blocks "
                     "and box bounds", kind=ZEROTH_ORDER)
class OnePlusOne(GradientFreeOptimizer):
    """(1+1) local search with step-size adaptation: ``OnePlusOne(params, lr=0.01, ...)``; options in
    :class:`OnePlusOneOptions`.

    Attributes:
        scale: the current multiplier of ``lr``; successes, trials: accepted candidates and steps;
        evaluations: evaluations spent so far.
    """

    Options = OnePlusOneOptions
    options: OnePlusOneOptions

    def __init__(self, params: Iterable[Any], **options: Any) -> None:
        super().__init__(params, **options)
        o = self.options
        self.block_size = o.block_size
        self.success_rate, self.adapt = o.success_rate, o.adapt
        self.scale_bounds = (float(o.scale_bounds[0]), float(o.scale_bounds[1]))
        self.bounds = None if o.bounds is None else (float(o.bounds[0]), float(o.bounds[1]))
        self.scale = 1.0
        self.successes = 0
        self.trials = 0
        self.evaluations = 0

    def adapt_scale(self, success: bool) -> float:
        """Apply the 1/5th rule to ``scale`` after a step; returns the new scale."""
        p = self.success_rate
        factor = self.adapt if success else self.adapt ** (-p / (1 - p))
        low, high = self.scale_bounds
        self.scale = min(max(self.scale * factor, low), high)
        return self.scale

    @torch.no_grad()
    def _step(self, closure: Closure) -> Tensor:
        """Score the current weights and one candidate on the closure's batch; keep the better.

        Returns:
            the loss of the weights the step started from (on this step's batch).
        """
        x = self._flat.get()
        if self.bounds is not None:
            inside = x.clamp(*self.bounds)
            if not torch.equal(inside, x):
                self._flat.set_(inside)
                x = inside
        step = self.coordinate_lr() * self.scale
        active = torch.nonzero(step > 0, as_tuple=False).flatten()
        if self.block_size is not None and self.block_size < active.numel():
            pick = torch.randperm(active.numel(), generator=self._generator, device=self._generator.device)
            active = active[pick[: self.block_size].to(active.device)]
        z = torch.randn(active.numel(), generator=self._generator, device=x.device, dtype=x.dtype)
        candidate = x.clone()
        candidate[active] += step[active] * z
        if self.bounds is not None:
            candidate[active] = candidate[active].clamp(*self.bounds)
        losses = vector_objective(closure, self._flat)(torch.stack([x, candidate]))
        self.evaluations += 2
        current, trial = float(losses[0]), float(losses[1])
        success = math.isfinite(trial) and math.isfinite(current) and trial <= current and active.numel() > 0
        if success:
            self._flat.set_(candidate)
            self.successes += 1
        self.trials += 1
        self.adapt_scale(success)
        return torch.tensor(current)

    def _extra_state(self) -> dict[str, Any]:
        return {"scale": self.scale, "successes": self.successes, "trials": self.trials,
                "evaluations": self.evaluations}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.scale = float(extra["scale"])
        self.successes, self.trials = int(extra["successes"]), int(extra["trials"])
        self.evaluations = int(extra["evaluations"])
