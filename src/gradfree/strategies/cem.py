"""The cross-entropy method with a diagonal Gaussian, smoothed updates and a floor on the spread.

Members are ``mean + std * z_i``. The ``n_elite = max(1, round(elite_frac * P))`` lowest losses are refitted
by maximum likelihood (their mean and their per-dimension standard deviation around it), and the distribution
moves part of the way: ``mean <- a * mean_elite + (1 - a) * mean`` and likewise ``std``, with
``a = smoothing``. ``std`` is floored at ``sigma_min`` so the search cannot collapse to a point.

References: Rubinstein (1999), "The Cross-Entropy Method for Combinatorial and Continuous Optimization",
Methodology and Computing in Applied Probability 1(2); de Boer, Kroese, Mannor, Rubinstein (2005), "A Tutorial
on the Cross-Entropy Method", Annals of Operations Research 134, section 4 (smoothed updates).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfree.strategies.base import STRATEGIES, Strategy, check


@STRATEGIES.register("cem", summary="Cross-entropy method: diagonal Gaussian refit to the elite fraction")
class CEM(Strategy):
    """Cross-entropy method over a diagonal Gaussian.

    Args:
        num_dims, popsize, init_mean, sigma, seed: see :class:`Strategy`; ``sigma`` is the initial
            per-dimension standard deviation (default 0.1).
        elite_frac: fraction of the population refitted (default 0.2).
        smoothing: weight ``a`` of the new estimate in the smoothed update, in ``(0, 1]`` (default 0.7).
        sigma_min: floor on every standard deviation (default 1e-6).

    Shapes:
        ``ask() -> (P, D)``; ``tell((P,))``; ``mean, std: (D,)``.
    """

    _state_attrs = ("std",)

    def __init__(
        self,
        num_dims: int,
        popsize: int,
        *,
        init_mean: Tensor | None = None,
        sigma: float = 0.1,
        seed: int = 0,
        elite_frac: float = 0.2,
        smoothing: float = 0.7,
        sigma_min: float = 1e-6,
    ) -> None:
        super().__init__(num_dims, popsize, init_mean=init_mean, sigma=sigma, seed=seed)
        check(0 < elite_frac <= 1, f"elite_frac must be in (0, 1], got {elite_frac}")
        check(0 < smoothing <= 1, f"smoothing must be in (0, 1], got {smoothing}")
        check(sigma_min >= 0, f"sigma_min must be >= 0, got {sigma_min}")
        self._hyper.update(elite_frac=elite_frac, smoothing=smoothing, sigma_min=sigma_min)
        self.n_elite = max(1, round(elite_frac * popsize))
        self.std = torch.full_like(self._mean, sigma)

    @property
    def scale(self) -> Tensor:
        """Per-dimension standard deviations ``(D,)``."""
        return self.std

    def _sample(self, gen_seed: int) -> Tensor:
        return self._spec_members(gen_seed)

    def _update(self, population: Tensor, losses: Tensor) -> None:
        a = self._hyper["smoothing"]
        best = torch.argsort(losses, stable=True)[: self.n_elite].to(self.device)
        elites = population[best]
        mean_elite = elites.mean(dim=0)
        std_elite = (elites - mean_elite).pow(2).mean(dim=0).sqrt()
        self._mean = a * mean_elite + (1 - a) * self._mean
        self.std = torch.clamp(a * std_elite + (1 - a) * self.std, min=self._hyper["sigma_min"])
