"""The CNNs with every kind of method: batched population evaluation against the loop, zeroth-order,
search, population-strategy and backprop steps through the trainer, seeded initialisation."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.data.splits import DataSplits, Split
from gradfree.models import build_model
from gradfree.objective.population import PopulationLoss
from gradfree.optim import build_optimizer
from gradfree.params import FlatParams
from gradfree.tasks import ClassificationTask
from gradfree.train import TrainConfig, Trainer

# spec -> input shape: small widths keep the tests fast; the layers are those of the full-size specs.
SPECS = {
    "conv1:4": (1, 28, 28),
    "lenet:small": (1, 28, 28),
    "lenet": (3, 32, 32),
    "cifar:0.25": (3, 32, 32),
    "cifar:0.25:bn": (3, 32, 32),
}


def _batch(shape: tuple[int, ...], n: int, *, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)


def _loop_reference(model: nn.Module, vectors: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Write each vector into a copy of the model and run it: the plainest possible population loss."""
    model = copy.deepcopy(model)
    flat = FlatParams(model)
    out = []
    with torch.no_grad():
        for v in vectors:
            flat.set_(v)
            out.append(F.cross_entropy(model(x), y))
    return torch.stack(out)


@pytest.mark.parametrize("spec", [s for s in SPECS if not s.endswith(":bn")])
def test_vmap_population_equals_the_loop(spec: str) -> None:
    shape = SPECS[spec]
    model = build_model(spec, seed=0, input_shape=shape, num_classes=10)
    flat = FlatParams(model)
    x, y = _batch(shape, 6, seed=1)
    g = torch.Generator().manual_seed(2)
    vectors = flat.get() + 0.05 * torch.randn(3, flat.num_dims, generator=g)
    population = PopulationLoss(flat, F.cross_entropy)
    assert population.mode == "vmap"
    batched = population(vectors, x, y)
    looped = PopulationLoss(flat, F.cross_entropy, mode="loop")(vectors, x, y)
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched, _loop_reference(model, vectors, x, y), rtol=1e-5, atol=1e-6)
    assert torch.equal(flat.get(), FlatParams(build_model(spec, seed=0, input_shape=shape, num_classes=10)).get())


def test_batch_norm_uses_the_loop_in_training_and_vmap_in_eval() -> None:
    shape = SPECS["cifar:0.25:bn"]
    model = build_model("cifar:0.25:bn", seed=0, input_shape=shape, num_classes=10)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    flat = FlatParams(model)
    x, y = _batch(shape, 6, seed=1)
    vectors = flat.get() + 0.05 * torch.randn(3, flat.num_dims, generator=torch.Generator().manual_seed(2))
    training = PopulationLoss(flat, F.cross_entropy)
    assert training.mode == "loop"
    torch.testing.assert_close(training(vectors, x, y), _loop_reference(model, vectors, x, y))
    model.eval()
    evaluating = PopulationLoss(flat, F.cross_entropy)
    assert evaluating.mode == "vmap"
    torch.testing.assert_close(evaluating(vectors, x, y), _loop_reference(model, vectors, x, y),
                               rtol=1e-5, atol=1e-6)


def test_build_model_seeds_weights_and_leaves_the_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a = FlatParams(build_model("lenet", seed=3, input_shape=(1, 28, 28), num_classes=10)).get()
    b = FlatParams(build_model("lenet", seed=3, input_shape=(1, 28, 28), num_classes=10)).get()
    c = FlatParams(build_model("lenet", seed=4, input_shape=(1, 28, 28), num_classes=10)).get()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_build_model_dry_run_keeps_batch_norm_statistics() -> None:
    model = build_model("cifar:0.25:bn", seed=0, input_shape=(3, 32, 32), num_classes=10)
    assert model.training
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    mean, var, count = bn.running_mean, bn.running_var, bn.num_batches_tracked
    assert mean is not None and var is not None and count is not None
    assert int(count) == 0
    assert torch.equal(mean, torch.zeros_like(mean)) and torch.equal(var, torch.ones_like(var))


def _task(shape: tuple[int, ...]) -> ClassificationTask:
    """A learnable synthetic image task: the label is which of ten pixel blocks is bright."""
    def split(n: int, seed: int) -> Split:
        g = torch.Generator().manual_seed(seed)
        y = torch.randint(0, 10, (n,), generator=g)
        x = 0.1 * torch.randn(n, *shape, generator=g)
        for i, label in enumerate(y.tolist()):
            x[i, :, 2 * label : 2 * label + 4, 4:12] += 2.0
        return Split(x, y)

    return ClassificationTask(DataSplits("blocks", split(96, 0), split(32, 1), split(32, 2), 10),
                              default_model="lenet")


@pytest.mark.parametrize("spec", list(SPECS))
@pytest.mark.parametrize("optimizer, options", [
    ("zo-adam", {"lr": 1e-2, "num_directions": 4}),
    ("mezo", {"lr": 1e-3}),
    ("snes", {"popsize": 6}),
    ("rso", {"weights_per_step": 8}),
    ("adam", {"lr": 1e-3}),
], ids=lambda v: v if isinstance(v, str) else "")
def test_every_kind_of_method_trains_the_cnn(spec: str, optimizer: str, options: dict) -> None:
    shape = SPECS[spec]
    task = _task(shape)
    model = build_model(spec, seed=0, input_shape=shape, num_classes=10)
    before = FlatParams(model).get()
    trainer = Trainer(task, model, build_optimizer(optimizer, model.parameters(), **options),
                      TrainConfig(budget=40, batch_size=16, eval_every=10**6, restore_best=False, progress=False))
    result = trainer.fit()
    assert result.steps >= 1 and result.evaluations >= 40
    assert result.backward == (result.steps if optimizer == "adam" else 0)
    assert torch.isfinite(torch.tensor(result.final["train_loss"]))
    assert not torch.equal(FlatParams(model).get(), before), f"{optimizer} left {spec} unchanged"
