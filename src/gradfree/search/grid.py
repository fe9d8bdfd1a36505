"""Per-parameter grid search: scan each weight over K values with the others fixed, keep the best.

This is cyclic coordinate descent with an exhaustive line search on a grid (e.g. Wright 2015,
"Coordinate descent algorithms", Math. Programming 151, Sec. 2; randomised order as in Nesterov 2012,
"Efficiency of coordinate descent methods on huge-scale optimization problems", SIAM J. Optim.), the
classic baseline that gradient training is compared against. For each weight ``w_i`` it evaluates the loss
at ``K = range_size`` values — absolute, ``linspace(lo, hi, K)`` for ``weight_range=(lo, hi)``, or relative,
``w_i + linspace(lo, hi, K)`` — and moves to the best one if it beats the current loss (the current value
always competes, so on a fixed batch the loss never goes up). A sweep visits every weight once, in a fresh
random order per sweep (``shuffle=True``) or in parameter order.

Convergence: the search records how much the loss fell over each sweep (the sum, over the weights it moved,
of current loss minus best grid loss, on each step's batch) relative to the loss at the sweep's start. Once a
sweep gains less than ``tol`` the optimizer sets ``converged`` (and ``converged_sweep``); the trainer then
ends the run ("converged"). Called directly, further steps keep searching (a step that spent no evaluation
could loop forever), since with mini-batches a later sweep can still gain.

Evaluations per step: 1 for the current loss, then ``K`` per weight tried (+1 per moved weight when
``lr < 1``, since the loss at a partial move is not known until it is evaluated).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.objective.closure import Closure, coordinates_of
from gradfree.optim.base import GradientFreeOptimizer
from gradfree.optim.options import check
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER


@dataclass(frozen=True)
class GridOptions:
    """Grid search's options.

    Attributes:
        lr: fraction of the way to the best grid value a weight moves (1, the default, is plain grid
            search; per group, in [0, 1]; 0 freezes a group at no cost).
        weight_range: ``(lo, hi)`` of the grid: absolute values, or offsets from the current value when
            ``relative``.
        range_size: ``K``, values per weight (``>= 2``).
        relative: scan around each weight's current value instead of a fixed range.
        shrink: in relative mode, the range is multiplied by ``shrink`` after every sweep (``< 1`` refines
            the grid over sweeps; 1 keeps it).
        tol: relative loss decrease over a sweep below which ``converged`` is set.
        weights_per_step: weights scanned per ``step`` (a new batch each); ``None``: the rest of the sweep.
        shuffle: visit the weights in a fresh random order each sweep (else in parameter order).
        seed: seeds the visiting order.
    """

    lr: float = 1.0
    weight_range: tuple[float, float] = (-5.0, 5.0)
    range_size: int = 100
    relative: bool = False
    shrink: float = 1.0
    tol: float = 1e-4
    weights_per_step: int | None = 256
    shuffle: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.weight_range)
        check(lo < hi, "grid", f"weight_range must be (lo, hi) with lo < hi, got {self.weight_range}")
        check(self.range_size >= 2, "grid", f"range_size must be >= 2 values per weight, got {self.range_size}")
        check(0 < self.shrink <= 1, "grid", f"shrink must be in (0, 1], got {self.shrink}")
        check(self.tol >= 0, "grid", f"tol must be >= 0, got {self.tol}")
        check(self.weights_per_step is None or self.weights_per_step >= 1, "grid",
              f"weights_per_step must be >= 1 (or None for a whole sweep), got {self.weights_per_step}")


@OPTIMIZERS.register("grid", summary="per-parameter grid search (coordinate descent over K values per weight)",
                     kind=ZEROTH_ORDER)
class GridSearch(GradientFreeOptimizer):
    """Per-parameter grid search: ``GridSearch(params, weight_range=(-5, 5), range_size=100, ...)``; options in
    :class:`GridOptions`.

    Attributes:
        sweep: sweeps completed; position: weights of the current sweep already scanned; converged: whether
        a sweep gained less than ``tol``; converged_sweep: the first such sweep (``None`` before);
        sweep_gains: relative gain of each completed sweep; evaluations: evaluations spent so far.
    """

    Options = GridOptions
    options: GridOptions

    def __init__(self, params: Iterable[Any], **options: Any) -> None:
        super().__init__(params, **options)
        for group in self.param_groups:
            if group["lr"] > 1:
                raise ConfigError(f"grid: lr is the fraction of the move to the best grid value, in [0, 1]; "
                                  f"got {group['lr']}")
        o = self.options
        self.weight_range = (float(o.weight_range[0]), float(o.weight_range[1]))
        self.range_size, self.relative, self.shrink, self.tol = o.range_size, o.relative, o.shrink, o.tol
        self.weights_per_step, self.shuffle = o.weights_per_step, o.shuffle
        self.sweep = 0
        self.position = 0
        self.converged = False
        self.converged_sweep: int | None = None
        self.sweep_gains: list[float] = []
        self.evaluations = 0
        self._order: Tensor | None = None  # this sweep's visiting order
        self._sweep_start = math.nan  # loss when the sweep started
        self._sweep_gain = 0.0

    def _new_order(self) -> Tensor:
        active = torch.nonzero(self.coordinate_lr() > 0, as_tuple=False).flatten().cpu()
        if self.shuffle and active.numel() > 1:
            perm = torch.randperm(active.numel(), generator=self._generator, device=self._generator.device)
            active = active[perm.cpu()]
        return active

    def grid(self, value: float) -> Tensor:
        """The ``K`` values tried for a weight whose current value is ``value`` (float64)."""
        lo, hi = self.weight_range
        points = torch.linspace(lo, hi, self.range_size, dtype=torch.float64)
        if self.relative:
            return value + points * self.shrink**self.sweep
        return points

    @torch.no_grad()
    def _step(self, closure: Closure) -> Tensor:
        """Scan the next ``weights_per_step`` weights of the sweep on the closure's batch.

        Returns:
            the loss at the parameters the step started from (on this step's batch).
        """
        evaluator = coordinates_of(closure, self._flat)
        before = evaluator.evaluations
        start = evaluator.loss()
        if self._order is None:
            self._order = self._new_order()
            self._sweep_start, self._sweep_gain = start, 0.0
        order = self._order
        if order.numel() == 0 or not math.isfinite(start):
            self.evaluations += evaluator.evaluations - before
            return torch.tensor(start)
        stop = min(self.position + (self.weights_per_step or order.numel()), order.numel())
        lrs = self.coordinate_lr().cpu()
        values = self._flat.get().cpu().tolist()
        dtype, device = self._flat.dtype, self._flat.device
        for index in order[self.position : stop].tolist():
            w = values[index]
            candidates = self.grid(w).to(dtype=dtype, device=device)
            losses = evaluator.try_values(index, candidates)
            current = evaluator.loss()
            finite = torch.where(torch.isnan(losses), torch.full_like(losses, math.inf), losses)
            k = int(torch.argmin(finite))
            best = float(finite[k])
            if best < current:
                self._sweep_gain += current - best
                target = float(candidates[k])
                lr = float(lrs[index])
                if lr == 1.0:
                    evaluator.set_value(index, target, best)
                    values[index] = target
                else:
                    moved = float(torch.tensor(w + lr * (target - w), dtype=dtype))
                    evaluator.set_value(index, moved, None)
                    values[index] = moved
        self.position = stop
        if stop >= order.numel():
            self._end_sweep()
        self.evaluations += evaluator.evaluations - before
        return torch.tensor(start)

    def _end_sweep(self) -> None:
        start = self._sweep_start
        gain = self._sweep_gain / abs(start) if start != 0 else (0.0 if self._sweep_gain == 0 else math.inf)
        self.sweep_gains.append(gain)
        if gain < self.tol and not self.converged:
            self.converged, self.converged_sweep = True, self.sweep
        self.sweep += 1
        self.position = 0
        self._order = None

    def _extra_state(self) -> dict[str, Any]:
        return {"evaluations": self.evaluations, "sweep": self.sweep, "position": self.position,
                "converged": self.converged,
                "converged_sweep": self.converged_sweep, "sweep_gains": list(self.sweep_gains),
                "order": self._order, "sweep_start": self._sweep_start, "sweep_gain": self._sweep_gain}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.evaluations = int(extra["evaluations"])
        self.sweep, self.position = int(extra["sweep"]), int(extra["position"])
        self.converged, self.converged_sweep = bool(extra["converged"]), extra["converged_sweep"]
        self.sweep_gains = list(extra["sweep_gains"])
        self._order = extra["order"]
        self._sweep_start, self._sweep_gain = float(extra["sweep_start"]), float(extra["sweep_gain"])
