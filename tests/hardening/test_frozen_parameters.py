"""Frozen means frozen: every gradient-free optimizer leaves ``requires_grad=False`` tensors and ``lr=0`` groups
exactly as they were (as torch.optim does), through the trainer's closure and through a plain closure."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradfree.data.splits import DataSplits, Split
from gradfree.errors import ConfigError
from gradfree.optim import OPTIMIZERS, build_optimizer
from gradfree.optim.registry import ZEROTH_ORDER, load_methods
from gradfree.tasks import ClassificationTask
from gradfree.train import TrainConfig, Trainer

OPTIONS: dict[str, dict[str, Any]] = {
    "hybrid": {"first": "zo-adam", "second": "rso", "switch_after": 60},
    "nevergrad": {"method": "OnePlusOne", "popsize": 4},
    "pycma": {"popsize": 6},
    "zo-adam": {"num_directions": 4}, "zo-sgd": {"num_directions": 4}, "zo-sign": {"num_directions": 4},
    "rso": {"weights_per_step": 8}, "grid": {"weights_per_step": 8, "range_size": 3},
}
GRADIENT_FREE = [n for n in load_methods().names() if load_methods().entry(n).tags.get("kind") == ZEROTH_ORDER]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)


def _build(name: str, params: Any) -> torch.optim.Optimizer:
    requires = OPTIMIZERS.entry(name).tags.get("requires")
    if requires:
        pytest.importorskip(requires)
    return build_optimizer(name, params, **OPTIONS.get(name, {}))


@pytest.mark.parametrize("name", GRADIENT_FREE)
def test_frozen_tensors_and_lr0_groups_never_move(name: str) -> None:
    model = _model()
    model[0].weight.requires_grad_(False)  # frozen, as in fine-tuning
    frozen, idle = model[0].weight.clone(), model[0].bias.clone()
    groups = [{"params": [model[0].weight, model[0].bias], "lr": 0.0}, {"params": list(model[2].parameters())}]
    if name in ("open-es", "pgpe"):  # lr is their own step size; a group's lr scales it
        groups[1]["lr"] = OPTIMIZERS.get(name).Options().lr
    optimizer = _build(name, groups)
    x, y = _data()

    def closure() -> torch.Tensor:
        return F.cross_entropy(model(x), y)

    before = model[2].weight.clone()
    for _ in range(6):
        optimizer.step(closure)
    assert torch.equal(model[0].weight, frozen) and torch.equal(model[0].bias, idle)
    assert not torch.equal(model[2].weight, before), "the trainable group should have moved"


@pytest.mark.parametrize("name", ["zo-adam", "mezo", "sep-cma", "rso"])
def test_the_trainer_leaves_a_frozen_embedding_alone(name: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(20, 4), nn.Flatten(), nn.Linear(12, 3))
    model[0].weight.requires_grad_(False)
    frozen = model[0].weight.clone()
    g = torch.Generator().manual_seed(2)

    def split(n: int) -> Split:
        return Split(torch.randint(0, 20, (n, 3), generator=g), torch.randint(0, 3, (n,), generator=g))

    task = ClassificationTask(DataSplits("tokens", split(64), split(32), split(32), 3), default_model="-")
    Trainer(task, model, _build(name, model.parameters()), TrainConfig(budget=300, batch_size=16,
                                                                       progress=False)).fit()
    assert torch.equal(model[0].weight, frozen)


def test_an_all_frozen_model_is_a_clear_error() -> None:
    model = _model().requires_grad_(False)
    with pytest.raises(ConfigError, match="frozen"):
        build_optimizer("zo-adam", model.parameters())
