"""Separable NES: natural-gradient ascent on a diagonal Gaussian with rank-based utilities.

Members are ``mean + sigma * z_i`` with a per-dimension ``sigma``; with utilities ``u_i`` (largest for the
lowest loss, summing to zero) the natural gradients are ``g_mu = sum_i u_i z_i`` and
``g_sigma = sum_i u_i (z_i^2 - 1)``, and the updates ``mean += lr_mean * sigma * g_mu``,
``sigma *= exp(lr_sigma / 2 * g_sigma)`` with the standard rates ``lr_mean = 1`` and
``lr_sigma = (3 + ln D) / (5 sqrt D)``.

Reference: Schaul, Glasmachers, Schmidhuber (2011), "High Dimensions and Heavy Tails for Natural Evolution
Strategies", GECCO, Algorithm 2; Wierstra, Schaul, Glasmachers, Sun, Peters, Schmidhuber (2014), "Natural
Evolution Strategies", JMLR 15, section 4.2 and Table 1 (default learning rates and population size).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradfree.strategies.base import STRATEGIES, Strategy, check
from gradfree.strategies.shaping import rank_utilities


@STRATEGIES.register("snes", summary="Separable NES: diagonal Gaussian, rank utilities (Schaul 2011)")
class SNES(Strategy):
    """Separable natural evolution strategy.

    Args:
        num_dims, popsize, init_mean, sigma, seed: see :class:`Strategy`; ``sigma`` is the initial
            per-dimension standard deviation (default 0.1). The paper's default popsize is
            ``4 + floor(3 ln D)``.
        lr_mean: learning rate of the mean (default 1.0).
        lr_sigma: learning rate of the log standard deviations (default ``(3 + ln D) / (5 sqrt D)``).

    Shapes:
        ``ask() -> (P, D)``; ``tell((P,))``; ``mean, sigma: (D,)``.
    """

    _state_attrs = ("sigma",)

    def __init__(
        self,
        num_dims: int,
        popsize: int,
        *,
        init_mean: Tensor | None = None,
        sigma: float = 0.1,
        seed: int = 0,
        lr_mean: float = 1.0,
        lr_sigma: float | None = None,
    ) -> None:
        super().__init__(num_dims, popsize, init_mean=init_mean, sigma=sigma, seed=seed)
        if lr_sigma is None:
            lr_sigma = (3 + math.log(num_dims)) / (5 * math.sqrt(num_dims))
        check(lr_mean > 0, f"lr_mean must be > 0, got {lr_mean}")
        check(lr_sigma > 0, f"lr_sigma must be > 0, got {lr_sigma}")
        self._hyper.update(lr_mean=lr_mean, lr_sigma=lr_sigma)
        self.sigma = torch.full_like(self._mean, sigma)

    @property
    def scale(self) -> Tensor:
        """Per-dimension standard deviations ``(D,)``."""
        return self.sigma

    def _sample(self, gen_seed: int) -> Tensor:
        return self._spec_members(gen_seed)

    def _update(self, population: Tensor, losses: Tensor) -> None:
        u = rank_utilities(losses).to(device=self.device, dtype=self.dtype)
        z = self._cache["eps"]
        g_mu = u @ z
        g_sigma = u @ (z * z - 1)
        self._mean = self._mean + self._hyper["lr_mean"] * self.sigma * g_mu
        self.sigma = self.sigma * torch.exp(0.5 * self._hyper["lr_sigma"] * g_sigma)
