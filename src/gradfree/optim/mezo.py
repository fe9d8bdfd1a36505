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
from typing import Any, ClassVar

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER


@OPTIMIZERS.register("mezo", summary="MeZO in-place SPSA, perturbation regenerated from seeds (memory = inference)",
                     kind=ZEROTH_ORDER)
class MeZO(torch.optim.Optimizer):
    """Memory-efficient zeroth-order SGD.

    Args:
        params: tensors or param groups (every group's tensors are perturbed jointly).
        lr: learning rate.
        smoothing: perturbation scale ``eps`` (the paper's 1e-3); one value for all groups, since the
            projected gradient divides one loss difference by it.
        weight_decay: L2 term added to the projected gradient, as in the paper.
        num_directions: SPSA estimates per step (each costs two evaluations).
        seed: seeds the private generator that draws the per-step seeds.

    Every step spends ``2 * num_directions`` closure evaluations. A direction whose loss is NaN/inf is not
    applied and is counted in ``rejected``.
    """

    zeroth_order: ClassVar[bool] = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, smoothing: float = 1e-3,
                 weight_decay: float = 0.0, num_directions: int = 1, seed: int = 0) -> None:
        if lr <= 0 or smoothing <= 0 or num_directions < 1:
            raise ValueError(f"need lr > 0, smoothing > 0, num_directions >= 1; got {lr}, {smoothing}, "
                             f"{num_directions}")
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})
        self.smoothing = smoothing
        self.num_directions = num_directions
        first = self.param_groups[0]["params"][0]
        self._generator = torch.Generator(device=first.device).manual_seed(seed)
        self._device = first.device
        self.rejected = 0

    def _walk(self, seed: int, fn: Callable[[Tensor, Tensor, dict[str, Any]], None]) -> None:
        """Call ``fn(param, z, group)`` for every parameter with ``z`` regenerated from ``seed``."""
        gen = torch.Generator(device=self._device).manual_seed(seed)
        for group in self.param_groups:
            for p in group["params"]:
                z = torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype)
                fn(p, z, group)

    def _perturb(self, seed: int, scale: float) -> None:
        def shift(p: Tensor, z: Tensor, group: dict[str, Any]) -> None:
            p.add_(z, alpha=scale * self.smoothing)

        self._walk(seed, shift)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """One MeZO step; returns the mean of the evaluated losses (a stand-in for the current loss)."""
        if closure is None:
            raise ConfigError("MeZO.step needs a closure that returns the loss")
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

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim`` state plus the generator state."""
        sd = super().state_dict()
        sd["mezo"] = {"generator": self._generator.get_state(), "rejected": self.rejected,
                      "num_directions": self.num_directions, "smoothing": self.smoothing}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        sd = dict(state_dict)
        extra = sd.pop("mezo", None)
        super().load_state_dict(sd)
        if extra is not None:
            self._generator.set_state(extra["generator"])
            self.rejected = extra["rejected"]
            self.num_directions = extra["num_directions"]
            self.smoothing = extra["smoothing"]
