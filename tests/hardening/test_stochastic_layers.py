"""Stochastic layers under common random numbers: a model with Dropout trains through the trainer and through
the plain closure API, and batch-norm statistics move once per step in the plain API too."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradfree.data.digits import load_digits
from gradfree.objective.randomness import same_randomness, stochastic
from gradfree.optim import build_optimizer
from gradfree.tasks import ClassificationTask
from gradfree.train import TrainConfig, Trainer

# name -> (options, evaluation budget): settings that train the digits MLP in a few seconds each (measured at
# 6,000 evaluations, test accuracy with dropout 0.1 / without: trainer zo-adam 0.914/0.928, mezo 0.650/0.644,
# sep-cma 0.931/0.889, rso 0.797/0.814; plain API 0.875/0.883, 0.653/0.650, 0.894/0.917, 0.853/0.844)
SETTINGS: dict[str, tuple[dict[str, Any], int]] = {
    "zo-adam": ({"lr": 2e-2, "num_directions": 8}, 6_000),
    "mezo": ({"lr": 2e-3, "num_directions": 4, "smoothing": 1e-3}, 6_000),
    "sep-cma": ({"popsize": 16, "sigma": 0.05}, 6_000),
    "rso": ({"weights_per_step": 256}, 6_000),
}


def _model(dropout: float) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(64, 32), nn.ReLU()]
    layers += [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(*layers, nn.Linear(32, 10))


@pytest.fixture(scope="module")
def digits() -> ClassificationTask:
    return ClassificationTask(load_digits(), default_model="mlp:64-32-10")


def _trainer_accuracy(task: ClassificationTask, name: str, dropout: float) -> float:
    options, budget = SETTINGS[name]
    model = _model(dropout)
    optimizer = build_optimizer(name, model.parameters(), seed=1, **options)
    result = Trainer(task, model, optimizer, TrainConfig(budget=budget, batch_size=128, eval_every=budget // 4,
                                                         seed=2, progress=False)).fit()
    return result.final["test_accuracy"]


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_dropout_trains_through_the_trainer(digits: ClassificationTask, name: str) -> None:
    """It used to crash (vmap's random-operation error) or stop on a NaN; now every evaluation of a step shares
    one mask, and the model reaches at least 90% of what the same model without dropout reaches."""
    with_dropout, without = _trainer_accuracy(digits, name, 0.1), _trainer_accuracy(digits, name, 0.0)
    assert with_dropout >= 0.9 * without, (with_dropout, without)


def _plain_api_accuracy(task: ClassificationTask, name: str, dropout: float) -> float:
    options, budget = SETTINGS[name]
    model = _model(dropout)
    optimizer = build_optimizer(name, model.parameters(), seed=1, **options)
    train = task.data.train
    g = torch.Generator().manual_seed(3)
    spent = 0

    def closure() -> torch.Tensor:  # the usual torch.optim closure, minus backward()
        nonlocal spent
        spent += 1
        return F.cross_entropy(model(x), y)

    while spent < budget:
        index = torch.randint(0, len(train), (128,), generator=g)
        x, y = train.x[index], train.y[index]
        model.train()
        optimizer.step(closure)
    return task.evaluate(model, task.data.test)["accuracy"]


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_dropout_trains_through_the_plain_closure_api(digits: ClassificationTask, name: str) -> None:
    """The optimizer seeds torch's RNG the same way for every closure call of a step (and restores the caller's
    RNG after): zo-sgd's weights used to reach 2e25 and every step went NaN."""
    with_dropout, without = _plain_api_accuracy(digits, name, 0.1), _plain_api_accuracy(digits, name, 0.0)
    assert with_dropout >= 0.9 * without, (with_dropout, without)


def test_every_closure_call_of_a_step_sees_one_mask_and_the_callers_rng_is_kept() -> None:
    model = _model(0.5).train()
    x = torch.randn(8, 64)
    masks: list[torch.Tensor] = []
    model[2].register_forward_hook(lambda _m, inp, out: masks.append((out == 0) & (inp[0] != 0)))

    def closure() -> torch.Tensor:
        return model(x).pow(2).mean()

    optimizer = build_optimizer("zo-sgd", model.parameters(), num_directions=3, seed=0)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    for _ in range(2):
        optimizer.step(closure)
    assert len(masks) == 8 and all(torch.equal(m, masks[0]) for m in masks[:4])  # one mask per step
    assert not torch.equal(masks[0], masks[4])  # a new mask for the next step
    assert torch.equal(torch.random.get_rng_state(), state), "the steps consumed or reseeded the caller's RNG"
    assert stochastic(model) and not stochastic(model.eval())
    with same_randomness(5):
        a = torch.rand(3)
    with same_randomness(5):
        b = torch.rand(3)
    assert torch.equal(a, b)


def test_batch_norm_statistics_move_once_per_step_in_the_plain_api() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).train()
    x, y = torch.randn(32, 5), torch.randint(0, 2, (32,))
    optimizer = build_optimizer("zo-adam", model.parameters(), num_directions=20, seed=0)
    norm = model[1]
    before = (norm.running_mean.clone(), norm.running_var.clone(), int(norm.num_batches_tracked))
    calls = 0

    def closure() -> torch.Tensor:
        nonlocal calls
        calls += 1
        return F.cross_entropy(model(x), y)

    optimizer.step(closure)
    assert calls == 21 + 1  # the estimate's 21 points, then one forward of the updated weights
    assert int(norm.num_batches_tracked) == before[2] + 1  # 21 would move them 22 times
    after = (norm.running_mean.clone(), norm.running_var.clone())
    norm.running_mean.copy_(before[0])
    norm.running_var.copy_(before[1])
    with torch.no_grad():
        model(x)  # what one backprop-style update of the statistics from the final weights gives
    assert torch.allclose(after[0], norm.running_mean) and torch.allclose(after[1], norm.running_var)
