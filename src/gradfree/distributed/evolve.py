"""A bare driver that runs a strategy on any evaluator for a number of generations: :func:`evolve`.

The loop is the same whatever the evaluator: ``losses = evaluator.evaluate(strategy, step=...)``, then
``strategy.tell(losses)``. Generation ``g`` is scored on the batch ``problem.batch(g)`` — a seeded order that
remote workers compute from ``g`` alone — or on the whole training set. Evaluations are counted here, at the
driver, from the losses that come back. Training a model (validation, early stopping, checkpoints, budgets
and time limits) is the trainer's job, whatever the evaluator: see
:class:`~gradfree.strategies.optimizer.StrategyOptimizer`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from gradfree.distributed.evaluator import Evaluator
from gradfree.errors import ConfigError
from gradfree.strategies.base import Strategy

Callback = Callable[[Strategy, Tensor], None]
"""``fn(strategy, losses)`` after each tell."""


@dataclass
class EvolveResult:
    """What :func:`evolve` did.

    Attributes:
        history: one row per generation: ``generation`` (after the tell), ``evaluations`` (cumulative, counted
            at the driver), ``loss_min``, ``loss_mean`` (finite losses of the generation), ``seconds``.
        evaluations: members evaluated by this call.
        seconds: wall time of this call.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    evaluations: int = 0
    seconds: float = 0.0


def evolve(
    strategy: Strategy,
    evaluator: Evaluator,
    generations: int,
    *,
    full_batch: bool = False,
    callback: Callback | None = None,
) -> EvolveResult:
    """Run ``generations`` ask/evaluate/tell rounds of ``strategy`` on ``evaluator``.

    Args:
        strategy: any registered strategy, built for ``evaluator.problem`` (``num_dims``, dtype).
        evaluator: a :class:`~gradfree.distributed.evaluator.LocalEvaluator`, a
            :class:`~gradfree.distributed.ray_evaluator.RayEvaluator` or any other :class:`Evaluator`.
        generations: rounds to run (``>= 0``).
        full_batch: score every generation on the whole training set; otherwise generation ``g`` (the
            strategy's ``generation`` before its tell) uses batch ``problem.batch(g)``, so a resumed
            strategy continues the same batch sequence.
        callback: called as ``callback(strategy, losses)`` after each tell.

    Returns:
        an :class:`EvolveResult`; the strategy itself holds the result (``strategy.mean``).
    """
    if generations < 0:
        raise ConfigError(f"generations must be >= 0, got {generations}")
    result = EvolveResult()
    start = time.perf_counter()
    for _ in range(generations):
        step = None if full_batch else strategy.generation
        losses = evaluator.evaluate(strategy, step=step)
        strategy.tell(losses)
        result.evaluations += int(losses.shape[0])
        finite = losses[torch.isfinite(losses)]
        result.history.append({
            "generation": strategy.generation,
            "evaluations": result.evaluations,
            "loss_min": float(finite.min()) if finite.numel() else math.inf,
            "loss_mean": float(finite.mean()) if finite.numel() else math.inf,
            "seconds": time.perf_counter() - start,
        })
        if callback is not None:
            callback(strategy, losses)
    result.seconds = time.perf_counter() - start
    return result
