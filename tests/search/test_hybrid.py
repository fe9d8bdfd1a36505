"""Hybrid: the switch by evaluation count and by plateau, both phase kinds with and without a closure, resume."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.errors import ConfigError
from gradfree.objective.counter import EvaluationCounter
from gradfree.objective.parameters import ParameterObjective, PopulationCache
from gradfree.optim import build_optimizer
from gradfree.search import RSO, Hybrid, OnePlusOne


def _quadratic(d: int = 12) -> tuple[nn.Linear, Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    scales = torch.linspace(0.5, 2.0, d)
    model = nn.Linear(d, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(0.5 * torch.randn(1, d, generator=g))
    return model, torch.diag(scales), (scales * torch.randn(d, generator=g)).unsqueeze(1)


def _objective(model: nn.Module, x: Tensor, y: Tensor) -> ParameterObjective:
    return ParameterObjective(model, F.mse_loss, x, y, populations=PopulationCache(model, F.mse_loss),
                          counter=EvaluationCounter())


def _loss(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float(F.mse_loss(model(x), y))


def test_switches_at_the_evaluation_count() -> None:
    model, x, y = _quadratic()
    # rso tries 4 weights per step: 1 + 2 * 4 = 9 evaluations; 50 is reached after the 6th step (54).
    opt = Hybrid(model.parameters(), first="rso", first_options={"weights_per_step": 4}, second="adam",
                 second_options={"lr": 0.05}, switch_after=50)
    objective = _objective(model, x, y)
    phases = []
    for _ in range(6):
        assert opt.zeroth_order
        opt.step(objective)
        phases.append(opt.phase)
    assert phases == [0] * 5 + [1]
    assert opt.switched_at == 54 == objective.counter.evaluations == opt.evaluations
    assert not opt.zeroth_order and isinstance(opt.phases[0], RSO)
    # Python use of the gradient phase: the hybrid runs backward on the closure itself, one evaluation a step
    before = _loss(model, x, y)
    for _ in range(20):
        opt.step(lambda: F.mse_loss(model(x), y))
    assert _loss(model, x, y) < before and model.weight.grad is not None
    assert opt.evaluations == 54 + 20 and opt.phase == 1


def test_switches_by_plateau() -> None:
    p = nn.Parameter(torch.zeros(4))
    window = 3
    opt = Hybrid([p], first="one-plus-one", second="sgd", plateau=1e-3, window=window)
    constant = lambda: (p * 0).sum() + 1.0  # noqa: E731  (a flat loss: no improvement at all)
    for step in range(2 * window):
        assert opt.phase == 0, step
        opt.step(constant)
    assert opt.phase == 1 and opt.switched_at == 2 * window * 2  # (1+1) spends 2 evaluations a step

    q = nn.Parameter(torch.zeros(4))
    improving = Hybrid([q], first="one-plus-one", second="sgd", plateau=1e-3, window=window)
    calls = 0

    def halving() -> Tensor:  # every evaluation halves the loss: a steady 50%+ improvement per window
        nonlocal calls
        calls += 1
        return (q * 0).sum() + 0.5**calls

    for _ in range(10 * window):
        improving.step(halving)
    assert improving.phase == 0 and improving.switched_at is None


def test_reverse_order_gradient_first() -> None:
    model, x, y = _quadratic()
    opt = Hybrid(model.parameters(), first="adam", first_options={"lr": 0.05}, second="one-plus-one",
                 second_options={"lr": 0.01}, switch_after=30)
    assert not opt.zeroth_order
    for _ in range(30):  # as the trainer drives a gradient phase: backward outside, step() without closure
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
    assert opt.phase == 1 and opt.zeroth_order and opt.switched_at == 30
    weight = model.weight.detach().clone()
    for _ in range(20):
        opt.step(_objective(model, x, y))
    assert opt.evaluations == 30 + 2 * 20 and not torch.equal(model.weight.detach(), weight)
    assert isinstance(opt.phases[1], OnePlusOne)


def test_plateau_out_of_a_gradient_phase_needs_losses() -> None:
    model, x, y = _quadratic()
    opt = Hybrid(model.parameters(), first="adam", second="rso", plateau=1e-3)
    F.mse_loss(model(x), y).backward()
    with pytest.raises(ConfigError, match="switch_after"):
        opt.step()
    opt.step(lambda: F.mse_loss(model(x), y))  # with a closure the hybrid sees the losses: fine


def test_lr_scales_both_phases_per_group() -> None:
    model = nn.Linear(3, 2)
    opt = Hybrid([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.0}], lr=0.5, first="rso",
                 first_options={"lr": 2.0}, second="adam", second_options={"lr": 0.1}, switch_after=10)
    assert [g["lr"] for g in opt.phases[0].param_groups] == [1.0, 0.0]
    assert [g["lr"] for g in opt.phases[1].param_groups] == [0.05, 0.0]


def test_state_dict_round_trip_in_both_phases() -> None:
    def make(model: nn.Module, seed: int) -> Hybrid:
        return Hybrid(model.parameters(), first="rso", first_options={"weights_per_step": 3}, second="zo-adam",
                      second_options={"lr": 0.05, "num_directions": 4}, switch_after=40, seed=seed)

    for saved_after in (2, 8):  # in the first phase (rso), then after the switch (zo-adam)
        model, x, y = _quadratic()
        opt = make(model, 0)
        for _ in range(saved_after):
            opt.step(_objective(model, x, y))
        buffer = io.BytesIO()
        torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
        for _ in range(8):
            opt.step(_objective(model, x, y))
        expected = model.weight.detach().clone()

        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
        model2, _, _ = _quadratic()
        opt2 = make(model2, 5)
        model2.load_state_dict(saved["model"])
        opt2.load_state_dict(saved["opt"])
        assert opt2.phase == (0 if saved_after == 2 else 1)
        for _ in range(8):
            opt2.step(_objective(model2, x, y))
        assert torch.equal(model2.weight.detach(), expected)
        assert (opt2.phase, opt2.evaluations, opt2.switched_at) == (opt.phase, opt.evaluations, opt.switched_at)


def test_bad_options_are_config_errors() -> None:
    params = [nn.Parameter(torch.randn(4))]
    with pytest.raises(ConfigError, match="switch_after"):
        Hybrid(params)
    with pytest.raises(ConfigError, match="unknown optimizer"):
        Hybrid(params, first="nope", switch_after=1)
    with pytest.raises(ConfigError, match="hybrid"):
        Hybrid(params, second="hybrid", switch_after=1)
    with pytest.raises(ConfigError, match="takes no option"):
        build_optimizer("hybrid", params, switch_after=1, first_options={"bogus": 1})
