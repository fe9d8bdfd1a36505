"""Batch-norm running statistics move once per zeroth-order step, from the weights the step ends at."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gradfree.objective.running_stats import RunningStats
from gradfree.optim import build_optimizer
from gradfree.tasks import ClassificationTask, build_task
from gradfree.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def digits() -> ClassificationTask:
    return build_task("digits")


def _bn_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))


def _stats(model: nn.Module) -> list[torch.Tensor]:
    bn = model[1]
    return [bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()]


@pytest.mark.parametrize("optimizer, options", [("open-es", {"popsize": 8}), ("zo-adam", {"num_directions": 4}),
                                                 ("rso", {"weights_per_step": 20})])
def test_one_step_moves_the_statistics_once_from_the_new_weights(digits: ClassificationTask, optimizer: str,
                                                                 options: dict[str, object]) -> None:
    model = _bn_mlp()
    start = copy.deepcopy(model)
    trainer = Trainer(digits, model, build_optimizer(optimizer, model.parameters(), **options),
                      TrainConfig(batch_size=None, budget=1, eval_every=10**9, restore_best=False))
    result = trainer.fit()
    assert result.steps == 1
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), start.parameters(), strict=True))

    # Expected: the starting statistics, moved by one training-mode forward of the final weights.
    expected = copy.deepcopy(start)
    expected.load_state_dict({**start.state_dict(), **dict(model.named_parameters())})
    with torch.no_grad():
        expected.train()(digits.data.train.x)
    for got, want in zip(_stats(model), _stats(expected), strict=True):
        torch.testing.assert_close(got, want)
    assert int(model[1].num_batches_tracked) == 1


def test_the_tracking_forward_is_charged(digits: ClassificationTask) -> None:
    plain = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    costs = []
    for model in (plain, _bn_mlp()):
        trainer = Trainer(digits, model, build_optimizer("mezo", model.parameters()),
                          TrainConfig(batch_size=32, budget=1, eval_every=10**9))
        costs.append(trainer.fit().evaluations)
    assert costs == [2, 3]  # MeZO's two evaluations, plus the statistics forward with batch norm


def test_frozen_restores_the_statistics_even_on_error() -> None:
    model = _bn_mlp().train()
    before = _stats(model)
    stats = RunningStats(model)
    with pytest.raises(RuntimeError, match="boom"), stats.frozen():
        model(torch.randn(32, 64) * 5 + 3)
        assert not torch.equal(model[1].running_mean, before[0])
        raise RuntimeError("boom")
    for got, want in zip(_stats(model), before, strict=True):
        assert torch.equal(got, want)


def test_only_tracked_statistics_in_training_mode_count() -> None:
    assert not RunningStats(nn.Sequential(nn.Linear(4, 4)))
    model = _bn_mlp()
    stats = RunningStats(model)
    assert stats
    model.eval()
    assert not stats  # an eval-mode forward leaves the statistics alone
    assert not RunningStats(nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16, track_running_stats=False)))
