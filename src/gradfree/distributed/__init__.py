"""Evaluators: where a strategy's population is scored — in this process, or on a pool of Ray actors.

Strategies never import ray; only :mod:`gradfree.distributed.ray_evaluator` uses it, and only when a
:class:`RayEvaluator` is built. A strategy runs unchanged on either evaluator::

    problem = Problem(model, F.cross_entropy, x, y, batch_size=128, batch_seed=0)
    strategy = STRATEGIES.get("open-es")(problem.num_dims, 32, init_mean=problem.flat.get(), seed=0)
    with RayEvaluator(problem, address="auto") as evaluator:     # or LocalEvaluator(problem)
        evolve(strategy, evaluator, generations=100)
"""

from __future__ import annotations

from gradfree.distributed.evaluator import Evaluator, EvaluatorFactory, LocalEvaluator, Problem, state_digest
from gradfree.distributed.loop import EvolveResult, StrategyTraining, evolve, train_strategy
from gradfree.distributed.ray_evaluator import GenerationTraffic, RayEvaluator, RayEvaluatorError, RayStats, connect

__all__ = [
    "Evaluator",
    "EvaluatorFactory",
    "EvolveResult",
    "GenerationTraffic",
    "LocalEvaluator",
    "Problem",
    "RayEvaluator",
    "RayEvaluatorError",
    "RayStats",
    "StrategyTraining",
    "connect",
    "evolve",
    "state_digest",
    "train_strategy",
]
