"""Model specs: documented parameter counts, shapes, spec errors; tasks give image-shaped inputs that CNNs
and MLPs (with the batched MLP fast path) both accept."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gradfree.data.splits import DataSplits
from gradfree.errors import ConfigError
from gradfree.models import MODELS, build_model
from gradfree.objective.population import PopulationLoss
from gradfree.optim import build_optimizer
from gradfree.params import FlatParams
from gradfree.run import RunSpec, train_run
from gradfree.tasks import TASKS, build_task
from gradfree.train import TrainConfig, Trainer

MNIST, CIFAR = (1, 28, 28), (3, 32, 32)

# spec -> parameters on 1x28x28 and on 3x32x32 inputs, 10 classes (the table in gradfree/models/cnn.py).
COUNTS = {
    "conv1:16": (27_210, 36_458),
    "conv1": (27_210, 36_458),
    "lenet": (61_706, 62_006),
    "lenet:6-16-120-84": (61_706, 62_006),
    "lenet:small": (30_502, 30_702),
    "cifar:1": (96_362, 106_538),
    "cifar": (96_362, 106_538),
    "cifar:0.25": (12_002, 14_546),
    "cifar:1:bn": (96_554, 106_730),
}


@pytest.mark.parametrize("spec", list(COUNTS))
def test_documented_parameter_counts_and_shapes(spec: str) -> None:
    for shape, count in zip((MNIST, CIFAR), COUNTS[spec], strict=True):
        model = build_model(spec, seed=0, input_shape=shape, num_classes=10)
        assert sum(p.numel() for p in model.parameters()) == count, (spec, shape)
        with torch.no_grad():
            assert model.eval()(torch.zeros(5, *shape)).shape == (5, 10)


def test_the_layers_are_as_documented() -> None:
    lenet = build_model("lenet", seed=0, input_shape=MNIST, num_classes=10)
    convs = [m for m in lenet.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in lenet.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [(6, (5, 5), (2, 2)), (16, (5, 5), (0, 0))]
    assert [(m.in_features, m.out_features) for m in linears] == [(400, 120), (120, 84), (84, 10)]
    on_cifar = build_model("lenet", seed=0, input_shape=CIFAR, num_classes=10)
    assert next(m for m in on_cifar.modules() if isinstance(m, torch.nn.Conv2d)).padding == (0, 0)  # as in 1998
    conv1 = build_model("conv1:16", seed=0, input_shape=MNIST, num_classes=10)
    assert [type(m).__name__ for m in conv1] == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert conv1[0].kernel_size == (3, 3) and conv1[0].out_channels == 16 and conv1[4].in_features == 16 * 13 * 13
    cifar = build_model("cifar:0.5", seed=0, input_shape=CIFAR, num_classes=10)
    assert [m.out_channels for m in cifar.modules() if isinstance(m, torch.nn.Conv2d)] == [16, 16, 32, 32]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in cifar.modules())
    bn = build_model("cifar:0.5:bn", seed=0, input_shape=CIFAR, num_classes=10)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules()) == 4
    assert all(m.bias is None for m in bn.modules() if isinstance(m, torch.nn.Conv2d))


def test_task_shape_and_classes_reach_the_builders() -> None:
    model = build_model("lenet:small", seed=0, input_shape=(3, 28, 28), num_classes=7)
    assert model[0].in_channels == 3 and model[-1].out_features == 7
    assert build_model("cifar:0.25", seed=0, input_shape=(1, 28, 28), num_classes=3)[-1].in_features == 16 * 7 * 7
    # Without a task the builders assume their usual data.
    assert build_model("lenet", seed=0)[0].in_channels == 1 and build_model("cifar", seed=0)[0].in_channels == 3


@pytest.mark.parametrize("spec, message", [
    ("conv1:0", "conv1 channels must be a positive integer"),
    ("conv1:x", "conv1 channels must be a positive integer"),
    ("conv1:4:5", "conv1 spec is conv1"),
    ("lenet:big", "bad lenet widths"),
    ("lenet:6-16-120", "bad lenet widths"),
    ("lenet:6-0-120-84", "lenet width must be a positive integer"),
    ("cifar:wide", "bad cifar width"),
    ("cifar:-1", "width multiplier must be positive"),
    ("cifar:1:batchnorm", "cifar spec is cifar"),
    ("resnet", "unknown model 'resnet'"),
])
def test_bad_specs_are_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model(spec, seed=0, input_shape=MNIST, num_classes=10)


def test_flat_inputs_and_tiny_images_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"square images .*\(784,\).*mlp spec"):
        build_model("lenet", seed=0, input_shape=(784,), num_classes=10)
    with pytest.raises(ConfigError, match="too small"):
        build_model("cifar", seed=0, input_shape=(3, 2, 2), num_classes=10)


def test_registry_lists_the_cnns() -> None:
    assert {"mlp", "conv1", "lenet", "cifar"} <= set(MODELS.names())
    assert {"mnist", "fashion-mnist", "cifar10"} <= set(TASKS.names())


def test_mlp_on_image_shaped_inputs_keeps_the_fast_path() -> None:
    model = build_model("mlp:784-32-10", seed=0, input_shape=MNIST, num_classes=10)
    flat = FlatParams(model)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, *MNIST, generator=g), torch.randint(0, 10, (16,), generator=g)
    vectors = flat.get() + 0.01 * torch.randn(4, flat.num_dims, generator=g)
    fast = PopulationLoss(flat, F.cross_entropy)
    assert fast.mode == "mlp"
    torch.testing.assert_close(fast(vectors, x, y), PopulationLoss(flat, F.cross_entropy, mode="loop")(vectors, x, y))


# ------------------------------------------------------------------ the real datasets


def _need(folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")


@pytest.mark.shared_data
def test_mnist_task_is_image_shaped_and_trains_an_mlp_and_a_cnn(shared_data_dir: Path) -> None:
    _need(shared_data_dir / "mnist")
    # The whole path the CLI takes, with the default MLP on image-shaped inputs.
    spec = RunSpec(task="mnist", optimizer="zo-adam", options={"lr": 1e-2, "num_directions": 10}, budget=1100,
                   batch_size=64, eval_every=1100, train_subset=500, device="cpu")
    result = train_run(spec, data_dir=shared_data_dir, download=False, progress=False)
    assert result.history[0]["evaluations"] == 0
    assert result.final["val_loss"] < result.history[0]["val_loss"] - 0.5
    # A CNN on the same task (smaller validation and test splits keep this quick).
    task = build_task("mnist", data_dir=shared_data_dir, train_subset=500, download=False)
    assert task.data.input_shape == MNIST and task.default_model == "mlp:784-32-10"
    few = torch.arange(1000)
    task.data = DataSplits(task.data.name, task.data.train, task.data.val.subset(few), task.data.test.subset(few),
                           task.data.num_classes)
    model = build_model("lenet:small", seed=0, input_shape=task.data.input_shape, num_classes=10)
    trainer = Trainer(task, model, build_optimizer("adam", model.parameters(), lr=2e-3),
                      TrainConfig(budget=150, batch_size=64, eval_every=150, progress=False))
    result = trainer.fit()
    assert result.final["val_loss"] < result.history[0]["val_loss"] - 0.5


@pytest.mark.shared_data
def test_cifar10_task(shared_data_dir: Path) -> None:
    _need(shared_data_dir / "cifar-10")
    task = build_task("cifar10", data_dir=shared_data_dir, train_subset=200, download=False)
    assert task.data.input_shape == CIFAR and task.default_model == "cifar:1"
    assert (len(task.data.train), len(task.data.val), len(task.data.test)) == (200, 5000, 10000)
    model = build_model(task.default_model, seed=0, input_shape=task.data.input_shape, num_classes=10)
    metrics = task.evaluate(model, task.data.val.subset(torch.arange(100)))
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["loss"] > 0


@pytest.mark.shared_data
def test_fashion_mnist_task_from_debian(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _need(Path("/usr/share/datasets/fashion-mnist"))
    monkeypatch.setenv("GRADFREE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GRADFREE_DATA", raising=False)
    task = build_task("fashion-mnist", train_subset=100, download=False)
    assert task.data.input_shape == MNIST and task.default_model == "lenet" and task.name == "fashion-mnist"
    assert len(task.data.train) == 100
