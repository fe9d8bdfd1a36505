"""MeZO: in-place SPSA whose perturbation is regenerated from a seed, so memory stays at inference level.

Reference: Malladi et al. 2023, "Fine-Tuning Language Models with Just Forward Passes" (NeurIPS), Alg. 1.
Each step draws a seed ``s`` and, parameter by parameter, regenerates ``z ~ N(0, I)`` from ``s`` to

1. move to ``theta + eps z`` and evaluate ``l+``; move to ``theta - eps z`` and evaluate ``l-``; move back;
2. take the projected gradient ``g = (l+ - l-) / (2 eps)`` and update ``theta -= lr (g z + wd theta)``.

Only one parameter-sized ``z`` exists at a time; no flat copy of the model, no stored direction. Unlike the
paper's code this never seeds the global RNG: ``z`` comes from a private ``torch.Generator``. With
``num_directions=n`` the step averages n such estimates (the paper's n-SPSA), applied one after another.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradfree.objective.closure import Closure
from gradfree.optim.base import GradientFreeOptimizer
from gradfree.optim.options import check
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER


@dataclass(frozen=True)
class MeZOOptions:
    """MeZO's options.

    Attributes:
        lr: learning rate (per group).
        smoothing: perturbation scale ``eps`` (the paper's 1e-3); one value for all groups, since the
            projected gradient divides one loss difference by it.
        weight_decay: L2 term added to the projected gradient, as in the paper (per group).
        num_directions: SPSA estimates per step (each costs two evaluations).
        seed: seeds the private generator that draws the per-step seeds.
    """

    lr: float = 1e-3
    smoothing: float = 1e-3
    weight_decay: float = 0.0
    num_directions: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.lr > 0 and self.smoothing > 0 and self.num_directions >= 1, "mezo",
              f"need lr > 0, smoothing > 0, num_directions >= 1; got {self.lr}, {self.smoothing}, "
              f"{self.num_directions}")


@OPTIMIZERS.register("mezo", summary="MeZO in-place SPSA, perturbation regenerated from seeds (memory = inference)",
                     kind=ZEROTH_ORDER)
class MeZO(GradientFreeOptimizer):
    """Memory-efficient zeroth-order SGD: ``MeZO(params, lr=1e-3, smoothing=1e-3, ...)``; options in
    :class:`MeZOOptions`.

    Every step spends ``2 * num_directions`` closure evaluations. A direction whose loss is NaN/inf is not
    applied and is counted in ``rejected``.
    """

    Options = MeZOOptions
    group_options = ("lr", "weight_decay")
    options: MeZOOptions

    def __init__(self, params: Iterable[Any], **options: Any) -> None:
        super().__init__(params, **options)
        self.smoothing = self.options.smoothing
        self.num_directions = self.options.num_directions
        self._device = self._flat.device
        self.rejected = 0

    def _walk(self, seed: int, fn: Callable[[Tensor, Tensor, dict[str, Any]], None]) -> None:
        """Call ``fn(param, z, group)`` for every parameter with ``z`` regenerated from ``seed``; groups with
        ``lr = 0`` are skipped altogether (never perturbed: perturb-and-restore is not exact in floating point)."""
        gen = torch.Generator(device=self._device).manual_seed(seed)
        for group in self.param_groups:
            if group["lr"] == 0:
                continue
            for p in group["params"]:
                z = torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype)
                fn(p, z, group)

    def _perturb(self, seed: int, scale: float) -> None:
        def shift(p: Tensor, z: Tensor, group: dict[str, Any]) -> None:
            p.add_(z, alpha=scale * self.smoothing)

        self._walk(seed, shift)

    @torch.no_grad()
    def _step(self, closure: Closure) -> Tensor:
        """One MeZO step; returns the mean of the evaluated losses (a stand-in for the current loss)."""
        seen: list[float] = []
        for _ in range(self.num_directions):
            seed = int(torch.randint(0, 2**62, (1,), generator=self._generator, device=self._device))
            self._perturb(seed, +1.0)
            loss_plus = float(closure())
            self._perturb(seed, -2.0)
            loss_minus = float(closure())
            self._perturb(seed, +1.0)
            if not (math.isfinite(loss_plus) and math.isfinite(loss_minus)):
                self.rejected += 1
                continue
            seen += [loss_plus, loss_minus]
            eps = self.smoothing
            projected = (loss_plus - loss_minus) / (2 * eps) / self.num_directions

            def update(p: Tensor, z: Tensor, g: dict[str, Any], projected: float = projected) -> None:
                if g["weight_decay"]:
                    z = z.mul(projected).add_(p, alpha=g["weight_decay"] / self.num_directions)
                    p.add_(z, alpha=-g["lr"])
                else:
                    p.add_(z, alpha=-g["lr"] * projected)

            self._walk(seed, update)
        return torch.tensor(sum(seen) / len(seen) if seen else math.nan)

    def _extra_state(self) -> dict[str, Any]:
        return {"rejected": self.rejected}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.rejected = int(extra["rejected"])
