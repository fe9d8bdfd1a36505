"""The search methods through ``gradfree.train.Trainer`` on digits: they learn, and every evaluation they
spend is the trainer's (the optimizer's own count equals the run's)."""

from __future__ import annotations

from typing import Any

import pytest

from gradfree.models import build_model
from gradfree.optim import build_optimizer
from gradfree.run import RunSpec, train_run
from gradfree.search import Hybrid
from gradfree.tasks import ClassificationTask, build_task
from gradfree.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def digits() -> ClassificationTask:
    return build_task("digits")


def _fit(task: ClassificationTask, name: str, budget: int, **options: Any) -> tuple[Any, Any]:
    model = build_model("mlp:64-16-10", seed=0, input_shape=task.data.input_shape, num_classes=10)
    optimizer = build_optimizer(name, model.parameters(), **options)
    result = Trainer(task, model, optimizer, TrainConfig(budget=budget, eval_every=budget // 4)).fit()
    return result, optimizer


@pytest.mark.parametrize("name, options, per_step", [
    ("rso", {"weights_per_step": 55, "rounds": 3}, 1 + 2 * 55),  # 55 divides the 1,210 weights
    ("grid", {"weights_per_step": 16, "range_size": 8, "relative": True, "weight_range": (-0.2, 0.2)}, 1 + 8 * 16),
    ("one-plus-one", {"lr": 0.02, "block_size": 64}, 2),
])
def test_search_methods_learn_through_the_trainer(digits: ClassificationTask, name: str,
                                                  options: dict[str, Any], per_step: int) -> None:
    result, optimizer = _fit(digits, name, 3000, **options)
    assert result.evaluations == optimizer.evaluations == result.steps * per_step
    assert 3000 <= result.evaluations < 3000 + per_step and result.backward == 0
    first = result.history[0]
    assert result.best_val < 0.9 * first["val_loss"]


def test_hybrid_switches_inside_the_trainer(digits: ClassificationTask) -> None:
    # rso steps cost 1 + 2 * 64 = 129 evaluations: the 8th step reaches 1032 >= 1000, then adam (1 per step).
    result, optimizer = _fit(digits, "hybrid", 1500, first="rso", first_options={"weights_per_step": 64},
                             second="adam", second_options={"lr": 3e-3}, switch_after=1000)
    assert isinstance(optimizer, Hybrid)
    assert optimizer.switched_at == 1032 and optimizer.phase == 1
    assert result.evaluations == optimizer.evaluations == 1500
    assert result.backward == 1500 - 1032 and result.steps == 8 + 468
    # and the reverse order: backprop first, then the search
    result, optimizer = _fit(digits, "hybrid", 1000, first="adam", first_options={"lr": 3e-3},
                             second="rso", second_options={"weights_per_step": 32}, switch_after=300)
    assert optimizer.switched_at == 300 and result.backward == 300
    assert result.evaluations == optimizer.evaluations == 300 + 11 * (1 + 2 * 32)


def test_train_run_by_name(digits: ClassificationTask) -> None:
    spec = RunSpec(task="digits", model="mlp:64-16-10", optimizer="rso", options={"weights_per_step": 32},
                   budget=700, eval_every=350, seed=3, device="cpu")
    first, second = train_run(spec, progress=False), train_run(spec, progress=False)
    assert first.final == second.final and first.evaluations == 11 * 65
