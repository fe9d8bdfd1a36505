"""Seed-regenerated perturbations: any row range equals the same rows of the full block."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfree.strategies import STRATEGIES, PopulationSpec, gaussian_rows
from gradfree.strategies.noise import row_seed


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 2),
    popsize=st.integers(1, 24),
    num_dims=st.integers(1, 40),
    data=st.data(),
)
def test_slices_equal_the_full_block(seed: int, popsize: int, num_dims: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, popsize))
    stop = data.draw(st.integers(start, popsize))
    full = gaussian_rows(seed, 0, popsize, num_dims)
    assert torch.equal(gaussian_rows(seed, start, stop, num_dims), full[start:stop])


def test_strategy_noise_matches_rows_and_dtype() -> None:
    s = STRATEGIES.get("snes")(33, 10, init_mean=torch.zeros(33, dtype=torch.float64))
    full = s.noise(12345, 0, 10)
    assert full.shape == (10, 33) and full.dtype == torch.float64
    assert torch.equal(s.noise(12345, 4, 7), full[4:7])
    row = torch.randn(33, generator=torch.Generator().manual_seed(row_seed(12345, 5)), dtype=torch.float32)
    row = row.double()  # drawn in float32 (torch's float64 sampler is ~4.7x slower), widened
    assert torch.equal(full[5], row)  # what a worker in another language/process can reproduce


def test_rows_are_standard_normal_and_independent() -> None:
    z = gaussian_rows(7, 0, 400, 50, dtype=torch.float64)
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    corr = torch.corrcoef(z[:, :2].T)[0, 1]
    assert abs(float(corr)) < 0.15
    assert not torch.equal(gaussian_rows(7, 0, 1, 50), gaussian_rows(8, 0, 1, 50))


def test_antithetic_spec_pairs_and_slices() -> None:
    spec = PopulationSpec(gen_seed=99, popsize=10, antithetic=True)
    eps = spec.noise(0, 10, 6, dtype=torch.float32, device="cpu")
    assert torch.equal(eps[0::2], -eps[1::2])
    assert torch.equal(eps[0::2], gaussian_rows(99, 0, 5, 6))
    for start, stop in [(1, 4), (3, 3), (5, 10), (0, 1)]:
        assert torch.equal(spec.noise(start, stop, 6, dtype=torch.float32, device="cpu"), eps[start:stop])
    mean, scale = torch.arange(6.0), torch.linspace(0.1, 1.0, 6)
    assert torch.equal(spec.members(mean, scale, 2, 7), mean + scale * eps[2:7])
