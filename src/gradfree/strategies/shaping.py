"""Fitness shaping as pure functions of a generation's losses (lower is better).

All functions are invariant to monotone transformations of the losses: only the ranks matter. Non-finite
losses are expected to have been replaced by ``+inf`` (the base strategy does so), which ranks them last; ties
are broken by member index, so the result is deterministic.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def ranks(losses: Tensor) -> Tensor:
    """Rank of every member, ``0`` for the lowest loss; ties broken by index.

    Shapes: ``(P,) -> (P,)`` int64.
    """
    order = torch.argsort(losses, stable=True)
    out = torch.empty_like(order)
    out[order] = torch.arange(losses.shape[0], device=losses.device)
    return out


def centered_ranks(losses: Tensor) -> Tensor:
    """Ranks scaled to ``[-0.5, 0.5]``: ``-0.5`` for the lowest loss, ``+0.5`` for the highest.

    Used as a stand-in for the loss in a gradient estimate ``sum_i u_i eps_i``, which then points uphill.

    Reference: Salimans et al. (2017), "Evolution Strategies as a Scalable Alternative to Reinforcement
    Learning", section 2.2 (fitness shaping by centred ranks).

    Shapes: ``(P,) -> (P,)`` float64, summing to zero.
    """
    n = losses.shape[0]
    return ranks(losses).to(torch.float64) / max(n - 1, 1) - 0.5


def rank_utilities(losses: Tensor) -> Tensor:
    """NES utilities ``u_k = max(0, ln(P/2 + 1) - ln k) / sum_j max(0, ...) - 1/P`` by rank ``k`` (1 = best).

    The best members get positive weight, the worst ``-1/P``; the weights sum to zero.

    Reference: Wierstra et al. (2014), "Natural Evolution Strategies", JMLR 15, section 3.1 (fitness
    shaping), and Schaul et al. (2011), "High Dimensions and Heavy Tails for Natural Evolution Strategies".

    Shapes: ``(P,) -> (P,)`` float64, largest for the lowest loss.
    """
    n = losses.shape[0]
    k = torch.arange(1, n + 1, dtype=torch.float64)
    raw = torch.clamp(math.log(n / 2 + 1) - torch.log(k), min=0.0)
    by_rank = raw / raw.sum() - 1.0 / n
    return by_rank[ranks(losses).cpu()].to(losses.device)


def cma_weights(popsize: int) -> Tensor:
    """Positive CMA recombination weights ``w_i ∝ ln((P + 1)/2) - ln i`` for ``i = 1..mu``, ``mu = P // 2``.

    Reference: Hansen (2016), "The CMA Evolution Strategy: A Tutorial", arXiv:1604.00772, eq. (49) (positive
    part); pycma's ``RecombinationWeights`` uses the same shape.

    Shapes: ``() -> (mu,)`` float64, decreasing, summing to one.
    """
    mu = popsize // 2
    raw = math.log((popsize + 1) / 2) - torch.log(torch.arange(1, mu + 1, dtype=torch.float64))
    return raw / raw.sum()


def mu_eff(weights: Tensor) -> float:
    """Variance-effective selection mass ``1 / sum w_i^2`` of weights summing to one."""
    return float(1.0 / (weights**2).sum())
