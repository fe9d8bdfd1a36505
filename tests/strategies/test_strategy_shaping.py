"""Fitness shaping: rank-based, NaN-safe (after the base maps non-finite to +inf), deterministic ties."""

from __future__ import annotations

import math

import torch

from gradfree.strategies.shaping import centered_ranks, cma_weights, mu_eff, rank_utilities, ranks


def test_ranks_and_ties() -> None:
    losses = torch.tensor([3.0, 1.0, math.inf, 1.0, 2.0], dtype=torch.float64)
    assert ranks(losses).tolist() == [3, 0, 4, 1, 2]


def test_centered_ranks() -> None:
    u = centered_ranks(torch.tensor([10.0, -1.0, 5.0]))
    assert u.tolist() == [0.5, -0.5, 0.0]
    assert abs(float(centered_ranks(torch.randn(11)).sum())) < 1e-12


def test_rank_utilities_favour_low_losses_and_sum_to_zero() -> None:
    losses = torch.tensor([4.0, 0.0, math.inf, 2.0, 1.0, 3.0, 5.0, 6.0], dtype=torch.float64)
    u = rank_utilities(losses)
    assert abs(float(u.sum())) < 1e-12
    assert int(torch.argmax(u)) == 1 and float(u[2]) == float(u.min()) == -1 / 8
    order = torch.argsort(losses)
    assert torch.all(u[order][:-1] >= u[order][1:])


def test_cma_weights() -> None:
    w = cma_weights(12)
    assert w.shape == (6,) and abs(float(w.sum()) - 1) < 1e-12 and torch.all(w[:-1] > w[1:])
    assert 1 < mu_eff(w) < 6
    assert cma_weights(13).shape == (6,)
