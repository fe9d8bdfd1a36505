"""Smoke test at network scale: D = 25,000, popsize 8; memory is O(P * D), no D x D matrix."""

from __future__ import annotations

import pytest
import torch

from gradfree.strategies import STRATEGIES

D = 25_000


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_runs_at_25k_dimensions(name: str) -> None:
    s = STRATEGIES.get(name)(D, 8, init_mean=torch.full((D,), 0.5), sigma=0.01, seed=0)
    start = float((s.mean**2).sum())
    for _ in range(2):
        x = s.ask()
        assert x.shape == (8, D) and torch.isfinite(x).all()
        s.tell((x**2).sum(1))
    assert s.evaluations == 16 and torch.isfinite(s.mean).all()
    assert s.best_loss < start + 10.0
    state = s.state_dict()
    assert all(v.numel() <= 8 * D for v in state["algo"].values() if isinstance(v, torch.Tensor))
