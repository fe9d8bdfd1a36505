"""Regression: mean-squared-error loss with RMSE and R^2, and the seeded synthetic set "synthetic-regression".

The synthetic set is Friedman's first function (J. H. Friedman, "Multivariate adaptive regression splines",
Annals of Statistics 19(1), 1991, Sec. 4.3), the classic nonlinear benchmark with ten inputs of which five
matter::

    x ~ U[0, 1]^10,   y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5 + eps,   eps ~ N(0, 1).

Inputs are standardised exactly (``(x - 1/2) * sqrt(12)``: zero mean, unit variance) and targets with the
training split's mean and standard deviation, so losses are in units of the target's spread: predicting
the training mean scores an MSE of about 1 and the noise alone about 0.04 (R^2 about 0.96 at best). The data
are fixed (drawn from seed 0); a run's seed changes the model, the optimizer and the batch order only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.data.augment import Augmenter
from gradfree.data.ragged import dense
from gradfree.data.splits import DataSplits, Split
from gradfree.errors import ConfigError
from gradfree.tasks.protocol import Metric
from gradfree.tasks.registry import TASKS
from gradfree.tasks.supervised import SupervisedTask, for_each_chunk

TRAIN_SIZE, VAL_SIZE, TEST_SIZE = 1000, 1000, 1000
NOISE = 1.0
DATA_SEED = 0


R2 = Metric("r2", higher_is_better=True, label="R²")


@dataclass
class RegressionTask(SupervisedTask):
    """A regression dataset with its loss (MSE) and metrics (RMSE, R^2 as the headline).

    Attributes:
        data: the splits; ``y`` holds float targets of shape ``(N, outputs)`` and ``num_classes`` is the
            number of outputs (what the model's last layer must produce).
        default_model: the model spec used when none is given.
    """

    @property
    def headline(self) -> Metric:
        """The coefficient of determination, R^2."""
        return R2

    # Mean squared error, ``(output, target) -> scalar``: F.mse_loss itself, so that populations are scored in
    # one vmapped call and the incremental coordinate engine recognises it as a mean over rows.
    loss_fn = staticmethod(F.mse_loss)

    def augmentation(self, spec: str | None) -> Augmenter | None:
        """None: the inputs are not images."""
        if spec:
            raise ConfigError(f"{self.name} has no augmentation (its inputs are not images); drop --augment")
        return None

    def evaluate(self, model: nn.Module, split: Split, *, chunk: int = 4096) -> dict[str, float]:
        """MSE (``loss``), its root (``rmse``) and the coefficient of determination (``r2``) on ``split``.

        ``r2 = 1 - SSE / SST`` with ``SST`` about the split's own mean; monitoring, not counted in the budget.
        """
        total = {"sse": 0.0}

        def add(out: Tensor, y: Tensor) -> None:
            total["sse"] += float(F.mse_loss(out, y, reduction="sum"))

        for_each_chunk(model, self.chunks(split, chunk), add)
        y = dense(split.y)
        sse = total["sse"]
        count = max(y.numel(), 1)
        mse = sse / count
        sst = float(((y - y.mean(dim=0)) ** 2).sum()) if len(split) else 0.0
        r2 = 1.0 - sse / sst if sst > 0 else math.nan
        return {"loss": mse, "rmse": math.sqrt(mse), "r2": r2}


def friedman1(n: int, *, generator: torch.Generator, noise: float = NOISE) -> tuple[Tensor, Tensor]:
    """``n`` draws of Friedman's first function: inputs ``(n, 10)`` in ``[0, 1]`` and targets ``(n,)``."""
    x = torch.rand(n, 10, generator=generator, dtype=torch.float64)
    y = (10 * torch.sin(math.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * x[:, 4]
         + noise * torch.randn(n, generator=generator, dtype=torch.float64))
    return x, y


def synthetic_regression(*, train_size: int = TRAIN_SIZE, val_size: int = VAL_SIZE,
                         test_size: int = TEST_SIZE) -> DataSplits:
    """The "synthetic-regression" splits (float32, targets ``(N, 1)``), drawn from seed ``DATA_SEED``.

    The validation and test rows are the same whatever ``train_size`` is (they are drawn first).
    """
    generator = torch.Generator().manual_seed(DATA_SEED)
    parts = [friedman1(n, generator=generator) for n in (val_size, test_size, train_size)]
    mean, std = float(parts[2][1].mean()), float(parts[2][1].std())

    def split(x: Tensor, y: Tensor) -> Split:
        return Split(((x - 0.5) * math.sqrt(12)).float(), ((y - mean) / std).float().unsqueeze(1))

    val, test, train = (split(x, y) for x, y in parts)
    return DataSplits("synthetic-regression", train=train, val=val, test=test, num_classes=1)


def _synthetic(*, data_dir: str | Path | None = None, seed: int = 0, download: bool = True,
               train_subset: int | None = None) -> RegressionTask:
    del data_dir, seed, download  # generated, fixed data
    if train_subset is not None and train_subset < 2:
        raise ConfigError(f"synthetic-regression needs at least 2 training rows, got train_subset={train_subset}")
    data = synthetic_regression(train_size=train_subset or TRAIN_SIZE)
    return RegressionTask(data, default_model="mlp:10-5-4-1:tanh")


TASKS.add("synthetic-regression", _synthetic,
          summary="Friedman #1 (10 inputs, 5 relevant, noise 1), 1000/1000/1000 rows, MSE; fixed data")
