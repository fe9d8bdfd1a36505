"""Evaluators: where a strategy's population is scored — in this process, or on a pool of Ray actors.

Strategies never import ray; only :mod:`gradfree.distributed.ray_evaluator` uses it, and only when a
:class:`RayEvaluator` is built. A strategy runs unchanged on either evaluator, driven by :func:`evolve` or, to
train a model, by the trainer (``StrategyOptimizer.use_evaluator``; ``gradfree train --ray-address``)::

    problem = Problem.of(model, F.cross_entropy, x, y, batch_size=128, batch_seed=0)
    strategy = STRATEGIES.get("open-es")(problem.num_dims, 32, init_mean=problem.flat.get(), seed=0)
    with RayEvaluator(problem, address="auto") as evaluator:     # or LocalEvaluator(problem)
        evolve(strategy, evaluator, generations=100)
"""

from __future__ import annotations

from gradfree.distributed.evaluator import Evaluator, EvaluatorFactory, LocalEvaluator, state_digest
from gradfree.distributed.evolve import EvolveResult, evolve
from gradfree.distributed.ray_evaluator import GenerationTraffic, RayEvaluator, RayEvaluatorError, RayStats, connect
from gradfree.objective.problem import Problem

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
    "connect",
    "evolve",
    "state_digest",
]
