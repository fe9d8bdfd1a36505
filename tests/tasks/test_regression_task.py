"""The regression task: Friedman #1 data as documented, MSE/RMSE/R^2 metrics, and training through the harness."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradfree.errors import ConfigError
from gradfree.run import RunSpec, train_run
from gradfree.tasks import RegressionTask, build_task
from gradfree.tasks.regression import friedman1


def test_data_is_fixed_standardised_and_shaped_for_one_output() -> None:
    task = build_task("synthetic-regression", seed=0)
    again = build_task("synthetic-regression", seed=5)  # the data do not depend on the run's seed
    assert isinstance(task, RegressionTask) and task.default_model == "mlp:10-5-4-1:tanh"
    data = task.data
    assert (len(data.train), len(data.val), len(data.test)) == (1000, 1000, 1000)
    assert data.input_shape == (10,) and data.num_classes == 1 and data.train.y.shape == (1000, 1)
    assert torch.equal(data.train.x, again.data.train.x) and torch.equal(data.test.y, again.data.test.y)
    assert abs(float(data.train.y.mean())) < 1e-5 and float(data.train.y.std()) == pytest.approx(1.0, abs=1e-5)
    assert float(data.train.x.abs().max()) <= math.sqrt(3) + 1e-5  # U[0, 1] standardised exactly
    # a smaller training split keeps the same validation and test rows
    small = build_task("synthetic-regression", train_subset=100).data
    assert len(small.train) == 100 and torch.equal(small.val.x, data.val.x)
    with pytest.raises(ConfigError):
        build_task("synthetic-regression", train_subset=1)


def test_friedman_formula() -> None:
    x, y = friedman1(2000, generator=torch.Generator().manual_seed(1), noise=0.0)
    expected = (10 * torch.sin(math.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * x[:, 4])
    torch.testing.assert_close(y, expected)
    assert float(x.min()) >= 0 and float(x.max()) <= 1


def test_metrics() -> None:
    task = build_task("synthetic-regression")
    zero = nn.Linear(10, 1)
    with torch.no_grad():
        zero.weight.zero_()
        zero.bias.zero_()
    metrics = task.evaluate(zero, task.data.train)
    assert set(metrics) == {"loss", "rmse", "r2"}
    y = task.data.train.y
    assert metrics["loss"] == pytest.approx(float((y**2).mean()), rel=1e-5)
    assert metrics["rmse"] == pytest.approx(math.sqrt(metrics["loss"]))
    assert metrics["r2"] == pytest.approx(0.0, abs=1e-6)  # predicting the (zero) training mean
    assert task.loss_fn is F.mse_loss  # vmappable, and recognised by the incremental engine as a row mean


def test_adam_learns_it_through_train_run() -> None:
    spec = RunSpec(task="synthetic-regression", optimizer="adam", options={"lr": 1e-2}, budget=1500,
                   batch_size=64, eval_every=500, seed=0, device="cpu")
    result = train_run(spec, progress=False)
    assert result.final["test_r2"] > 0.8 and result.final["test_rmse"] < 0.45
    val_rows = [row for row in result.history if row["kind"] == "val"]
    assert all({"val_loss", "val_rmse", "val_r2"} <= set(row) for row in val_rows)
    assert "val_accuracy" not in val_rows[0]


def test_grid_search_runs_on_it() -> None:
    spec = RunSpec(task="synthetic-regression", optimizer="grid", options={"range_size": 20, "weights_per_step": None},
                   budget=3000, batch_size=None, eval_every=1000, seed=0, device="cpu")
    result = train_run(spec, progress=False)
    assert result.final["train_loss"] < 0.9 and result.evaluations == 2 * (1 + 20 * 84)
