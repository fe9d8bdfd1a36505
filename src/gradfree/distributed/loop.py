"""Drivers that run a strategy on any evaluator: :func:`evolve` (generations) and :func:`train_strategy`
(a module on a task, under an evaluation budget, with validation).

The loop is the same whatever the evaluator: ``losses = evaluator.evaluate(strategy, step=...)``, then
``strategy.tell(losses)``. Generation ``g`` is scored on mini-batch ``problem.rows(g)`` — a seeded order that
remote workers compute from ``g`` alone — or on the whole training set. Evaluations are counted here, at the
driver, from the losses that come back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gradfree.distributed.evaluator import Evaluator, EvaluatorFactory, LocalEvaluator, Problem
from gradfree.errors import ConfigError
from gradfree.params.flat import FlatParams
from gradfree.strategies import STRATEGIES, Strategy
from gradfree.tasks.classification import ClassificationTask
from gradfree.train.time_limit import RecentSteps

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
            strategy's ``generation`` before its tell) uses mini-batch ``problem.rows(g)``, so a resumed
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


@dataclass
class StrategyTraining:
    """What :func:`train_strategy` returns.

    Attributes:
        model: the trained module (the input module, its selected parameters set to ``strategy.mean``).
        strategy: the strategy, resumable from its ``state_dict``.
        history: one row per validation: ``generation``, ``evaluations``, ``train_loss`` (mean loss of the
            last generation's members on their batch), ``val_loss``, ``val_accuracy``, ``seconds``.
        final: validation and test loss/accuracy of the final mean.
        evaluations: members evaluated (counted at the driver); validation is monitoring and not counted.
        seconds: wall time of training (validation included).
        stopped: why training ended: ``"budget"``, ``"time limit"`` or ``"early stopping"``.
        training_seconds: wall time of the generations alone (what the time limit counts).
    """

    model: nn.Module
    strategy: Strategy
    history: list[dict[str, float]]
    final: dict[str, float]
    evaluations: int
    seconds: float
    stopped: str = "budget"
    training_seconds: float = 0.0


def train_strategy(
    model: nn.Module,
    task: ClassificationTask,
    strategy: str | Strategy,
    *,
    budget: int | None = None,
    time_limit: float | None = None,
    patience: int | None = None,
    restore_best: bool = False,
    evaluator: EvaluatorFactory | Evaluator = LocalEvaluator,
    popsize: int = 32,
    sigma: float = 0.05,
    seed: int = 0,
    batch_size: int | None = 128,
    eval_every: int = 5000,
    include: tuple[str, ...] | None = None,
    options: dict[str, Any] | None = None,
    callback: Callback | None = None,
) -> StrategyTraining:
    """Train ``model`` on ``task`` with a population strategy, scoring populations on ``evaluator``.

    Each generation is scored on one mini-batch of the seeded order ``Problem.rows(generation)`` (the actors
    of a remote evaluator compute it themselves), or on the whole training set when ``batch_size`` is
    ``None``. Training stops at the first generation that reaches ``budget`` evaluations (overshoot < P),
    before a generation that would end past ``time_limit`` (judged, as in the in-process trainer, by the longest
    of the last few generations; validation is not counted), or after ``patience`` validations without a
    better validation loss.

    Args:
        model: the module to train (CPU); its current parameters are the starting mean.
        task: data, loss and metrics.
        strategy: a registered strategy name (e.g. ``"open-es"``), built as
            ``STRATEGIES.get(name)(D, popsize, init_mean=<model's parameters>, sigma=sigma, seed=seed,
            **options)``; or a strategy already built for this model (then ``popsize``, ``sigma``, ``seed``
            and ``options`` are unused).
        budget: evaluation budget (one evaluation = one forward pass of one vector over one batch).
        time_limit: seconds of training (validation excluded); at least one of ``budget`` and ``time_limit``.
        patience: validations without a better validation loss before stopping (``None``: never).
        restore_best: end on the mean of the best validation instead of the last mean.
        evaluator: a factory ``fn(problem) -> Evaluator`` (default :class:`LocalEvaluator`; for Ray e.g.
            ``functools.partial(RayEvaluator, address="auto")``) — the evaluator it builds is closed at the
            end — or an evaluator already built for this model and task's training set (left open).
        popsize, sigma, seed, options: of a strategy built by name.
        batch_size: rows per generation; ``None`` for the whole training set.
        eval_every: evaluations between validations (history rows).
        include: which parameters to train (regular expressions; default all trainable).
        callback: ``fn(strategy, losses)`` after each tell.

    Returns:
        a :class:`StrategyTraining`.
    """
    if budget is None and time_limit is None:
        raise ConfigError("give train_strategy an evaluation budget, a time limit, or both")
    if (budget is not None and budget <= 0) or (time_limit is not None and time_limit <= 0) or eval_every <= 0 or (
            patience is not None and patience <= 0):
        raise ConfigError(f"budget, time_limit, eval_every and patience must be positive, got {budget}, "
                          f"{time_limit}, {eval_every} and {patience}")
    train = task.data.train
    flat = FlatParams(model, include=include)
    if isinstance(strategy, str):
        strategy = STRATEGIES.get(strategy)(
            flat.num_dims, popsize, init_mean=flat.get(), sigma=sigma, seed=seed, **(options or {})
        )
    if isinstance(evaluator, Evaluator):
        owned, ev = False, evaluator
    else:
        problem = Problem(model, task.loss_fn, train.x, train.y, batch_size=batch_size, batch_seed=seed,
                          include=include)
        owned, ev = True, evaluator(problem)
    start = time.perf_counter()
    history: list[dict[str, float]] = []
    evaluations, next_eval = 0, eval_every
    training, stopped = 0.0, "budget"
    recent = RecentSteps()
    best_loss, best_mean, bad = math.inf, None, 0
    try:
        while budget is None or evaluations < budget:
            if recent.next_ends_past(training, time_limit):
                stopped = "time limit"
                break
            began = time.perf_counter()
            step = None if batch_size is None else strategy.generation
            losses = ev.evaluate(strategy, step=step)
            strategy.tell(losses)
            evaluations += int(losses.shape[0])
            took = time.perf_counter() - began
            recent.add(took)
            training += took
            if callback is not None:
                callback(strategy, losses)
            if evaluations >= next_eval or (budget is not None and evaluations >= budget):
                while next_eval <= evaluations:
                    next_eval += eval_every
                flat.set_(strategy.mean.to(flat.device, flat.dtype))
                val = task.evaluate(model, task.data.val)
                finite = losses[torch.isfinite(losses)]
                history.append({
                    "generation": strategy.generation,
                    "evaluations": evaluations,
                    "train_loss": float(finite.mean()) if finite.numel() else math.inf,
                    "val_loss": val["loss"],
                    "val_accuracy": val["accuracy"],
                    "seconds": time.perf_counter() - start,
                })
                if val["loss"] < best_loss:
                    best_loss, best_mean, bad = val["loss"], strategy.mean.detach().clone(), 0
                else:
                    bad += 1
                    if patience is not None and bad >= patience:
                        stopped = "early stopping"
                        break
    finally:
        if owned:
            ev.close()
    final_mean = best_mean if restore_best and best_mean is not None else strategy.mean
    flat.set_(final_mean.to(flat.device, flat.dtype))
    val, test = task.evaluate(model, task.data.val), task.evaluate(model, task.data.test)
    final = {"val_loss": val["loss"], "val_accuracy": val["accuracy"],
             "test_loss": test["loss"], "test_accuracy": test["accuracy"]}
    return StrategyTraining(model, strategy, history, final, evaluations, time.perf_counter() - start, stopped,
                            training)
