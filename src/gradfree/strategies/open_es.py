"""OpenAI-ES: a Gaussian-smoothed gradient estimate from mirrored samples, followed by Adam.

Members are ``mean + sigma * eps_i`` with mirrored pairs ``eps_{2k+1} = -eps_{2k}``; their losses are
replaced by centred ranks ``u_i`` and the loss gradient is estimated as ``g = sum_i u_i eps_i / (P * sigma)``;
L2 weight decay adds ``weight_decay * mean`` and Adam takes the step. ``sigma`` is fixed.

Reference: Salimans, Ho, Chen, Sidor, Sutskever (2017), "Evolution Strategies as a Scalable Alternative to
Reinforcement Learning", arXiv:1703.03864, Algorithm 1 and section 2.2 (mirrored sampling, centred ranks,
weight decay, Adam); Kingma & Ba (2015), "Adam", Algorithm 1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradfree.strategies.base import STRATEGIES, Strategy, check
from gradfree.strategies.shaping import centered_ranks


def adam_step(
    grad: Tensor, m: Tensor, v: Tensor, t: int, *, lr: float, beta1: float, beta2: float, eps: float
) -> Tensor:
    """One Adam step for ``grad`` at step ``t >= 1``; updates ``m``/``v`` in place and returns the step.

    Shapes: ``grad, m, v`` all ``(D,)``; the returned step is ``(D,)`` and is *subtracted* from the point.
    """
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
    return step_size * m / (v.sqrt() + eps)


@STRATEGIES.register("open-es", summary="OpenAI-ES: mirrored sampling, centred ranks, Adam (Salimans 2017)")
class OpenES(Strategy):
    """OpenAI evolution strategy with mirrored sampling, centred-rank shaping, weight decay and Adam.

    Args:
        num_dims, popsize, init_mean, sigma, seed: see :class:`Strategy`; ``sigma`` is the fixed
            perturbation scale (default 0.1).
        lr: Adam learning rate (default 0.01).
        weight_decay: L2 coefficient added to the gradient estimate as ``weight_decay * mean`` (default 0.005,
            as in the paper).
        antithetic: mirrored pairs (default True; ``popsize`` must then be even).
        beta1, beta2, eps: Adam constants (0.9, 0.999, 1e-8).

    Shapes:
        ``ask() -> (P, D)``; ``tell((P,))``; ``mean, m, v: (D,)``.
    """

    _state_attrs = ("m", "v")

    def __init__(
        self,
        num_dims: int,
        popsize: int,
        *,
        init_mean: Tensor | None = None,
        sigma: float = 0.1,
        seed: int = 0,
        lr: float = 0.01,
        weight_decay: float = 0.005,
        antithetic: bool = True,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(num_dims, popsize, init_mean=init_mean, sigma=sigma, seed=seed)
        check(lr > 0, f"lr must be > 0, got {lr}")
        check(weight_decay >= 0, f"weight_decay must be >= 0, got {weight_decay}")
        check(not antithetic or popsize % 2 == 0, f"antithetic sampling needs an even popsize, got {popsize}")
        check(0 <= beta1 < 1 and 0 <= beta2 < 1, f"Adam betas must be in [0, 1), got {beta1}, {beta2}")
        self._hyper.update(
            lr=lr, weight_decay=weight_decay, antithetic=antithetic, beta1=beta1, beta2=beta2, eps=eps
        )
        self._antithetic = antithetic
        self.m = torch.zeros_like(self._mean)
        self.v = torch.zeros_like(self._mean)

    @property
    def scale(self) -> float:
        """The fixed perturbation scale ``sigma``."""
        return float(self._hyper["sigma"])

    def _sample(self, gen_seed: int) -> Tensor:
        return self._spec_members(gen_seed)

    def _update(self, population: Tensor, losses: Tensor) -> None:
        h = self._hyper
        u = centered_ranks(losses).to(device=self.device, dtype=self.dtype)
        grad = u @ self._cache["eps"] / (self.popsize * self.scale)
        grad = grad + h["weight_decay"] * self._mean
        step = adam_step(
            grad, self.m, self.v, self.generation + 1,
            lr=h["lr"], beta1=h["beta1"], beta2=h["beta2"], eps=h["eps"],
        )  # fmt: skip
        self._mean = self._mean - step
