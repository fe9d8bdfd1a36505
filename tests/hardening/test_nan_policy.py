"""One NaN policy: a non-finite loss at a perturbed point is rejected and counted; a step that lands on a
non-finite point is undone and counted; a run stops only at a non-finite start or after K failed steps."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from gradfree.data.splits import DataSplits, Split
from gradfree.errors import NonFiniteLossError
from gradfree.optim import build_optimizer
from gradfree.tasks import RegressionTask
from gradfree.train import TrainConfig, Trainer
from gradfree.train.trainer import MAX_FAILED_STEPS

SLOPE = 0.5
"""The data are ``y = SLOPE x``: the best weight is 0.5."""


def _weight(output: Tensor, target: Tensor) -> Tensor:
    """The weight ``w`` of the model ``y = w x`` that produced ``output``, read off the outputs, so the loss
    depends on the weight through the outputs alone, as under ``torch.vmap``."""
    return SLOPE * (output * target).sum() / (target * target).sum()


class Cliff(RegressionTask):
    """Squared error, but NaN wherever the model's weight exceeds ``edge`` (0.6, just past the optimum 0.5): a
    large step overshoots onto the NaN side now and then."""

    edge = 0.6

    def loss_fn(self, output: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        loss = ((output - target) ** 2).mean()
        return torch.where(_weight(output, target) > self.edge, torch.full_like(loss, float("nan")), loss)


def _cliff() -> tuple[Cliff, nn.Linear]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, generator=g)
    split = Split(x, SLOPE * x)
    task = Cliff(DataSplits("cliff", split, split, split, 1), default_model="-")
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    return task, model


def test_steps_onto_non_finite_points_are_undone_and_the_run_goes_on() -> None:
    task, model = _cliff()
    optimizer = build_optimizer("zo-adam", model.parameters(), lr=0.2, num_directions=2, smoothing=1e-3, seed=0)
    result = Trainer(task, model, optimizer, TrainConfig(budget=600, batch_size=None, eval_every=10**6,
                                                         progress=False, restore_best=False)).fit()
    assert result.stopped == "budget"  # not ended by the NaNs
    assert result.undone > 0 and result.failed_steps >= result.undone - 1 and result.rejected > 0  # -1: at the end
    assert float(model.weight.detach()) <= Cliff.edge  # never left on a non-finite point


def test_a_rejected_mezo_direction_does_not_end_the_run() -> None:
    task, model = _cliff()
    with torch.no_grad():
        model.weight.fill_(Cliff.edge - 1e-2)  # a perturbation crosses the cliff when |z| > 1: a third of them
    optimizer = build_optimizer("mezo", model.parameters(), lr=1e-5, smoothing=1e-2, seed=0)
    result = Trainer(task, model, optimizer, TrainConfig(budget=200, batch_size=None, eval_every=10**6,
                                                         progress=False)).fit()
    rejected_directions = optimizer.rejected  # type: ignore[attr-defined]
    assert result.stopped == "budget" and 10 < rejected_directions < 90  # of the 100 steps' one direction each
    assert result.failed_steps == rejected_directions and result.rejected >= rejected_directions


class Ledge(Cliff):
    """A narrow finite ledge around the start (weight 0), the optimum beyond it: every update lands off it."""

    edge = 0.05


def test_k_failed_steps_without_progress_stop_the_run_with_a_clear_message() -> None:
    cliff, model = _cliff()
    task = Ledge(cliff.data, default_model="-")
    optimizer = build_optimizer("zo-sgd", model.parameters(), lr=1.0, num_directions=2, seed=0)
    result = Trainer(task, model, optimizer, TrainConfig(budget=10**6, batch_size=None, eval_every=10**6,
                                                         progress=False)).fit()
    assert result.stopped.startswith(f"non-finite loss in {MAX_FAILED_STEPS} failed steps")
    assert "lower the learning rate" in result.stopped and result.failed_steps >= MAX_FAILED_STEPS
    assert result.undone >= MAX_FAILED_STEPS and float(model.weight.detach()) <= Ledge.edge  # back on the ledge


def test_a_non_finite_start_is_an_error_before_any_step() -> None:
    task, model = _cliff()
    with torch.no_grad():
        model.weight.fill_(1.0)  # past the cliff
    optimizer = build_optimizer("zo-adam", model.parameters())
    with pytest.raises(NonFiniteLossError, match="starting point"):
        Trainer(task, model, optimizer, TrainConfig(budget=100, batch_size=None, progress=False)).fit()
