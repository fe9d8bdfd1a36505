"""Per-parameter grid search: the optimum of a separable problem within grid resolution, convergence flag,
relative grids, exact evaluation counts, determinism and resume."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.errors import ConfigError
from gradfree.objective.counter import EvaluationCounter
from gradfree.objective.parameters import ParameterObjective, PopulationCache
from gradfree.search import GridSearch


def _separable(d: int = 10, *, seed: int = 0) -> tuple[nn.Linear, Tensor, Tensor, Tensor]:
    """``loss(w) = mean_i (s_i (w_i - c_i))^2`` with optimum ``c`` inside (-2, 2): one 1-D problem per weight."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.linspace(0.5, 2.0, d)
    optimum = torch.rand(d, generator=g) * 3.6 - 1.8
    model = nn.Linear(d, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    return model, torch.diag(scales), (scales * optimum).unsqueeze(1), optimum


def _objective(model: nn.Module, x: Tensor, y: Tensor) -> ParameterObjective:
    return ParameterObjective(model, F.mse_loss, x, y, populations=PopulationCache(model, F.mse_loss),
                          counter=EvaluationCounter())


@pytest.mark.parametrize("batched", [True, False], ids=["batch-objective", "plain-closure"])
def test_finds_the_optimum_of_a_separable_problem_within_grid_resolution(batched: bool) -> None:
    model, x, y, optimum = _separable()
    lo, hi, k = -2.0, 2.0, 41
    opt = GridSearch(model.parameters(), weight_range=(lo, hi), range_size=k, weights_per_step=None, seed=0)
    opt.step(_objective(model, x, y) if batched else (lambda: F.mse_loss(model(x), y)))
    w = model.weight.detach().flatten()
    resolution = (hi - lo) / (k - 1)
    assert float((w - optimum).abs().max()) <= resolution / 2 + 1e-6
    grid = torch.linspace(lo, hi, k)
    nearest = grid[(grid.unsqueeze(0) - optimum.unsqueeze(1)).abs().argmin(dim=1)]
    torch.testing.assert_close(w, nearest)
    assert opt.sweep == 1


def test_converged_after_a_sweep_without_gain_and_keeps_searching() -> None:
    model, x, y, _ = _separable()
    opt = GridSearch(model.parameters(), weight_range=(-2.0, 2.0), range_size=41, weights_per_step=None, tol=1e-6)
    objective = _objective(model, x, y)
    opt.step(objective)
    assert not opt.converged and opt.sweep_gains[0] > 0.5
    opt.step(objective)  # separable: the second sweep finds nothing better
    assert opt.converged and opt.converged_sweep == 1 and opt.sweep_gains[1] == 0.0
    spent = objective.counter.evaluations
    opt.step(objective)  # documented: it keeps going (a trainer with an evaluation budget must not stall)
    assert objective.counter.evaluations == spent + 1 + 41 * 10


def test_relative_grid_with_shrink_refines_past_the_first_resolution() -> None:
    model, x, y, optimum = _separable()
    opt = GridSearch(model.parameters(), weight_range=(-2.0, 2.0), range_size=9, relative=True, shrink=0.25,
                     weights_per_step=None)
    objective = _objective(model, x, y)
    opt.step(objective)
    first = float((model.weight.detach().flatten() - optimum).abs().max())
    assert first <= 0.25 + 1e-6  # resolution 0.5 around 0
    for _ in range(4):
        opt.step(objective)
    assert float((model.weight.detach().flatten() - optimum).abs().max()) < 1e-3


def test_evaluation_counts_are_exact() -> None:
    model, x, y, _ = _separable(d=10)
    opt = GridSearch(model.parameters(), range_size=7, weights_per_step=4)
    objectives = [_objective(model, x, y) for _ in range(4)]
    for objective in objectives:
        opt.step(objective)
    assert [o.counter.evaluations for o in objectives] == [1 + 7 * k for k in (4, 4, 2, 4)]
    assert opt.evaluations == sum(o.counter.evaluations for o in objectives)
    # lr < 1: a partial move's loss is unknown, so the next weight first re-evaluates the current loss. From
    # w = 3 (off the grid) every weight moves: +1 evaluation for each but the last of the sweep.
    model2, _, _, _ = _separable(d=10)
    with torch.no_grad():
        model2.weight.fill_(3.0)
    damped = GridSearch(model2.parameters(), lr=0.5, weight_range=(-2.0, 2.0), range_size=7, weights_per_step=None)
    objective = _objective(model2, x, y)
    damped.step(objective)
    assert bool((model2.weight.detach() < 3.0).all())
    assert objective.counter.evaluations == damped.evaluations == 1 + 7 * 10 + 9


def test_partial_moves_with_lr_below_one() -> None:
    model, x, y, optimum = _separable()
    opt = GridSearch(model.parameters(), lr=0.5, weight_range=(-2.0, 2.0), range_size=41, weights_per_step=None)
    opt.step(_objective(model, x, y))
    grid = torch.linspace(-2.0, 2.0, 41)
    nearest = grid[(grid.unsqueeze(0) - optimum.unsqueeze(1)).abs().argmin(dim=1)]
    torch.testing.assert_close(model.weight.detach().flatten(), 0.5 * nearest)


def test_same_seed_same_order_and_resume_continues_identically() -> None:
    model, x, y, _ = _separable(d=10)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, 10, generator=g))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    opt = GridSearch(model.parameters(), lr=0.7, range_size=11, weight_range=(-2.0, 2.0), weights_per_step=3,
                     seed=4)
    for _ in range(5):
        opt.step(_objective(model, x, y))
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    for _ in range(6):
        opt.step(_objective(model, x, y))
    expected = model.weight.detach().clone()

    again = nn.Linear(10, 1, bias=False)
    again.load_state_dict(start)
    opt_again = GridSearch(again.parameters(), lr=0.7, range_size=11, weight_range=(-2.0, 2.0),
                           weights_per_step=3, seed=4)
    for _ in range(11):
        opt_again.step(_objective(again, x, y))
    assert torch.equal(again.weight.detach(), expected)

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = nn.Linear(10, 1, bias=False)
    opt2 = GridSearch(resumed.parameters(), lr=0.7, range_size=11, weight_range=(-2.0, 2.0), weights_per_step=3,
                      seed=123)
    resumed.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    for _ in range(6):
        opt2.step(_objective(resumed, x, y))
    assert torch.equal(resumed.weight.detach(), expected)
    assert (opt2.sweep, opt2.position, opt2.evaluations) == (opt.sweep, opt.position, opt.evaluations)


def test_bad_options_are_config_errors() -> None:
    params = [nn.Parameter(torch.randn(4))]
    for options in ({"weight_range": (1.0, -1.0)}, {"range_size": 1}, {"shrink": 0.0}, {"tol": -1.0},
                    {"weights_per_step": 0}, {"lr": 2.0}):
        with pytest.raises(ConfigError):
            GridSearch(params, **options)  # type: ignore[arg-type]


def test_trainer_stops_when_the_grid_search_converges() -> None:
    from gradfree.run import RunSpec, train_run

    spec = RunSpec(task="synthetic-regression", model="mlp:10-2-1:tanh", optimizer="grid",
                   options={"range_size": 21, "weight_range": (-3, 3), "tol": 1e-2}, budget=200_000,
                   batch_size=None, eval_every=2000, device="cpu")
    result = train_run(spec, progress=False)
    assert result.stopped == "converged"
    assert result.evaluations < 200_000
    assert result.final["test_r2"] > 0.3  # it did fit before stopping
