"""Fault tolerance of the Ray evaluator: actors really die mid-generation (SIGKILL of their process, or
``ray.kill``); their shares are re-run elsewhere and the run ends exactly as the run without the failure.

The loss sleeps a little so that a kill issued right after a generation's tasks are sent lands while they
run. One local Ray (2 CPUs) is started for this module; the tests skip where ray is absent.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from gradfree.distributed import LocalEvaluator, Problem, evolve
from gradfree.models import build_model
from gradfree.strategies import STRATEGIES, Strategy

POPSIZE, GENERATIONS, KILL_AT = 8, 4, 2


def slow_cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy that takes at least 0.3 s per call: a kill sent at dispatch finds the task running."""
    time.sleep(0.3)
    return F.cross_entropy(output, target)


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    # the workers cannot import this test module: ship slow_cross_entropy by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def problem(loss: Callable[[Tensor, Tensor], Tensor]) -> Problem:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 20, generator=gen), torch.randint(0, 5, (200,), generator=gen)
    return Problem.of(build_model("mlp:20-8-5", seed=0), loss, x, y, batch_size=50, batch_seed=0)


def strategy(p: Problem, name: str = "open-es") -> Strategy:
    return STRATEGIES.get(name)(p.num_dims, POPSIZE, init_mean=p.flat.get(), sigma=0.1, seed=7)


@pytest.fixture(scope="module")
def reference() -> dict[str, Tensor]:
    """Means after the run without failures (computed locally: the Ray evaluator equals it, bit for bit)."""
    out = {}
    for name in ("open-es", "ga"):
        s = strategy(problem(F.cross_entropy), name)
        evolve(s, LocalEvaluator(problem(F.cross_entropy)), GENERATIONS)
        out[name] = s.mean
    return out


def killer(how: str, at: int = KILL_AT, count: int = 1) -> Callable[[Any, int], None]:
    """An ``on_dispatch`` hook killing the first ``count`` live actors once, when generation ``at`` is sent."""

    def hook(evaluator: Any, generation: int) -> None:
        if generation != at or hook.done:  # type: ignore[attr-defined]
            return
        hook.done = True  # type: ignore[attr-defined]
        hook.pids = evaluator.pids()[:count]  # type: ignore[attr-defined]
        for pid, actor in zip(hook.pids, evaluator.actors()[:count], strict=True):  # type: ignore[attr-defined]
            if how == "sigkill":
                os.kill(pid, signal.SIGKILL)
            else:
                evaluator._ray.kill(actor, no_restart=True)

    hook.done = False  # type: ignore[attr-defined]
    return hook


def test_sigkilled_actor_is_replaced_and_nothing_is_lost_or_counted_twice(
    ray_session: Any, reference: dict[str, Tensor]
) -> None:
    from gradfree.distributed import RayEvaluator

    hook = killer("sigkill")
    p = problem(slow_cross_entropy)
    s = strategy(p)
    with RayEvaluator(p, num_actors=2, on_dispatch=hook) as evaluator:
        result = evolve(s, evaluator, GENERATIONS)
        pids_after = evaluator.pids()
        stats = evaluator.stats
    assert hook.done and hook.pids[0] not in pids_after and len(pids_after) == 2  # type: ignore[attr-defined]
    assert stats.failures == 1 and stats.replacements == 1
    assert stats.generations[KILL_AT].failures == 1
    assert stats.generations[KILL_AT].tasks == 3  # two shares, one of them sent twice
    # full strategies: one per actor at start-up, one for the replacement (whenever it first gets a share)
    assert stats.resyncs == 3 and stats.desyncs == 0
    assert evaluator.evaluations == result.evaluations == s.evaluations == GENERATIONS * POPSIZE
    assert torch.equal(s.mean, reference["open-es"])


def test_ray_killed_actor_share_runs_on_the_survivor(ray_session: Any, reference: dict[str, Tensor]) -> None:
    from gradfree.distributed import RayEvaluator

    p = problem(slow_cross_entropy)
    for name in ("open-es", "ga"):  # replicas from seeds, and the vector fallback
        s = strategy(p, name)
        with RayEvaluator(p, num_actors=2, replace_failed=False, on_dispatch=killer("ray.kill")) as evaluator:
            evolve(s, evaluator, GENERATIONS)
            assert len(evaluator.pids()) == 1
        assert evaluator.stats.failures == 1 and evaluator.stats.replacements == 0
        assert evaluator.evaluations == s.evaluations == GENERATIONS * POPSIZE
        assert torch.equal(s.mean, reference[name]), name


def test_losing_every_actor_is_a_clear_error(ray_session: Any) -> None:
    from gradfree.distributed import RayEvaluator, RayEvaluatorError

    p = problem(slow_cross_entropy)
    s = strategy(p)
    with RayEvaluator(p, num_actors=2, replace_failed=False, on_dispatch=killer("sigkill", at=0, count=2)) as ev:
        with pytest.raises(RayEvaluatorError, match="every Ray actor died"):
            ev.evaluate(s)
        assert ev.evaluations == 0
