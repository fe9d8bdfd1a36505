"""The trainer: budget accounting, early stopping, NaN policy, determinism, files it writes."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch
from torch import Tensor

from gradfree.data.splits import DataSplits, Split
from gradfree.errors import NonFiniteLossError
from gradfree.models import build_model
from gradfree.optim import build_optimizer
from gradfree.run import RunSpec, train_run
from gradfree.tasks import ClassificationTask, build_task
from gradfree.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def digits() -> ClassificationTask:
    return build_task("digits")


def _trainer(task: ClassificationTask, optimizer: str, config: TrainConfig, **options: object) -> Trainer:
    model = build_model("mlp:64-16-10", seed=0, input_shape=task.data.input_shape, num_classes=10)
    return Trainer(task, model, build_optimizer(optimizer, model.parameters(), **options), config)


@pytest.mark.parametrize("optimizer, per_step", [("zo-adam", 11), ("mezo", 2), ("adam", 1)])
def test_budget_counts_every_evaluation(digits: ClassificationTask, optimizer: str, per_step: int) -> None:
    options = {"num_directions": 10} if optimizer == "zo-adam" else {}
    trainer = _trainer(digits, optimizer, TrainConfig(budget=500, eval_every=100), **options)
    result = trainer.fit()
    # The loop stops at the first step that reaches the budget, so it overshoots by less than one step.
    assert 500 <= result.evaluations < 500 + per_step
    assert result.evaluations == result.steps * per_step
    assert result.backward == (result.steps if optimizer == "adam" else 0)
    assert result.stopped == "budget"


def test_time_limit_stops_the_run(digits: ClassificationTask) -> None:
    result = _trainer(digits, "zo-sgd", TrainConfig(time_limit=0.5, eval_every=10**9), lr=1e-3).fit()
    assert result.stopped == "time limit"
    assert 0.45 <= result.wall_time <= 0.5  # stopped before a step that would end past the limit


class SlowSGD(torch.optim.SGD):
    """SGD whose steps take a quarter of a second."""

    def step(self, closure=None):  # type: ignore[no-untyped-def, override]
        time.sleep(0.25)
        return super().step(closure)


def test_time_limit_is_not_overshot_by_the_last_step(digits: ClassificationTask) -> None:
    model = build_model("mlp:64-16-10", seed=0, input_shape=digits.data.input_shape, num_classes=10)
    trainer = Trainer(digits, model, SlowSGD(model.parameters(), lr=0.1), TrainConfig(time_limit=0.9,
                                                                                       eval_every=10**9))
    result = trainer.fit()
    # After 3 steps (~0.76 s) a fourth would end near 1.0 s: the run stops before it, inside its 0.9 s.
    assert result.stopped == "time limit" and result.steps == 3
    assert 0.75 <= result.wall_time <= 0.9


def test_training_improves_and_restores_best(digits: ClassificationTask) -> None:
    result = _trainer(digits, "zo-adam", TrainConfig(budget=6000, eval_every=500), lr=1e-2).fit()
    first = result.history[0]
    assert first["kind"] == "val" and first["evaluations"] == 0
    assert result.final["val_loss"] < 0.5 * first["val_loss"]
    assert result.final["val_loss"] == pytest.approx(result.best_val, rel=1e-6)


def test_early_stopping_with_patience(digits: ClassificationTask) -> None:
    # Adam overfits 1078 digits within about a thousand steps: validation loss turns up, patience ends the run.
    trainer = _trainer(digits, "adam", TrainConfig(budget=100_000, eval_every=200, patience=3), lr=1e-2)
    result = trainer.fit()
    assert result.stopped == "early stopping"
    assert result.evaluations < 20_000
    assert result.final["val_loss"] == pytest.approx(result.best_val, rel=1e-6)


def _nan_task(digits: ClassificationTask) -> ClassificationTask:
    data = digits.data
    bad = data.train.x.clone()
    bad[0, 0] = math.nan
    return ClassificationTask(DataSplits("bad", Split(bad, data.train.y), data.val, data.test, 10), "mlp:64-16-10")


def test_nan_at_start_stops_with_a_clear_message(digits: ClassificationTask) -> None:
    trainer = _trainer(_nan_task(digits), "zo-adam", TrainConfig(budget=100))
    with pytest.raises(NonFiniteLossError, match="starting point"):
        trainer.fit()


class _FragileTask(ClassificationTask):
    """Loss is NaN wherever a logit leaves [-limit, limit]: candidates far from the start are rejected."""

    limit = math.inf

    @staticmethod
    def loss_fn(output: Tensor, target: Tensor) -> Tensor:
        ce = torch.nn.functional.cross_entropy(output, target)
        return torch.where(output.abs().amax() > _FragileTask.limit, torch.full_like(ce, math.nan), ce)


def test_nan_candidates_are_rejected_and_counted(digits: ClassificationTask) -> None:
    task = _FragileTask(digits.data, "mlp:64-16-10")
    # Large smoothing sends some perturbed points across the NaN boundary; tiny steps keep the centre inside.
    trainer = _trainer(task, "zo-adam", TrainConfig(budget=3000, eval_every=500), lr=1e-5, smoothing=0.3)
    with torch.no_grad():
        _FragileTask.limit = 1.5 * float(trainer.model(digits.data.train.x).abs().max())
    try:
        result = trainer.fit()
    finally:
        _FragileTask.limit = math.inf
    assert result.rejected > 0
    assert result.stopped == "budget"
    assert math.isfinite(result.final["train_loss"])


def test_same_seed_same_result_and_global_rng_untouched(tmp_path: Path) -> None:
    spec = RunSpec(task="digits", model="mlp:64-16-10", optimizer="zo-adam", budget=2000, eval_every=500,
                   seed=5, device="cpu")
    before = torch.get_rng_state()
    a = train_run(spec, out_dir=tmp_path / "a", progress=False)
    b = train_run(spec, out_dir=tmp_path / "b", progress=False)
    assert torch.equal(before, torch.get_rng_state())
    assert a.final == b.final
    wa = torch.load(tmp_path / "a" / "model.pt")
    wb = torch.load(tmp_path / "b" / "model.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    other = train_run(RunSpec(**{**spec.__dict__, "seed": 6}), out_dir=tmp_path / "c", progress=False)
    assert other.final != a.final


def test_output_files(tmp_path: Path) -> None:
    spec = RunSpec(task="digits", model="mlp:64-16-10", optimizer="zo-sgd", options={"lr": 1e-3}, budget=1000,
                   eval_every=250, device="cpu")
    train_run(spec, out_dir=tmp_path, progress=False)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint.pt", "config.json", "metrics.jsonl", "model.pt", "result.json"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["val"] * 5 + ["final"]
    assert [r["evaluations"] for r in rows[:-1]] == sorted(r["evaluations"] for r in rows[:-1])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["config"]["optimizer"] == "zo-sgd" and config["provenance"]["torch"] == torch.__version__
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["evaluations"] == rows[-1]["evaluations"]


def test_a_time_limited_run_compiles_the_engine_before_its_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    from gradfree.engines.incremental import selection
    from gradfree.train import trainer as trainer_module

    events: list[str] = []
    monkeypatch.setattr(selection, "warm_up", lambda: events.append("warm-up") or True)
    fit = trainer_module.Trainer.fit
    monkeypatch.setattr(trainer_module.Trainer, "fit", lambda self, **kw: events.append("fit") or fit(self, **kw))
    spec = RunSpec(task="digits", model="mlp:64-16-10", optimizer="rso", batch_size=None, eval_every=10**6,
                   time_limit=0.2, device="cpu")
    train_run(spec, progress=False)
    assert events == ["warm-up", "fit"]
    events.clear()
    train_run(RunSpec(**{**spec.__dict__, "time_limit": None, "budget": 200}), progress=False)
    assert events == ["fit"]  # an evaluation budget does not depend on compile time


def test_warm_up_runs_the_numba_engine_and_leaves_the_global_rng_alone() -> None:
    pytest.importorskip("numba")
    from gradfree.engines.incremental.selection import warm_up

    before = torch.get_rng_state()
    assert warm_up() is True
    assert torch.equal(before, torch.get_rng_state())
