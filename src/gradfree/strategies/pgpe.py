"""PGPE with symmetric sampling, centred ranks and the ClipUp optimizer.

Each direction ``k`` evaluates the pair ``mean ± eps_k``, ``eps_k = sigma * z_k`` (per-dimension ``sigma``).
With centred ranks ``u`` of the losses (``u+``, ``u-`` for the two ends) the loss gradients are
``g_mean = sum_k (u+_k - u-_k)/2 * eps_k / K`` and
``g_sigma = sum_k (u+_k + u-_k)/2 * (eps_k^2 - sigma^2)/sigma / K``; the centred ranks sum to zero, which
stands in for the paper's reward baseline. The mean follows ClipUp on ``-g_mean``; ``sigma`` takes a step
``-lr_sigma * g_sigma`` whose size is clipped to ``sigma_max_change * sigma`` per dimension.

References: Sehnke, Osendorfer, Rückstieß, Graves, Peters, Schmidhuber (2010), "Parameter-exploring policy
gradients", Neural Networks 23(4), section 2.3 (symmetric sampling); Toklu, Liskowski, Srivastava (2020),
"ClipUp: A Simple and Powerful Optimizer for Distribution-based Policy Evolution", PPSN, Algorithm 1 and
section 4 (centred ranks, ``max_speed = 2 * lr``, the bound on sigma changes).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfree.strategies.base import STRATEGIES, Strategy, check
from gradfree.strategies.shaping import centered_ranks


def clipup_step(
    direction: Tensor, velocity: Tensor, *, lr: float, momentum: float, max_speed: float
) -> Tensor:
    """One ClipUp step along ``direction``: normalise, add to the momentum velocity, clip its norm.

    Updates ``velocity`` in place and returns it (the step to *add* to the point). Shapes: ``(D,)``.
    """
    norm = torch.linalg.vector_norm(direction)
    unit = direction / norm if norm > 0 else torch.zeros_like(direction)
    velocity.mul_(momentum).add_(unit, alpha=lr)
    speed = torch.linalg.vector_norm(velocity)
    if speed > max_speed:
        velocity.mul_(max_speed / speed)
    return velocity


@STRATEGIES.register("pgpe", summary="PGPE: symmetric sampling, ClipUp, adaptive sigma (Sehnke 2010)")
class PGPE(Strategy):
    """Policy gradients with parameter-based exploration, ClipUp variant.

    Args:
        num_dims, popsize, init_mean, sigma, seed: see :class:`Strategy`; ``popsize`` must be even (mirrored
            pairs); ``sigma`` is the initial per-dimension standard deviation (default 0.1).
        lr: ClipUp step size of the mean, a Euclidean length (default 0.15).
        max_speed: ClipUp's speed limit (default ``2 * lr``).
        momentum: ClipUp momentum (default 0.9).
        lr_sigma: learning rate of ``sigma`` (default 0.1).
        sigma_max_change: largest relative change of ``sigma`` per generation (default 0.2).

    Shapes:
        ``ask() -> (P, D)``; ``tell((P,))``; ``mean, sigma, velocity: (D,)``.
    """

    _state_attrs = ("sigma", "velocity")
    _antithetic = True

    def __init__(
        self,
        num_dims: int,
        popsize: int,
        *,
        init_mean: Tensor | None = None,
        sigma: float = 0.1,
        seed: int = 0,
        lr: float = 0.15,
        max_speed: float | None = None,
        momentum: float = 0.9,
        lr_sigma: float = 0.1,
        sigma_max_change: float = 0.2,
    ) -> None:
        super().__init__(num_dims, popsize, init_mean=init_mean, sigma=sigma, seed=seed)
        max_speed = 2 * lr if max_speed is None else max_speed
        check(popsize % 2 == 0, f"PGPE samples mirrored pairs: popsize must be even, got {popsize}")
        check(lr > 0 and max_speed > 0, f"lr and max_speed must be > 0, got {lr}, {max_speed}")
        check(0 <= momentum < 1, f"momentum must be in [0, 1), got {momentum}")
        check(lr_sigma >= 0, f"lr_sigma must be >= 0, got {lr_sigma}")
        check(0 < sigma_max_change < 1, f"sigma_max_change must be in (0, 1), got {sigma_max_change}")
        self._hyper.update(
            lr=lr,
            max_speed=max_speed,
            momentum=momentum,
            lr_sigma=lr_sigma,
            sigma_max_change=sigma_max_change,
        )
        self.sigma = torch.full_like(self._mean, sigma)
        self.velocity = torch.zeros_like(self._mean)

    @property
    def scale(self) -> Tensor:
        """Per-dimension standard deviations ``(D,)``."""
        return self.sigma

    def _sample(self, gen_seed: int) -> Tensor:
        return self._spec_members(gen_seed)

    def _update(self, population: Tensor, losses: Tensor) -> None:
        h = self._hyper
        u = centered_ranks(losses).to(device=self.device, dtype=self.dtype)
        u_plus, u_minus = u[0::2], u[1::2]
        eps = self.sigma * self._cache["eps"][0::2]  # the scaled noise of each direction
        k = self.popsize // 2
        g_mean = (u_plus - u_minus) / 2 @ eps / k
        g_sigma = (u_plus + u_minus) / 2 @ ((eps * eps - self.sigma**2) / self.sigma) / k
        step = clipup_step(
            -g_mean, self.velocity, lr=h["lr"], momentum=h["momentum"], max_speed=h["max_speed"]
        )
        self._mean = self._mean + step
        bound = h["sigma_max_change"] * self.sigma
        self.sigma = self.sigma + torch.clamp(-h["lr_sigma"] * g_sigma, -bound, bound)
