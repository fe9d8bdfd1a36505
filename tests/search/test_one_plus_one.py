"""(1+1) local search: improvement, the 1/5th success rule, blocks, box bounds, counts, determinism, resume."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.errors import ConfigError
from gradfree.objective.counter import EvaluationCounter
from gradfree.objective.parameters import ParameterObjective, PopulationCache
from gradfree.search import OnePlusOne


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


@pytest.mark.parametrize("block_size", [None, 4])
def test_improves_a_quadratic(block_size: int | None) -> None:
    model, x, y = _quadratic()
    opt = OnePlusOne(model.parameters(), lr=0.1, block_size=block_size, seed=0)
    before = _loss(model, x, y)
    for _ in range(400):
        opt.step(_objective(model, x, y))
    assert _loss(model, x, y) < before / 100
    assert 0.1 < opt.successes / opt.trials < 0.5  # the rule steers toward 1/5


def test_one_fifth_rule_grows_on_success_and_shrinks_on_failure() -> None:
    p = nn.Parameter(torch.zeros(5))
    opt = OnePlusOne([p], lr=0.1, seed=0)
    flat = lambda: torch.zeros(())  # noqa: E731  (every candidate ties: a success)
    opt.step(flat)
    assert opt.scale == pytest.approx(math.exp(1 / 3)) and opt.successes == 1
    assert not torch.equal(p.detach(), torch.zeros(5))  # the tie was accepted
    with torch.no_grad():
        p.zero_()
    bowl = lambda: (p**2).sum()  # noqa: E731  (at the minimum every candidate is worse: a failure)
    opt.step(bowl)
    assert opt.scale == pytest.approx(math.exp(1 / 3) * math.exp(-1 / 12))
    assert torch.equal(p.detach(), torch.zeros(5))
    # at a success rate of exactly 1/5 the step is stationary
    opt.scale = 1.0
    for success in (True, False, False, False, False):
        opt.adapt_scale(success)
    assert opt.scale == pytest.approx(1.0)


def test_scale_stays_within_its_bounds() -> None:
    p = nn.Parameter(torch.zeros(3))
    opt = OnePlusOne([p], lr=1e-3, scale_bounds=(0.5, 2.0))
    for _ in range(20):
        opt.adapt_scale(True)
    assert opt.scale == 2.0
    for _ in range(200):
        opt.adapt_scale(False)
    assert opt.scale == 0.5


def test_bounds_are_respected() -> None:
    model, x, y = _quadratic()
    with torch.no_grad():
        model.weight[0, 0] = 5.0  # starts outside the box: projected in at the first step
    opt = OnePlusOne(model.parameters(), lr=1.0, bounds=(-0.25, 0.25), seed=1)
    for _ in range(100):
        opt.step(_objective(model, x, y))
        w = model.weight.detach()
        assert float(w.min()) >= -0.25 and float(w.max()) <= 0.25
    assert opt.successes > 0
    assert int((model.weight.detach().abs() == 0.25).sum()) > 0  # some sit on the box


def test_a_block_changes_at_most_block_size_weights() -> None:
    model, x, y = _quadratic()
    opt = OnePlusOne(model.parameters(), lr=0.05, block_size=3, seed=2)
    changed = 0
    for _ in range(30):
        before = model.weight.detach().clone()
        opt.step(_objective(model, x, y))
        moved = int((model.weight.detach() != before).sum())
        assert moved in (0, 3)
        changed += moved > 0
    assert changed == opt.successes > 0


def test_two_evaluations_per_step_in_one_batched_call() -> None:
    model, x, y = _quadratic()
    opt = OnePlusOne(model.parameters(), seed=0)
    objective = _objective(model, x, y)
    calls: list[int] = []
    original = objective.population

    def counting(vectors: Tensor, tensors: list[Tensor]) -> Tensor:
        calls.append(int(vectors.shape[0]))
        return original(vectors, tensors)

    objective.population = counting  # type: ignore[method-assign]
    for _ in range(7):
        opt.step(objective)
    assert calls == [2] * 7 and objective.counter.evaluations == 14 == opt.evaluations
    # with a plain closure: two calls per step, and a rejected candidate leaves the weights bit-for-bit
    calls_plain = 0

    def plain() -> Tensor:
        nonlocal calls_plain
        calls_plain += 1
        return F.mse_loss(model(x), y)

    for _ in range(5):
        before = model.weight.detach().clone()
        successes = opt.successes
        opt.step(plain)
        if opt.successes == successes:
            assert torch.equal(model.weight.detach(), before)
    assert calls_plain == 10


def test_same_seed_same_result_and_resume_continues_identically() -> None:
    def run(seed: int, steps: int) -> tuple[nn.Linear, OnePlusOne]:
        model, x, y = _quadratic()
        opt = OnePlusOne(model.parameters(), lr=0.2, block_size=5, seed=seed)
        for _ in range(steps):
            opt.step(_objective(model, x, y))
        return model, opt

    a, _ = run(0, 20)
    b, _ = run(0, 20)
    c, _ = run(1, 20)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)

    model, opt = run(0, 8)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed, x, y = _quadratic()
    opt2 = OnePlusOne(resumed.parameters(), lr=0.2, block_size=5, seed=77)
    resumed.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    assert opt2.scale == opt.scale and opt2.trials == 8
    for _ in range(12):
        opt2.step(_objective(resumed, x, y))
    assert torch.equal(resumed.weight, a.weight)


def test_bad_options_are_config_errors() -> None:
    params = [nn.Parameter(torch.randn(4))]
    for options in ({"block_size": 0}, {"success_rate": 1.0}, {"adapt": 1.0}, {"scale_bounds": (2.0, 3.0)},
                    {"bounds": (1.0, -1.0)}, {"lr": -1.0}):
        with pytest.raises(ConfigError):
            OnePlusOne(params, **options)  # type: ignore[arg-type]
