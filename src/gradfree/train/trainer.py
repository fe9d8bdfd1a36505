"""The training loop: one harness, one budget, for zeroth-order optimizers and backprop baselines alike.

The budget counts objective evaluations (one forward pass of one parameter vector over one batch). A
backprop step counts as one evaluation, and its backward pass is recorded separately in ``backward``.
Validation passes are monitoring and do not count against the budget, in evaluations or in time: the
reported ``wall_time`` (and the ``time`` of each metrics row) is training time. A step may overshoot the budget by
at most its own cost (the loop stops once the budget is reached); the exact count is reported. A time limit
is not overshot: the loop stops before a step that would end past it, judged by the recent steps. In a model
with batch norm a zeroth-order step costs one more evaluation: the forward that moves the running statistics
once, from the updated weights (see :mod:`gradfree.objective.running_stats`).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradfree.data.batches import TrainingBatches
from gradfree.data.ragged import Targets
from gradfree.errors import ConfigError, GradfreeWarning, NonFiniteLossError
from gradfree.objective.counter import EvaluationCounter
from gradfree.objective.parameters import ParameterObjective, PopulationCache
from gradfree.objective.population import Mode
from gradfree.objective.problem import Problem
from gradfree.objective.randomness import step_seed, stochastic
from gradfree.objective.running_stats import RunningStats
from gradfree.optim.protocols import has_converged, works_from_losses
from gradfree.params.flat import FlatParams
from gradfree.strategies.adapters.wrapped import pickled_state_allowed
from gradfree.strategies.optimizer import StrategyOptimizer
from gradfree.tasks.protocol import Task
from gradfree.train.files import load_checkpoint, remove_stale_temporaries, save_json, save_torch
from gradfree.train.metrics_log import MetricsLog
from gradfree.train.progress import Progress
from gradfree.train.time_limit import RecentSteps

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
RESULT = "result.json"
MAX_FAILED_STEPS = 20
"""Consecutive failed steps (a non-finite step loss) after which a run stops: the NaN policy's K."""


@dataclass
class TrainConfig:
    """How long and how a run trains.

    Attributes:
        budget: evaluation budget (``None``: no limit, then ``time_limit`` must be set).
        time_limit: wall-clock budget in seconds of training: validation and checkpointing are not charged
            (so methods that validate more often are not penalised); summed over resumed segments. The run
            stops before a step that would end past it, judging a step's time by the longest of the last
            few (:mod:`gradfree.train.time_limit`), so training time stays within the limit unless steps
            slow down.
        batch_size: rows per step; ``None`` for full batch.
        eval_every: evaluations between validations (and checkpoints).
        patience: stop after this many validations without a better validation loss (``None``: never).
        restore_best: end with the weights of the best validation.
        seed: seeds the batch order and the augmentation (the model and optimizer take their own seeds).
        augment: augmentation of the training batches, e.g. ``"shift:1"`` (see :mod:`gradfree.data.augment`);
            ``None`` for none.
        progress: show a progress bar; ``None`` means only on a terminal.
        trust_checkpoint: on resume, also load optimizer state that exists only as a pickle (the nevergrad
            and pycma adapters' wrapped optimizers): unpickling runs code, so only for checkpoints you made.
    """

    budget: int | None = None
    time_limit: float | None = None
    batch_size: int | None = 128
    eval_every: int = 5000
    patience: int | None = None
    restore_best: bool = True
    seed: int = 0
    progress: bool | None = None
    augment: str | None = None
    trust_checkpoint: bool = False

    def __post_init__(self) -> None:
        if self.budget is None and self.time_limit is None:
            raise ConfigError("set an evaluation budget, a time limit, or both")
        if self.budget is not None and (isinstance(self.budget, bool) or not isinstance(self.budget, int)
                                        or self.budget <= 0):
            raise ConfigError(f"budget must be a positive number of evaluations, got {self.budget}")
        if self.time_limit is not None and not 0 < self.time_limit < math.inf:
            raise ConfigError(f"time limit must be a finite positive number of seconds, got {self.time_limit}")
        if self.batch_size is not None and self.batch_size <= 0:
            raise ConfigError(f"batch size must be positive, got {self.batch_size}")
        if self.eval_every <= 0:
            raise ConfigError(f"eval_every must be positive, got {self.eval_every}")
        if self.patience is not None and self.patience <= 0:
            raise ConfigError(f"patience must be positive, got {self.patience}")


