"""OpenAI-ES: a Gaussian-smoothed gradient estimate from mirrored samples, followed by Adam.

Members are ``mean + sigma * eps_i`` with mirrored pairs ``eps_{2k+1} = -eps_{2k}``; their losses are
replaced by centred ranks ``u_i`` and the loss gradient is estimated as ``g = sum_i u_i eps_i / (P * sigma)``;
L2 weight decay adds ``weight_decay * mean`` and Adam takes the step. ``sigma`` is fixed, as in the paper.

With ``adapt_sigma=True`` (off by default) ``sigma`` also follows the search-gradient estimate of the loss
with respect to ``log sigma`` from the same mirrored pairs, the PGPE/NES rule for a single global scale:
with ``u+_k, u-_k`` the centred ranks of pair ``k`` and ``z_k`` its direction,
``g = sum_k (u+_k + u-_k) / 2 * (||z_k||^2 - D) / (K sqrt(2 D))`` (the mirrored average cancels the
first-order term; ``sqrt(2 D)`` is the standard deviation of ``||z||^2 - D``, so ``g`` is dimension-free,
a rank covariance of at most about 0.3 in size) and ``sigma <- sigma * exp(-sigma_lr * g)``, clipped to a change of
``sigma_max_change`` per generation. Members that went further out and scored worse shrink ``sigma``; a fixed
``sigma`` otherwise leaves the members at ``sigma^2 D`` above the mean's loss forever.

Reference: Salimans, Ho, Chen, Sidor, Sutskever (2017), "Evolution Strategies as a Scalable Alternative to
Reinforcement Learning", arXiv:1703.03864, Algorithm 1 and section 2.2 (mirrored sampling, centred ranks,
weight decay, Adam); Kingma & Ba (2015), "Adam", Algorithm 1; for ``adapt_sigma``, Sehnke et al. (2010),
"Parameter-exploring policy gradients", Neural Networks 23(4), section 2.3 (the sigma gradient from symmetric
samples), and Wierstra et al. (2014), "Natural Evolution Strategies", JMLR 15, section 2.
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
        adapt_sigma: adapt ``sigma`` by its search gradient (default False: the paper's fixed ``sigma``);
            needs ``antithetic``.
        sigma_lr: learning rate of ``log sigma`` under ``adapt_sigma`` (default 0.2).
        sigma_max_change: largest relative change of ``sigma`` per generation (default 0.2).

    Shapes:
        ``ask() -> (P, D)``; ``tell((P,))``; ``mean, m, v: (D,)``.
    """

    _state_attrs = ("m", "v", "sigma")

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
        adapt_sigma: bool = False,
        sigma_lr: float = 0.2,
        sigma_max_change: float = 0.2,
    ) -> None:
        super().__init__(num_dims, popsize, init_mean=init_mean, sigma=sigma, seed=seed)
        check(lr > 0, f"lr must be > 0, got {lr}")
        check(weight_decay >= 0, f"weight_decay must be >= 0, got {weight_decay}")
        check(not antithetic or popsize % 2 == 0, f"antithetic sampling needs an even popsize, got {popsize}")
        check(0 <= beta1 < 1 and 0 <= beta2 < 1, f"Adam betas must be in [0, 1), got {beta1}, {beta2}")
        check(not adapt_sigma or antithetic, "adapt_sigma needs mirrored pairs (antithetic=True)")
        check(sigma_lr > 0, f"sigma_lr must be > 0, got {sigma_lr}")
        check(0 < sigma_max_change < 1, f"sigma_max_change must be in (0, 1), got {sigma_max_change}")
        self._hyper.update(
            lr=lr, weight_decay=weight_decay, antithetic=antithetic, beta1=beta1, beta2=beta2, eps=eps
        )
        if adapt_sigma:  # only then, so that state_dicts of fixed-sigma runs keep their old hyper-parameters
            self._hyper.update(adapt_sigma=True, sigma_lr=sigma_lr, sigma_max_change=sigma_max_change)
        self._antithetic = antithetic
        self.m = torch.zeros_like(self._mean)
        self.v = torch.zeros_like(self._mean)
        self.sigma = float(sigma)

    @property
    def scale(self) -> float:
        """The perturbation scale ``sigma`` (fixed unless ``adapt_sigma``)."""
        return self.sigma

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
        if h.get("adapt_sigma", False):
            self.sigma *= sigma_factor(u, self._cache["eps"], lr=h["sigma_lr"], max_change=h["sigma_max_change"])


def sigma_factor(u: Tensor, eps: Tensor, *, lr: float, max_change: float) -> float:
    """The ``adapt_sigma`` multiplier of ``sigma`` from centred ranks ``u`` ``(P,)`` of mirrored pairs ``eps``
    ``(P, D)`` (rows ``2k`` and ``2k + 1`` mirrored): ``exp(-lr * g)`` clipped to ``[1 - c, 1 + c]``."""
    d = eps.shape[1]
    z2 = (eps[0::2] * eps[0::2]).sum(1)
    k = z2.shape[0]
    g = float(((u[0::2] + u[1::2]) / 2) @ (z2 - d)) / (k * math.sqrt(2 * d))
    return min(max(math.exp(-lr * g), 1 - max_change), 1 + max_change)
