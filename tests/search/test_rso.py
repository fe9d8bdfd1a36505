"""RSO: improvement, determinism, exact resume and evaluation counts, the paper's layer order and annealing."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.errors import ConfigError
from gradfree.objective.closure import ClosureCoordinates
from gradfree.objective.counter import EvaluationCounter
from gradfree.objective.parameters import ParameterObjective, PopulationCache
from gradfree.optim import build_optimizer
from gradfree.params.flat import FlatParams
from gradfree.search import RSO


def _quadratic(d: int = 12) -> tuple[nn.Linear, Tensor, Tensor]:
    """``loss(w) = mean_i (s_i (w_i - c_i))^2``: a separable, ill-conditioned quadratic with minimum 0."""
    g = torch.Generator().manual_seed(0)
    scales = torch.linspace(0.5, 2.0, d)
    target = torch.randn(d, generator=g)
    model = nn.Linear(d, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(0.5 * torch.randn(1, d, generator=g))
    return model, torch.diag(scales), (scales * target).unsqueeze(1)


def _mlp(seed: int = 0) -> nn.Sequential:
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


def _objective(model: nn.Module, x: Tensor, y: Tensor) -> ParameterObjective:
    return ParameterObjective(model, F.mse_loss, x, y, populations=PopulationCache(model, F.mse_loss),
                          counter=EvaluationCounter())


def _loss(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float(F.mse_loss(model(x), y))


class SpyClosure:
    """A plain closure whose coordinate evaluator records every (index, candidate values) tried."""

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor) -> None:
        self.model, self.x, self.y = model, x, y
        self.tried: list[tuple[int, list[float]]] = []
        self.calls = 0

    def __call__(self) -> Tensor:
        self.calls += 1
        return F.mse_loss(self.model(self.x), self.y)

    def coordinates(self, tensors: list[Tensor]) -> ClosureCoordinates:
        spy = self
        evaluator = ClosureCoordinates(FlatParams(self.model, params=tensors), self)
        inner = evaluator.try_values

        def try_values(index: int, values: Tensor) -> Tensor:
            spy.tried.append((index, values.tolist()))
            return inner(index, values)

        evaluator.try_values = try_values  # type: ignore[method-assign]
        return evaluator


@pytest.mark.parametrize("batched", [True, False], ids=["batch-objective", "plain-closure"])
def test_improves_a_quadratic(batched: bool) -> None:
    model, x, y = _quadratic()
    opt = RSO(model.parameters(), rounds=30, seed=0)
    closure = _objective(model, x, y) if batched else (lambda: F.mse_loss(model(x), y))
    before = _loss(model, x, y)
    for _ in range(30):
        opt.step(closure)
    assert _loss(model, x, y) < before / 100
    assert opt.round == 30 and opt.accepted > 0


def test_loss_on_a_fixed_batch_never_increases() -> None:
    model, x, y = _quadratic()
    opt = RSO(model.parameters(), weights_per_step=5, seed=3)
    losses = [float(opt.step(_objective(model, x, y))) for _ in range(20)]
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))


def test_same_seed_same_result_other_seed_differs() -> None:
    runs = []
    for seed in (0, 0, 1):
        model, x, y = _quadratic()
        opt = RSO(model.parameters(), weights_per_step=5, seed=seed)
        for _ in range(6):
            opt.step(_objective(model, x, y))
        runs.append(model.weight.detach().clone())
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_state_dict_round_trip_continues_identically() -> None:
    model, x, y = _quadratic()
    opt = RSO(model.parameters(), weights_per_step=5, rounds=10, seed=0)
    for _ in range(7):  # mid-round (12 weights: rounds of 3 steps)
        opt.step(_objective(model, x, y))
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    for _ in range(8):
        opt.step(_objective(model, x, y))
    expected = model.weight.detach().clone()

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model2, _, _ = _quadratic()
    with torch.no_grad():
        model2.weight.mul_(3.0)  # a different start: sigma must come from the saved state, not from here
    opt2 = RSO(model2.parameters(), weights_per_step=5, rounds=10, seed=99)
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    assert (opt2.round, opt2.position) == (2, 1 * 5)
    for _ in range(8):
        opt2.step(_objective(model2, x, y))
    assert torch.equal(model2.weight.detach(), expected)
    assert (opt2.round, opt2.position, opt2.accepted, opt2.evaluations) == (
        opt.round, opt.position, opt.accepted, opt.evaluations)


@pytest.mark.parametrize("weight_decay, per_weight", [(0.0, 2), (1e-3, 3)])
def test_evaluation_counts_are_exact(weight_decay: float, per_weight: int) -> None:
    model, x, y = _quadratic(d=12)
    opt = RSO(model.parameters(), weights_per_step=5, weight_decay=weight_decay, seed=0)
    objectives = [_objective(model, x, y) for _ in range(4)]
    for objective in objectives:
        opt.step(objective)
    # steps try 5, 5, 2 weights (the round ends at 12), then 5 of the next round
    tried = [5, 5, 2, 5]
    assert [o.counter.evaluations for o in objectives] == [1 + per_weight * k for k in tried]
    assert opt.evaluations == sum(o.counter.evaluations for o in objectives)
    # the same counts through a plain closure (one call per evaluation)
    model2, _, _ = _quadratic(d=12)
    opt2 = RSO(model2.parameters(), weights_per_step=5, weight_decay=weight_decay, seed=0)
    spy = SpyClosure(model2, x, y)
    for _ in range(4):
        opt2.step(spy)
    assert spy.calls == opt.evaluations == opt2.evaluations


def test_one_weight_per_step_is_the_papers_three_evaluations_per_weight() -> None:
    model, x, y = _quadratic()
    opt = RSO(model.parameters(), weights_per_step=1, seed=0)
    objective = _objective(model, x, y)
    for _ in range(12):
        opt.step(objective)
    assert objective.counter.evaluations == 12 * 3 and opt.round == 1


def _flat_ranges(model: nn.Module) -> list[list[int]]:
    ranges, offset = [], 0
    for p in model.parameters():
        ranges.append(list(range(offset, offset + p.numel())))
        offset += p.numel()
    return ranges


@pytest.mark.parametrize("order", ["output-first", "input-first"])
def test_layer_order(order: str) -> None:
    """Output-first (the paper's): last layer's bias, its weight, then the layer before ... storage order inside."""
    model = _mlp()
    x, y = torch.randn(16, 3, generator=torch.Generator().manual_seed(1)), torch.zeros(16, 2)
    opt = RSO(model.parameters(), weights_per_step=None, order=order, seed=0)  # type: ignore[arg-type]
    spy = SpyClosure(model, x, y)
    opt.step(spy)
    visited = [index for index, _ in spy.tried]
    w1, b1, w2, b2 = _flat_ranges(model)
    expected = b2 + w2 + b1 + w1 if order == "output-first" else w1 + b1 + w2 + b2
    assert visited == expected


def test_perturbation_is_the_layer_init_std_linearly_annealed() -> None:
    """delta = lr * std(initial tensor) * (anneal + (1 - anneal) (R - r) / R) * z, z from the seeded generator."""
    model = _mlp()
    x, y = torch.randn(16, 3, generator=torch.Generator().manual_seed(1)), torch.zeros(16, 2)
    sigmas = [float(p.detach().double().std(unbiased=False)) for p in model.parameters()]
    rounds, anneal, lr, seed = 4, 0.1, 0.5, 7
    opt = RSO(model.parameters(), lr=lr, rounds=rounds, anneal=anneal, weights_per_step=None, seed=seed)
    spy = SpyClosure(model, x, y)
    generator = torch.Generator().manual_seed(seed)
    order = [3, 2, 1, 0]  # tensors, output first
    ranges = _flat_ranges(model)
    for r in range(rounds + 2):
        before = len(spy.tried)
        weights = FlatParams(model).get()
        opt.step(spy)
        factor = anneal + (1 - anneal) * max(rounds - r, 0) / rounds
        assert opt.annealing() == pytest.approx(anneal + (1 - anneal) * max(rounds - r - 1, 0) / rounds)
        z = torch.randn(sum(len(g) for g in ranges), generator=generator)
        expected = torch.cat([torch.full((len(ranges[t]),), lr * sigmas[t] * factor) for t in order]) * z
        tried = spy.tried[before:]
        # Each weight is tried at w + delta and w - delta, with w its value when it is visited: since the
        # weights of one tensor are visited once per round, w is the value at the start of the round.
        deltas = torch.tensor([(plus - minus) / 2 for _, (plus, minus) in tried])
        torch.testing.assert_close(deltas, expected.float(), rtol=1e-4, atol=1e-6)
        centres = torch.tensor([(plus + minus) / 2 for _, (plus, minus) in tried])
        torch.testing.assert_close(centres, weights[[i for i, _ in tried]], rtol=1e-4, atol=1e-6)
    assert opt.round == rounds + 2


def test_zero_initialised_bias_borrows_its_weights_scale() -> None:
    model = nn.Linear(5, 3)
    with torch.no_grad():
        model.bias.zero_()
    opt = RSO(model.parameters())
    assert opt.state[model.bias]["sigma"] == opt.state[model.weight]["sigma"] > 0
    with pytest.raises(ConfigError, match="sigma="):
        RSO([torch.zeros(3, requires_grad=True)])
    assert RSO([torch.zeros(3, requires_grad=True)], sigma=0.1).state_dict()["state"][0]["sigma"] == 0.1


def test_frozen_group_costs_nothing_and_stays() -> None:
    model = _mlp()
    x, y = torch.randn(16, 3, generator=torch.Generator().manual_seed(1)), torch.zeros(16, 2)
    first = list(model[0].parameters())
    opt = RSO([{"params": first, "lr": 0.0}, {"params": list(model[2].parameters())}], weights_per_step=None)
    saved = [p.detach().clone() for p in first]
    objective = _objective(model, x, y)
    opt.step(objective)
    assert all(torch.equal(p, s) for p, s in zip(first, saved, strict=True))
    assert objective.counter.evaluations == 1 + 2 * (4 * 2 + 2)


def test_bad_options_are_config_errors() -> None:
    params = [nn.Parameter(torch.randn(4))]
    for options in ({"rounds": 0}, {"anneal": 1.5}, {"weights_per_step": 0}, {"order": "random"},
                    {"weight_decay": 1.0}, {"sigma": -1.0}):
        with pytest.raises(ConfigError):
            RSO(params, **options)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="closure"):
        RSO(params).step()


def test_registered_and_built_by_name() -> None:
    opt = build_optimizer("rso", [nn.Parameter(torch.randn(4))], rounds=5)
    assert isinstance(opt, RSO) and opt.zeroth_order
    assert math.isclose(opt.annealing(), 1.0)


def test_l2_penalty_shrinks_weights_the_loss_ignores_at_no_extra_cost() -> None:
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    x[:, 1] = 0.0  # the second weight does not change the loss
    y = 0.7 * x[:, :1]
    for l2, shrinks in ((0.0, False), (0.1, True)):
        model = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            model.weight.copy_(torch.tensor([[0.0, 1.0]]))
        opt = RSO(model.parameters(), l2=l2, sigma=0.2, rounds=None, seed=0)
        objective = _objective(model, x, y)
        for _ in range(40):
            opt.step(objective)
        idle = abs(float(model.weight.detach()[0, 1]))
        assert (idle < 0.3) if shrinks else (idle == 1.0)
        assert abs(float(model.weight.detach()[0, 0]) - 0.7) < 0.1  # the data term still fits
        assert objective.counter.evaluations == 40 * (1 + 2 * 2)