@dataclass
class TrainResult:
    """What a run reached.

    ``rejected`` counts non-finite evaluations; ``failed_steps`` the steps whose loss was non-finite (no
    update, or the step undone) and ``undone`` the steps whose start point had a non-finite loss and were
    rolled back to the last point with a finite one (the NaN policy: README, "Non-finite losses").
    ``monitor`` names the validation metric the run followed (the task's, e.g. ``"loss"``) and ``best_val``
    is its best value; ``headline`` is the task's headline metric (name, direction, label) that summaries
    lead with; ``final`` holds ``{split}_{metric}`` for the train, val and test splits.
    """

    evaluations: int
    backward: int
    rejected: int
    failed_steps: int
    undone: int
    steps: int
    wall_time: float
    stopped: str
    monitor: str
    best_val: float
    headline: dict[str, Any]
    final: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Everything but the history, JSON-ready."""
        out = asdict(self)
        out.pop("history")
        return out


class Trainer:
    """Trains ``model`` on ``task`` with ``optimizer`` under ``config``'s budget.

    Args:
        task: data, loss and metrics (any :class:`~gradfree.tasks.protocol.Task`).
        model: the module (already on the task's device).
        optimizer: any ``torch.optim.Optimizer``. While it works from losses alone
            (:class:`~gradfree.optim.protocols.LossOnly`, read every step) it gets a
            :class:`~gradfree.objective.parameters.ParameterObjective` closure and no backward pass, otherwise a
            backprop step. One that reports convergence (:class:`~gradfree.optim.protocols.Converging`) ends
            the run ("converged").
        config: budget, batching, validation and early stopping.
        out_dir: where ``metrics.jsonl``, ``checkpoint.pt`` and ``result.json`` go (``None``: nothing written).
        run_config: the resolved settings to store in checkpoints (a resumed run must match them).

    Validation follows the task's ``monitor`` metric: the best weights by it are kept, restored at the end,
    and early stopping counts validations without a better value.

    Stochastic layers: in a model with dropout in training mode, every evaluation of a zeroth-order step sees
    the same randomness (a per-step seed from the run's seed and the step number:
    :mod:`gradfree.objective.randomness`), so the differences a step takes measure the weights, not masks.

    Non-finite losses (one policy): a non-finite loss at a perturbed point is rejected and counted
    (``rejected``; the methods leave such points out). A step fails when its loss comes back non-finite (it
    started from a point the previous step moved to), counted in ``failed_steps``; the parameters then go back
    to the last point whose loss was finite (for methods whose parameters are their whole position; a
    population strategy's mean is its own), counted in ``undone``. The run stops with a clear message when
    the starting point is non-finite, or after :data:`MAX_FAILED_STEPS` failed steps with no progress in
    between (progress: two steps in a row with finite losses). Keeping the last finite point costs two copies
    of the trainable parameters.
    """

    def __init__(self, task: Task, model: nn.Module, optimizer: torch.optim.Optimizer,
                 config: TrainConfig, *, out_dir: str | Path | None = None,
                 run_config: dict[str, Any] | None = None) -> None:
        self.task, self.model, self.optimizer, self.config = task, model, optimizer, config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run_config = run_config or {}
        self.counter = EvaluationCounter()
        rows = len(task.data.train)
        batch_size = config.batch_size
        if batch_size is not None and batch_size > rows:
            warnings.warn(f"batch size {batch_size} is larger than the training split ({rows} rows): every step "
                          "uses the whole split", GradfreeWarning, stacklevel=2)
            batch_size = None
        self.batches = TrainingBatches(task.data.train, batch_size, seed=config.seed,
                                       augmentation=task.augmentation(config.augment))
        self.populations = PopulationCache(model, task.loss_fn, vmappable=task.loss_vmappable)
        self.running_stats = RunningStats(model)
        self.monitor = task.monitor
        self.steps = 0
        self.elapsed = 0.0
        self.best_val = self.monitor.worst()
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_validations = 0
        self.next_validation = 0
        self.loss_sum, self.loss_count = 0.0, 0
        self.failed_steps = self.undone = 0
        self.log = MetricsLog(None)
        self._trainable = FlatParams(None, params=[p for g in optimizer.param_groups for p in g["params"]
                                                   if p.requires_grad])
        self._good: torch.Tensor | None = None  # the last step start point whose loss was finite

    def problem(self, *, device: torch.device | str = "cpu") -> Problem:
        """The :class:`~gradfree.objective.problem.Problem` this run trains on (its model, loss and batches,
        the optimizer's parameters by name), for an evaluator that scores generations elsewhere: the batch of
        step ``s`` there is the batch of step ``s`` here."""
        names = {id(p): n for n, p in self.model.named_parameters()}
        tensors = [p for g in self.optimizer.param_groups for p in g["params"]]
        mode: Mode = "auto" if self.task.loss_vmappable else "loop"
        return Problem(self.model, self.task.loss_fn, self.batches.to(device),
                       params=tuple(names[id(p)] for p in tensors), mode=mode)

    # ----------------------------------------------------------------------------------------------- run
    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train until the budget, the time limit or early stopping; returns the final metrics.

        With ``resume=True`` and a checkpoint in ``out_dir``, continues that run exactly where it was saved.
        """
        if self.out_dir is not None:
            remove_stale_temporaries(self.out_dir)  # a run killed mid-write leaves its temporary file
        resumed = resume and self.out_dir is not None and (self.out_dir / CHECKPOINT).exists()
        offset = self._load_checkpoint() if resumed else None
        self.log = MetricsLog(self.out_dir / METRICS if self.out_dir else None, resume_offset=offset)
        if not resumed:
            self._check_start()
        progress = Progress(self.config.budget, enabled=self.config.progress, initial=self.counter.evaluations)
        stopped = "budget"
        failed_in_a_row = 0  # failed steps since two steps in a row had finite losses
        previous_finite = True
        segment_start = time.perf_counter()
        base_elapsed = self.elapsed
        monitoring = 0.0  # validation and checkpoint time in this segment: not charged to the time limit
        recent = RecentSteps()
        try:
            while True:
                self.elapsed = base_elapsed + time.perf_counter() - segment_start - monitoring
                if self.counter.evaluations >= self.next_validation:
                    started = time.perf_counter()
                    stop_early = self._validate()
                    monitoring += time.perf_counter() - started
                    if stop_early:
                        stopped = "early stopping"
                        break
                if self._evals_spent() or recent.next_ends_past(self.elapsed, self.config.time_limit):
                    stopped = "budget" if self._evals_spent() else "time limit"
                    break
                started = time.perf_counter()
                start_point = self._trainable.get()
                loss = self._step()
                recent.add(time.perf_counter() - started)
                self.steps += 1
                if math.isfinite(loss):
                    if previous_finite:  # the last step moved from a finite point to a finite one: progress
                        failed_in_a_row = 0
                    previous_finite = True
                    self._good = start_point  # the step's loss was finite at the point it started from
                    self.loss_sum += loss
                    self.loss_count += 1
                else:
                    previous_finite = False
                    failed_in_a_row += 1
                    self._fail_step()
                    if failed_in_a_row >= MAX_FAILED_STEPS:
                        stopped = (f"non-finite loss in {MAX_FAILED_STEPS} failed steps without progress (at "
                                   f"evaluation {self.counter.evaluations}); lower the learning rate or the smoothing")
                        break
                progress.update(self.counter.evaluations, loss=loss)
                if has_converged(self.optimizer):  # e.g. grid search: a sweep gained < tol
                    stopped = "converged"
                    break
        finally:
            progress.close()
        self.elapsed = base_elapsed + time.perf_counter() - segment_start - monitoring
        return self._finish(stopped)

    def _fail_step(self) -> None:
        """A step's loss was non-finite: go back to the last point whose loss was finite."""
        self.failed_steps += 1
        # A population strategy's mean is its own position (the next step writes it again); a backprop step
        # with a non-finite loss made no update.
        restorable = works_from_losses(self.optimizer) and not isinstance(self.optimizer, StrategyOptimizer)
        if self._good is not None and restorable and not torch.equal(self._trainable.get(), self._good):
            self._trainable.set_(self._good)
            self.undone += 1

    def _evals_spent(self) -> bool:
        return self.config.budget is not None and self.counter.evaluations >= self.config.budget

    def _batch(self) -> tuple[torch.Tensor, Targets]:
        return self.batches.batch(self.steps)

    def _step(self) -> float:
        """One step; returns its loss (non-finite: a failed step)."""
        x, y = self._batch()
        self.model.train()
        # Read each step: a hybrid optimizer switches between zeroth-order and backprop phases.
        if works_from_losses(self.optimizer):
            seed = step_seed(self.config.seed, self.steps) if stochastic(self.model) else None
            closure = ParameterObjective(self.model, self.task.loss_fn, x, y, populations=self.populations,
                                         counter=self.counter, step=self.steps, seed=seed)
            if not self.running_stats:
                return float(self.optimizer.step(closure))  # type: ignore[arg-type]
            with self.running_stats.frozen():  # perturbed evaluations leave batch-norm statistics alone
                step_loss = float(self.optimizer.step(closure))  # type: ignore[arg-type]
            self.counter.record(self.task.loss_fn(self.running_stats.track(x), y).reshape(1))
            return step_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.task.loss_fn(self.model(x), y)
        self.counter.record(loss.detach().reshape(1))
        if not torch.isfinite(loss):
            return math.nan  # rejected: no backward, no update
        loss.backward()
        self.counter.backward += 1
        self.optimizer.step()
        return float(loss.detach())

    def _check_start(self) -> None:
        # The whole training split by the task's own evaluation (NaN/inf inputs anywhere), and the training
        # loss itself on the first batch (the objective the steps minimise).
        if not math.isfinite(self.task.evaluate(self.model, self.task.data.train)["loss"]) or not self._finite_on(0):
            raise NonFiniteLossError(
                "the training loss is NaN/inf at the starting point, before any update: check the inputs "
                "for NaN/inf and the model's initialisation")

    # ---------------------------------------------------------------------------------------- validation
    def _validate(self) -> bool:
        """Log a validation row, track the best weights, checkpoint; returns True to stop early."""
        val = self.task.evaluate(self.model, self.task.data.val)
        train_loss = self.loss_sum / self.loss_count if self.loss_count else math.nan
        self.loss_sum, self.loss_count = 0.0, 0
        self.log.write({"kind": "val", "evaluations": self.counter.evaluations, "steps": self.steps,
                        "backward": self.counter.backward, "time": self.elapsed, "train_loss": train_loss,
                        **{f"val_{k}": v for k, v in val.items()}})  # loss, accuracy / rmse, r2 / map50 ...
        if self.monitor.better(val[self.monitor.name], self.best_val):
            self.best_val = val[self.monitor.name]
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.bad_validations = 0
        else:
            self.bad_validations += 1
        self.next_validation += self.config.eval_every
        while self.next_validation <= self.counter.evaluations:
            self.next_validation += self.config.eval_every
        self._save_checkpoint()
        return self.config.patience is not None and self.bad_validations >= self.config.patience

    def _finish(self, stopped: str) -> TrainResult:
        if self.config.restore_best and self.best_state is not None:
            last = self.task.evaluate(self.model, self.task.data.val)[self.monitor.name]
            if not self.monitor.at_least_as_good(last, self.best_val):
                self.model.load_state_dict(self.best_state)
        if self.steps and not self._finite_on(self.steps - 1):
            self._fail_step()  # the last step moved onto a non-finite point: the policy undoes it
            self.failed_steps -= 1  # ... without counting a step that was already counted as done
        data = self.task.data
        final: dict[str, float] = {}
        for split_name, split in (("train", data.train), ("val", data.val), ("test", data.test)):
            for metric, value in self.task.evaluate(self.model, split).items():
                final[f"{split_name}_{metric}"] = value
        result = TrainResult(evaluations=self.counter.evaluations, backward=self.counter.backward,
                             rejected=self.counter.rejected, failed_steps=self.failed_steps, undone=self.undone,
                             steps=self.steps, wall_time=self.elapsed,
                             stopped=stopped, monitor=self.monitor.name, best_val=self.best_val,
                             headline=asdict(self.task.headline), final=final, history=self.log.rows)
        self.log.write({"kind": "final", **result.summary(), **final})
        if self.out_dir is not None:
            save_torch(self.model.state_dict(), self.out_dir / "model.pt")
            save_json({"config": self.run_config, **result.summary()}, self.out_dir / RESULT)
        return result

    @torch.no_grad()
    def _finite_on(self, step: int) -> bool:
        """Whether the training loss at the current weights, on the batch of ``step``, is finite (monitoring:
        not charged; in eval mode, so batch-norm statistics stay as they are)."""
        x, y = self.batches.batch(step)
        was_training = self.model.training
        self.model.eval()
        try:
            return bool(torch.isfinite(self.task.loss_fn(self.model(x), y)))
        finally:
            self.model.train(was_training)

    # --------------------------------------------------------------------------------------- checkpoints
    def _save_checkpoint(self) -> None:
        if self.out_dir is None:
            return
        save_torch({
            "run_config": self.run_config,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "counter": asdict(self.counter),
            "steps": self.steps,
            "elapsed": self.elapsed,
            "best_val": self.best_val,
            "best_state": self.best_state,
            "bad_validations": self.bad_validations,
            "next_validation": self.next_validation,
            "failed_steps": self.failed_steps,
            "undone": self.undone,
            "good": self._good,
            "metrics_offset": self.log.offset(),
        }, self.out_dir / CHECKPOINT)

    def _load_checkpoint(self) -> int:
        assert self.out_dir is not None
        path = self.out_dir / CHECKPOINT
        ck = load_checkpoint(path, map_location=self.task.data.train.x.device)
        # A setting missing from an older checkpoint counts as its default, None.
        changed = sorted(k for k in set(ck["run_config"]) | set(self.run_config)
                         if ck["run_config"].get(k) != self.run_config.get(k))
        if changed:
            raise ConfigError(f"{path} was made with different settings ({', '.join(changed)}); resume with "
                              "the same arguments or use a new --out directory")
        self.model.load_state_dict(ck["model"])
        with pickled_state_allowed(self.config.trust_checkpoint):
            self.optimizer.load_state_dict(ck["optimizer"])
        self.counter = EvaluationCounter(**ck["counter"])
        self.steps, self.elapsed = ck["steps"], ck["elapsed"]
        self.best_val, self.best_state = ck["best_val"], ck["best_state"]
        self.bad_validations, self.next_validation = ck["bad_validations"], ck["next_validation"]
        self.failed_steps, self.undone, self._good = ck["failed_steps"], ck["undone"], ck["good"]
        return int(ck["metrics_offset"])
