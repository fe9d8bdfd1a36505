"""Tasks looked up by name: each builder returns a :class:`~gradfree.tasks.protocol.Task` (its data splits, loss,
metrics and default model)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gradfree.errors import ConfigError
from gradfree.registry import Registry
from gradfree.tasks.classification import ClassificationTask
from gradfree.tasks.protocol import Task

TaskBuilder = Callable[..., Task]
"""``builder(*, data_dir, seed, download, train_subset) -> task``: any :class:`~gradfree.tasks.protocol.Task`."""

TASKS: Registry[TaskBuilder] = Registry("task")


def _digits(*, data_dir: str | Path | None = None, seed: int = 0, download: bool = True,
            train_subset: int | None = None) -> ClassificationTask:
    from gradfree.data.digits import load_digits

    del data_dir, download  # embedded in scikit-learn
    if train_subset is not None:
        raise ConfigError("digits has a fixed 1078/359/360 split; --train-subset applies to mnist, fashion-mnist, "
                          "cifar10 and synthetic-regression")
    return ClassificationTask(load_digits(seed=0), default_model="mlp:64-32-10")


def _mnist(*, data_dir: str | Path | None = None, seed: int = 0, download: bool = True,
           train_subset: int | None = None) -> ClassificationTask:
    from gradfree.data.mnist import load_mnist

    # Image-shaped (N, 1, 28, 28) for every model: MLP specs start with nn.Flatten (and the batched MLP path
    # flattens exactly where the module does), so one task serves MLPs and CNNs alike.
    data = load_mnist(data_dir=data_dir, download=download, train_subset=train_subset, seed=seed, flatten=False)
    return ClassificationTask(data, default_model="mlp:784-32-10")


def _fashion_mnist(*, data_dir: str | Path | None = None, seed: int = 0, download: bool = True,
                   train_subset: int | None = None) -> ClassificationTask:
    from gradfree.data.fashion_mnist import load_fashion_mnist

    data = load_fashion_mnist(data_dir=data_dir, download=download, train_subset=train_subset, seed=seed)
    return ClassificationTask(data, default_model="lenet")


def _cifar10(*, data_dir: str | Path | None = None, seed: int = 0, download: bool = True,
             train_subset: int | None = None) -> ClassificationTask:
    from gradfree.data.cifar10 import load_cifar10

    data = load_cifar10(data_dir=data_dir, download=download, train_subset=train_subset, seed=seed)
    return ClassificationTask(data, default_model="cifar:1")


TASKS.add("digits", _digits, summary="scikit-learn 8x8 digits, fixed 1078/359/360 split (embedded, offline)")
TASKS.add("mnist", _mnist, summary="MNIST 1x28x28: 50k train (or a seeded subset) / 10k val / official 10k test")
TASKS.add("fashion-mnist", _fashion_mnist,
          summary="Fashion-MNIST 1x28x28: 50k train (or a seeded subset) / 10k val / official 10k test")
TASKS.add("cifar10", _cifar10,
          summary="CIFAR-10 3x32x32: 45k train (or a seeded subset) / 5k val / official 10k test")


def build_task(name: str, **options: Any) -> Task:
    """Build the registered task ``name``."""
    return TASKS.get(name)(**options)
