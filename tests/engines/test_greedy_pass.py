"""The greedy coordinate pass: the numba engine's compiled loop equals its own tries and accepts one by one,
and every evaluator's pass follows the same rule (best score, ties to the earlier, NaN never wins)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.engines.incremental.mlp import MLPCoordinateEvaluator
from gradfree.engines.incremental.selection import clear_cache
from gradfree.engines.incremental.sequential import SequentialCoordinateEvaluator
from gradfree.errors import ConfigError
from gradfree.objective.coordinates import (
    ChargedCoordinates,
    PopulationCoordinateEvaluator,
    greedy_pass_by_tries,
)
from gradfree.params import FlatParams


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def _problem(loss: str, dtype: torch.dtype, *, seed: int = 0) -> tuple[nn.Module, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 4)).to(dtype)
    x = torch.randn(64, 12, generator=g, dtype=dtype)
    x[torch.rand(64, 12, generator=g) < 0.6] = -0.5  # a common background value, as in standardised images
    y = (torch.randint(0, 4, (64,), generator=g) if loss == "ce"
         else torch.randn(64, 4, generator=g, dtype=dtype))
    return model, x, y


def _loss_fn(loss: str):  # noqa: ANN202 (a torch functional)
    return F.cross_entropy if loss == "ce" else F.mse_loss


def _pass_inputs(flat: FlatParams, *, seed: int, k: int, scale: float) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    indices = torch.randperm(flat.num_dims, generator=g)[: flat.num_dims - 5]
    w = flat.get().double()[indices]
    steps = torch.randn(indices.numel(), k, generator=g, dtype=torch.float64) * scale
    candidates = (w.unsqueeze(1) + steps).to(flat.dtype)
    candidates[3, 0] = float("inf")  # a candidate beyond float range gets a NaN loss and is never taken
    candidates[7, :] = w[7]  # a tie with the current value keeps it
    return indices, candidates


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("l2, keep_current, k, scale", [(0.0, True, 2, 0.3), (0.05, True, 3, 2.0),
                                                        (0.0, False, 3, 0.05)])
def test_compiled_pass_equals_tries_and_accepts(loss: str, dtype: torch.dtype, l2: float, keep_current: bool,
                                                k: int, scale: float) -> None:
    model, x, y = _problem(loss, dtype)
    twin = copy.deepcopy(model)
    fused = MLPCoordinateEvaluator(FlatParams(model), _loss_fn(loss), x, y, refresh_every=7)
    stepwise = MLPCoordinateEvaluator(FlatParams(twin), _loss_fn(loss), x, y, refresh_every=7)
    indices, candidates = _pass_inputs(fused.flat, seed=1, k=k, scale=scale)

    got = fused.greedy_pass(indices, candidates, l2=l2, keep_current=keep_current)
    want = greedy_pass_by_tries(stepwise, stepwise.flat, indices, candidates, l2=l2, keep_current=keep_current)

    assert torch.equal(got.choices, want.choices)
    torch.testing.assert_close(got.losses, want.losses, rtol=0, atol=0, equal_nan=True)
    assert int((got.choices >= 0).sum()) > 7  # the pass changed weights, past the refresh boundary
    assert int(got.choices[7]) == (-1 if keep_current else 0)
    assert int(got.choices[3]) != 0
    assert torch.equal(fused.flat.get(), stepwise.flat.get())
    assert fused.loss() == stepwise.loss()
    assert fused.accepted == stepwise.accepted
    assert fused.evaluations == stepwise.evaluations
    # The caches still describe the module: the engine is reused as it is, and equals a forward pass.
    with torch.no_grad():
        assert fused.loss() == pytest.approx(float(_loss_fn(loss)(model(x), y)), rel=1e-6, abs=1e-7)


def test_every_evaluator_follows_the_same_rule() -> None:
    """The reference, torch and numba engines take the same choices (losses equal to rounding, and no score
    of this seeded problem is within rounding of another)."""
    results = []
    for make in (PopulationCoordinateEvaluator, SequentialCoordinateEvaluator, MLPCoordinateEvaluator):
        model, x, y = _problem("ce", torch.float64, seed=2)
        evaluator = make(FlatParams(model), F.cross_entropy, x, y)
        indices, candidates = _pass_inputs(evaluator.flat, seed=3, k=2, scale=0.5)
        candidates[3, 0] = candidates[3, 1]  # the reference scores an infinite weight as a forward pass does
        results.append((evaluator.greedy_pass(indices, candidates, l2=0.01), model))
    for result, model in results[1:]:
        assert torch.equal(result.choices, results[0][0].choices)
        torch.testing.assert_close(result.losses, results[0][0].losses, equal_nan=True)
        for a, b in zip(model.parameters(), results[0][1].parameters(), strict=True):
            assert torch.equal(a, b)


def test_the_pass_is_charged_per_candidate() -> None:
    model, x, y = _problem("ce", torch.float32)
    spent: list[Tensor] = []
    charged = ChargedCoordinates(MLPCoordinateEvaluator(FlatParams(model), F.cross_entropy, x, y), spent.append)
    indices, candidates = _pass_inputs(charged.inner.flat, seed=4, k=2, scale=0.1)  # type: ignore[attr-defined]
    result = charged.greedy_pass(indices, candidates)
    assert sum(t.numel() for t in spent) == candidates.numel() == result.losses.numel()
    assert int(torch.isnan(torch.cat(spent)).sum()) == 1  # the infinite candidate


def test_bad_passes_are_refused_before_anything_changes() -> None:
    model, x, y = _problem("ce", torch.float32)
    evaluator = MLPCoordinateEvaluator(FlatParams(model), F.cross_entropy, x, y)
    before = evaluator.flat.get()
    with pytest.raises(ConfigError, match="repeat"):
        evaluator.greedy_pass(torch.tensor([1, 2, 1]), torch.zeros(3, 2))
    with pytest.raises(ConfigError, match=r"indices \(n,\) and candidates \(n, K\)"):
        evaluator.greedy_pass(torch.tensor([1, 2]), torch.zeros(3, 2))
    with pytest.raises(IndexError, match="out of range"):
        evaluator.greedy_pass(torch.tensor([evaluator.num_dims]), torch.zeros(1, 2))
    assert torch.equal(evaluator.flat.get(), before)
    assert evaluator.evaluations == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale, refresh_every", [(0.05, 10_000), (0.5, 10_000), (0.05, 23)])
def test_a_pass_in_storage_order_defers_the_shared_moves_to_rounding(dtype: torch.dtype, scale: float,
                                                                     refresh_every: int) -> None:
    """RSO's order: every weight of one unit in a row. While the compiled pass stays on a unit it updates only
    the rows with their own input and defers the move the background rows share; it takes the per-call path's
    choices, its losses equal to rounding, and leaves caches a fresh engine agrees with. Small steps defer
    over a whole unit, large ones catch up on the way (``|S| max|w| > SMALL / 2``), and ``refresh_every``
    cuts the pass."""
    g = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(30, 8), nn.ReLU(), nn.Linear(8, 5)).to(dtype)
    x = torch.randn(200, 30, generator=g, dtype=dtype)
    x[torch.rand(200, 30, generator=g) < 0.7] = -0.42  # the background value, as in standardised images
    y = torch.randint(0, 5, (200,), generator=g)
    twin = copy.deepcopy(model)
    fused = MLPCoordinateEvaluator(FlatParams(model), F.cross_entropy, x, y, refresh_every=refresh_every)
    stepwise = MLPCoordinateEvaluator(FlatParams(twin), F.cross_entropy, x, y, refresh_every=refresh_every)
    indices = torch.arange(fused.num_dims)  # unit 0's 30 weights, unit 1's, ..., the biases, the output layer
    w = fused.flat.get().double()
    steps = torch.randn(indices.numel(), 1, generator=g, dtype=torch.float64) * scale
    candidates = torch.cat([w.unsqueeze(1) + steps, w.unsqueeze(1) - steps], 1).to(dtype)
    candidates[40, :] = w[40]  # the current value in the middle of unit 1: the tie keeps it

    got = fused.greedy_pass(indices, candidates, l2=1e-3)
    want = greedy_pass_by_tries(stepwise, stepwise.flat, indices, candidates, l2=1e-3)

    assert torch.equal(got.choices, want.choices)
    rel = ((got.losses - want.losses).abs() / want.losses.abs()).max()
    print(f"max relative difference {float(rel):.2e}")
    torch.testing.assert_close(got.losses, want.losses, rtol=1e-9, atol=0)
    assert int(got.choices[40]) == -1
    taken = (got.choices[:240] >= 0).reshape(8, 30)
    assert int((taken[:, 1:] & taken[:, :-1]).sum()) > 50  # accepts in a row on one unit: deferred moves
    assert torch.equal(fused.flat.get(), stepwise.flat.get())
    assert fused.loss() == pytest.approx(stepwise.loss(), rel=1e-9)
    with torch.no_grad():
        assert fused.loss() == pytest.approx(float(F.cross_entropy(model(x), y)), rel=1e-6, abs=1e-7)
    fresh = MLPCoordinateEvaluator(FlatParams(copy.deepcopy(model)), F.cross_entropy, x, y)
    probe = candidates[::7, 0]
    for index, value in zip(indices[::7].tolist(), probe.tolist(), strict=True):
        values = torch.tensor([value], dtype=dtype)
        torch.testing.assert_close(fused.try_values(index, values), fresh.try_values(index, values),
                                   rtol=1e-9, atol=0)
