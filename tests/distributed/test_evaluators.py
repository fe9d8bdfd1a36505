"""Evaluators: the local one against a plain population loss, the Ray one against the local one.

The Ray tests share one local Ray (2 CPUs) started by a module-scoped fixture and skip where ray is absent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from gradfree.data.digits import load_digits
from gradfree.data.splits import DataSplits, Split
from gradfree.distributed import LocalEvaluator, Problem, evolve, state_digest
from gradfree.errors import ConfigError
from gradfree.models import build_model
from gradfree.optim import build_optimizer
from gradfree.strategies import STRATEGIES, Strategy
from gradfree.strategies.optimizer import StrategyOptimizer
from gradfree.tasks import ClassificationTask
from gradfree.train import TrainConfig, Trainer

POPSIZE, GENERATIONS = 8, 5


@pytest.fixture(scope="module")
def digits_task() -> ClassificationTask:
    return ClassificationTask(load_digits(), default_model="mlp:64-16-10")


def make_problem(task: ClassificationTask, spec: str = "mlp:64-16-10", *, batch_size: int | None = 64) -> Problem:
    model = build_model(spec, seed=0)
    return Problem.of(model, F.cross_entropy, task.data.train.x, task.data.train.y, batch_size=batch_size,
                      batch_seed=1)


def make_strategy(name: str, problem: Problem, **hyper: Any) -> Strategy:
    return STRATEGIES.get(name)(problem.num_dims, POPSIZE, init_mean=problem.flat.get(), sigma=0.05, seed=3,
                                **hyper)


# ---- without ray ------------------------------------------------------------------------------------------
def test_rows_are_a_pure_seeded_function_of_the_step(digits_task: ClassificationTask) -> None:
    problem = make_problem(digits_task, batch_size=100)
    n, per_epoch = problem.num_rows, problem.num_rows // 100
    epoch0 = torch.cat([problem.rows(s) for s in range(per_epoch)])  # type: ignore[misc]
    assert epoch0.unique().numel() == per_epoch * 100  # no row twice within an epoch
    assert torch.equal(problem.rows(3), problem.rows(3))  # type: ignore[arg-type]
    assert not torch.equal(problem.rows(per_epoch), problem.rows(0))  # type: ignore[arg-type]  # a new epoch
    split = problem.batches.split
    other = Problem.of(problem.model, F.cross_entropy, split.x, split.y, batch_size=100, batch_seed=2)
    assert not torch.equal(other.rows(0), problem.rows(0))  # type: ignore[arg-type]
    assert problem.rows(None) is None
    assert make_problem(digits_task, batch_size=None).rows(5) is None
    assert make_problem(digits_task, batch_size=n + 1).rows(5) is None


def test_local_evaluator_scores_the_asked_population(digits_task: ClassificationTask) -> None:
    problem = make_problem(digits_task)
    strategy = make_strategy("open-es", problem)
    evaluator = LocalEvaluator(problem)
    losses = evaluator.evaluate(strategy, step=2)
    x, y = problem.batch(2)
    model = build_model("mlp:64-16-10", seed=0)
    flat = problem.flat.__class__(model)
    expected = []
    for v in strategy.ask():
        flat.set_(v)
        expected.append(float(F.cross_entropy(model(x), y).detach()))
    assert losses.dtype == torch.float64 and losses.shape == (POPSIZE,)
    torch.testing.assert_close(losses, torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6)
    assert evaluator.evaluations == POPSIZE
    strategy.tell(losses)
    assert strategy.generation == 1


def test_wrong_strategy_size_is_a_config_error(digits_task: ClassificationTask) -> None:
    problem = make_problem(digits_task)
    strategy = STRATEGIES.get("open-es")(problem.num_dims + 1, POPSIZE)
    with pytest.raises(ConfigError, match="num_dims"):
        LocalEvaluator(problem).evaluate(strategy)


def test_state_digest_sees_one_bit() -> None:
    strategy = STRATEGIES.get("open-es")(10, 4, seed=0)
    state = strategy.state_dict()
    assert state_digest(state) == state_digest(strategy.state_dict())
    state["mean"][3] = torch.nextafter(state["mean"][3], torch.tensor(1.0))
    assert state_digest(state) != state_digest(strategy.state_dict())


def _trainer(task: ClassificationTask, *, budget: int | None = None, time_limit: float | None = None,
             eval_every: int = 500, patience: int | None = None, batch_size: int | None = 128,
             **options: Any) -> tuple[Trainer, StrategyOptimizer]:
    model = build_model("mlp:64-16-10", seed=0)
    optimizer = build_optimizer("open-es", model.parameters(), seed=0, **options)
    assert isinstance(optimizer, StrategyOptimizer)
    config = TrainConfig(budget=budget, time_limit=time_limit, batch_size=batch_size, eval_every=eval_every,
                         patience=patience, progress=False)
    return Trainer(task, model, optimizer, config), optimizer


def test_the_trainer_scores_generations_on_an_evaluator_of_its_own_problem(digits_task: ClassificationTask) -> None:
    """An evaluator built from the trainer's problem scores each generation on the trainer's batch: the run equals
    the in-process one, counted the same."""
    runs = []
    for use_evaluator in (False, True):
        trainer, optimizer = _trainer(digits_task, budget=1500, popsize=16, sigma=0.05, lr=0.03)
        evaluator = LocalEvaluator(trainer.problem())
        if use_evaluator:
            optimizer.use_evaluator(evaluator)
        runs.append((trainer.fit(), optimizer, evaluator))
    (local, local_opt, _), (remote, remote_opt, evaluator) = runs
    assert 1500 <= remote.evaluations < 1500 + 16 and remote.evaluations == remote_opt.strategy.evaluations
    assert evaluator.evaluations == remote.evaluations
    assert [r["evaluations"] for r in remote.history if r["kind"] == "val"] == [0, 512, 1008, 1504]
    assert torch.equal(remote_opt.strategy.mean, local_opt.strategy.mean)
    assert remote.final == local.final and remote.final["val_loss"] < 0.7 * local.history[0]["val_loss"]


class SlowEvaluator(LocalEvaluator):
    """A local evaluator whose generations take a tenth of a second."""

    def evaluate(self, strategy: Any, *, step: int | None = None) -> torch.Tensor:
        time.sleep(0.1)
        return super().evaluate(strategy, step=step)


def test_a_run_on_an_evaluator_stops_inside_its_time_limit(digits_task: ClassificationTask) -> None:
    trainer, optimizer = _trainer(digits_task, time_limit=0.45, eval_every=10**9, popsize=8)
    optimizer.use_evaluator(SlowEvaluator(trainer.problem()))
    out = trainer.fit()
    assert out.stopped == "time limit"
    assert 0.2 <= out.wall_time <= 0.45  # it stops before a generation that would end past the limit
    assert out.evaluations % 8 == 0 and out.evaluations >= 16


def test_early_stopping_on_an_evaluator_ends_on_the_best_mean(digits_task: ClassificationTask) -> None:
    trainer, optimizer = _trainer(digits_task, budget=20_000, eval_every=8, patience=2, popsize=8, lr=3.0)
    optimizer.use_evaluator(LocalEvaluator(trainer.problem()))
    out = trainer.fit()  # steps too large: validation soon stops improving
    assert out.stopped == "early stopping" and out.evaluations < 20_000
    val = [h["val_loss"] for h in out.history if h["kind"] == "val"]
    assert val[-1] > min(val) and out.final["val_loss"] == pytest.approx(min(val))


def test_an_evaluator_needs_the_trainers_closure_and_unscaled_groups(digits_task: ClassificationTask) -> None:
    trainer, optimizer = _trainer(digits_task, budget=100, popsize=8)
    optimizer.use_evaluator(LocalEvaluator(trainer.problem()))
    with pytest.raises(ConfigError, match="trainer's closure"):
        optimizer.step(lambda: torch.tensor(0.0))
    model = build_model("mlp:64-16-10", seed=0)
    scaled = build_optimizer("sep-cma", [{"params": [model[1].weight], "lr": 0.5}, {"params": [model[1].bias]}])
    assert isinstance(scaled, StrategyOptimizer)
    with pytest.raises(ConfigError, match="no per-group scaling"):
        scaled.use_evaluator(LocalEvaluator(trainer.problem()))


def test_empty_ray_address_is_a_config_error() -> None:
    pytest.importorskip("ray")
    from gradfree.distributed import connect

    with pytest.raises(ConfigError, match="address is empty"):
        connect(" ")


# ---- with ray ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def pool(ray_session: Any, digits_task: ClassificationTask) -> Iterator[Any]:
    """One pool of 2 actors (half a CPU each, so a second pool fits) for the digits problem, shared by the tests."""
    from gradfree.distributed import RayEvaluator

    with RayEvaluator(make_problem(digits_task), num_actors=2, num_cpus_per_actor=0.5) as evaluator:
        yield evaluator


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_ray_equals_local_and_replicas_are_bit_identical(pool: Any, name: str) -> None:
    problem = pool.problem
    local = make_strategy(name, problem)
    evolve(local, LocalEvaluator(problem), GENERATIONS)
    remote = make_strategy(name, problem)
    before, seen = pool.evaluations, len(pool.stats.generations)
    result = evolve(remote, pool, GENERATIONS)
    replicas = pool.replica_states(remote)
    traffic = pool.stats.generations[seen:]
    torch.testing.assert_close(remote.mean, local.mean, rtol=0, atol=1e-6)
    assert remote.best_loss == pytest.approx(local.best_loss, rel=1e-6)
    assert pool.evaluations - before == result.evaluations == remote.evaluations == GENERATIONS * POPSIZE
    assert sum(t.failures + t.desyncs for t in traffic) == 0
    if traffic[0].path == "vectors":  # ga: the population itself is shipped, no replicas
        assert replicas == [] and {t.path for t in traffic} == {"vectors"}
        return
    # one full strategy per actor at the first generation, none afterwards
    assert [t.resyncs for t in traffic] == [2] + [0] * (GENERATIONS - 1)
    assert len(replicas) == 2
    mine = remote.state_dict()
    for replica in replicas:  # every tensor, the generator, counters and best-so-far, to the bit
        assert replica["generation"] == GENERATIONS
        assert torch.equal(replica["mean"], mine["mean"]) and torch.equal(replica["generator"], mine["generator"])
        assert state_digest(replica) == state_digest(mine)


def test_bytes_per_generation_do_not_grow_with_parameters(
    pool: Any, digits_task: ClassificationTask
) -> None:
    from gradfree.distributed import RayEvaluator

    sent, setup, vectors = {}, {}, {}
    large_problem = make_problem(digits_task, "mlp:64-2048-10")  # 153,610 parameters against 1,210
    with RayEvaluator(large_problem, num_actors=2, num_cpus_per_actor=0.5) as large_pool:
        for evaluator in (pool, large_pool):
            d = evaluator.problem.num_dims
            setup[d] = evaluator.stats.setup_bytes
            for name in ("open-es", "ga"):
                seen = len(evaluator.stats.generations)
                evolve(make_strategy(name, evaluator.problem), evaluator, 3)
                steady = evaluator.stats.generations[seen + 1 :]
                if name == "open-es":
                    assert all(t.sync_bytes == 0 and t.resyncs == 0 and t.path == "seeds" for t in steady)
                    sent[d] = max(t.sent_bytes for t in steady)
                else:
                    vectors[d] = steady[0].sent_bytes
    small, large = sorted(sent)
    assert large > 100 * small
    assert sent[large] <= sent[small] + 16 and sent[large] < 1000  # two messages of a few hundred bytes
    assert setup[large] > 100 * sent[large]  # the model travels once, at start-up
    assert vectors[large] >= 4 * large * POPSIZE  # the fallback ships P float32 vectors


def test_desynced_replica_is_detected_and_rebuilt(pool: Any) -> None:
    """The driver tells other losses than the evaluator returned: replicas notice and are re-sent the strategy."""
    problem = pool.problem
    local, remote = make_strategy("snes", problem), make_strategy("snes", problem)
    local_ev = LocalEvaluator(problem)
    seen = len(pool.stats.generations)
    for g in range(4):
        for strategy, ev in ((local, local_ev), (remote, pool)):
            losses = ev.evaluate(strategy, step=g)
            strategy.tell(-losses if g == 1 else losses)
    traffic = pool.stats.generations[seen:]
    # start-up sync, then at generation 2 both replicas applied the returned losses, not the told ones
    assert [t.desyncs for t in traffic] == [0, 0, 2, 0]
    # each is rebuilt once: in generation 2 if it gets another share of it, else with its first share of
    # generation 3 (which actor scores the re-queued shares depends on timing)
    assert [t.resyncs for t in traffic[:2]] == [2, 0]
    assert traffic[2].resyncs >= 1 and traffic[2].resyncs + traffic[3].resyncs == 2
    assert torch.equal(remote.mean, local.mean)


def test_a_run_on_ray_equals_the_run_in_process(ray_session: Any, digits_task: ClassificationTask) -> None:
    from gradfree.distributed import RayEvaluator

    runs = []
    for on_ray in (False, True):
        trainer, optimizer = _trainer(digits_task, budget=240, eval_every=80, batch_size=64, popsize=8)
        if not on_ray:
            runs.append((trainer.fit(), optimizer))
            continue
        with RayEvaluator(trainer.problem(), num_actors=2, num_cpus_per_actor=0.5) as evaluator:
            optimizer.use_evaluator(evaluator)
            runs.append((trainer.fit(), optimizer))
        assert evaluator.evaluations == 240
        with pytest.raises(ConfigError, match="closed"):
            evaluator.evaluate(optimizer.strategy)
    (local, local_opt), (remote, remote_opt) = runs
    assert remote.evaluations == local.evaluations == 240
    assert torch.equal(remote_opt.strategy.mean, local_opt.strategy.mean)
    assert [r.get("val_loss") for r in remote.history] == [r.get("val_loss") for r in local.history]


def _image_task() -> ClassificationTask:
    """A small image-shaped task (1x8x8 digits-like noise per class), so that shifts apply."""
    g = torch.Generator().manual_seed(5)
    patterns = torch.randn(4, 1, 8, 8, generator=g)

    def split(n: int) -> Split:
        y = torch.arange(n) % 4
        return Split(patterns[y] + 0.5 * torch.randn(n, 1, 8, 8, generator=g), y)

    return ClassificationTask(DataSplits("images", split(96), split(32), split(32), 4), default_model="-")


def test_augmented_training_on_ray_equals_the_run_in_process(ray_session: Any) -> None:
    """The actors rebuild each step's augmented batch from the step number: a shifted-images run on Ray gives
    the in-process run's numbers."""
    from gradfree.distributed import RayEvaluator

    task = _image_task()
    runs = []
    for on_ray in (False, True):
        model = build_model("mlp:64-8-4", seed=0)
        optimizer = build_optimizer("snes", model.parameters(), popsize=6, seed=0)
        assert isinstance(optimizer, StrategyOptimizer)
        trainer = Trainer(task, model, optimizer, TrainConfig(budget=120, batch_size=32, eval_every=60, seed=3,
                                                              augment="shift:1", progress=False))
        if on_ray:
            with RayEvaluator(trainer.problem(), num_actors=2, num_cpus_per_actor=0.5) as evaluator:
                optimizer.use_evaluator(evaluator)
                runs.append((trainer.fit(), optimizer))
        else:
            runs.append((trainer.fit(), optimizer))
    (local, local_opt), (remote, remote_opt) = runs
    assert remote.evaluations == local.evaluations == 120
    assert torch.equal(remote_opt.strategy.mean, local_opt.strategy.mean)
    assert remote.final == local.final


def test_perf_ray_command_prints_both_tables(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from gradfree.perf import ray as perf_ray

    argv = ["--actors", "1", "--cpus-per-actor", "0.5", "--popsize", "4", "--batch", "8", "--generations", "2",
            "--repeats", "1", "--bytes-models", "784-4-10", "--bytes-actors", "1", "--bytes-generations", "2"]
    assert perf_ray.main(argv) == 0
    out = capsys.readouterr().out
    assert "ray 2." in out and "Ray cluster CPUs" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip().startswith(("local", "ray-1"))}
    assert set(rows) == {"local", "ray-1"} and rows["ray-1"].rstrip().endswith("0.0e+00")  # same mean as local
    assert "seeds" in out and "vectors" in out
    assert perf_ray.main(["--popsize", "1"]) == 2
