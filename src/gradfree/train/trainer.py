"""The training loop: one harness, one budget, for zeroth-order optimizers and backprop baselines alike.

The budget counts objective evaluations (one forward pass of one parameter vector over one batch). A
backprop step counts as one evaluation, and its backward pass is recorded separately in ``backward``.
Validation passes are monitoring and do not count against the budget, in evaluations or in time: the
reported ``wall_time`` (and the ``time`` of each metrics row) is training time. A step may overshoot the budget by
at most its own cost (the loop stops once the budget is reached); the exact count is reported. A time limit
is not overshot: the loop stops before a step that would end past it, judged by the recent steps. In a model
with batch norm a zeroth-order step costs one more evaluation: the forward that moves the running statistics
once, from the updated weights (see :mod:`gradfree.train.running_stats`).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradfree.data.augment import build_augmentation
from gradfree.errors import ConfigError, NonFiniteLossError
from gradfree.tasks.classification import ClassificationTask
from gradfree.train.batches import BatchOrder
from gradfree.train.files import remove_stale_temporaries, save_json, save_torch
from gradfree.train.metrics_log import MetricsLog
from gradfree.train.objective import BatchObjective, EvaluationCounter, PopulationLosses
from gradfree.train.progress import Progress
from gradfree.train.running_stats import RunningStats
from gradfree.train.time_limit import RecentSteps

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
RESULT = "result.json"
MAX_BAD_STEPS = 20  # consecutive non-finite backprop losses before a run gives up


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

    def __post_init__(self) -> None:
        if self.budget is None and self.time_limit is None:
            raise ConfigError("set an evaluation budget, a time limit, or both")
        if self.budget is not None and self.budget <= 0:
            raise ConfigError(f"budget must be a positive number of evaluations, got {self.budget}")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ConfigError(f"time limit must be positive seconds, got {self.time_limit}")
        if self.batch_size is not None and self.batch_size <= 0:
            raise ConfigError(f"batch size must be positive, got {self.batch_size}")
        if self.eval_every <= 0:
            raise ConfigError(f"eval_every must be positive, got {self.eval_every}")
        if self.patience is not None and self.patience <= 0:
            raise ConfigError(f"patience must be positive, got {self.patience}")


@dataclass
class TrainResult:
    """What a run reached."""

    evaluations: int
    backward: int
    rejected: int
    steps: int
    wall_time: float
    stopped: str
    best_val_loss: float
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
        task: data, loss and metrics.
        model: the module (already on the task's device).
        optimizer: any ``torch.optim.Optimizer``; while its ``zeroth_order`` attribute is true (read every
            step) it gets a :class:`BatchObjective` closure and no backward pass, otherwise a backprop step.
            An optimizer whose ``converged`` attribute becomes true ends the run ("converged").
        config: budget, batching, validation and early stopping.
        out_dir: where ``metrics.jsonl``, ``checkpoint.pt`` and ``result.json`` go (``None``: nothing written).
        run_config: the resolved settings to store in checkpoints (a resumed run must match them).
    """

    def __init__(self, task: ClassificationTask, model: nn.Module, optimizer: torch.optim.Optimizer,
                 config: TrainConfig, *, out_dir: str | Path | None = None,
                 run_config: dict[str, Any] | None = None) -> None:
        self.task, self.model, self.optimizer, self.config = task, model, optimizer, config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run_config = run_config or {}
        self.counter = EvaluationCounter()
        self.order = BatchOrder(len(task.data.train), config.batch_size, seed=config.seed)
        self.populations = PopulationLosses(model, task.loss_fn)
        self.running_stats = RunningStats(model)
        self.augmentation = build_augmentation(config.augment, task.data.train.x)
        self.steps = 0
        self.elapsed = 0.0
        self.best_val = math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_validations = 0
        self.next_validation = 0
        self.loss_sum, self.loss_count = 0.0, 0
        self.log = MetricsLog(None)

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
        bad_steps = 0
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
                loss = self._step()
                recent.add(time.perf_counter() - started)
                self.steps += 1
                if math.isfinite(loss):
                    bad_steps = 0
                    self.loss_sum += loss
                    self.loss_count += 1
                else:
                    bad_steps += 1
                    if getattr(self.optimizer, "zeroth_order", False) or bad_steps >= MAX_BAD_STEPS:
                        stopped = (f"non-finite loss at evaluation {self.counter.evaluations}; "
                                   "lower the learning rate or the smoothing")
                        break
                progress.update(self.counter.evaluations, loss=loss)
                if getattr(self.optimizer, "converged", False):  # e.g. grid search: a sweep gained < tol
                    stopped = "converged"
                    break
        finally:
            progress.close()
        self.elapsed = base_elapsed + time.perf_counter() - segment_start - monitoring
        return self._finish(stopped)

    def _evals_spent(self) -> bool:
        return self.config.budget is not None and self.counter.evaluations >= self.config.budget

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.order.next()
        train = self.task.data.train
        if index is None:
            x, y = train.x, train.y
        else:
            index = index.to(train.x.device)
            x, y = train.x[index], train.y[index]
        if self.augmentation is not None:
            # One stream per step, from the seed and the step number alone: a resumed run sees the same images.
            generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.steps)
            x = self.augmentation(x, generator)
        return x, y

    def _step(self) -> float:
        x, y = self._batch()
        self.model.train()
        # Read each step: a hybrid optimizer switches between zeroth-order and backprop phases.
        if getattr(self.optimizer, "zeroth_order", False):
            closure = BatchObjective(self.model, self.task.loss_fn, x, y, populations=self.populations,
                                     counter=self.counter)
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
        start = self.task.evaluate(self.model, self.task.data.train)
        if not math.isfinite(start["loss"]):
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
                        **{f"val_{k}": v for k, v in val.items()}})  # loss, accuracy / rmse, r2 ...
        if val["loss"] < self.best_val:
            self.best_val = val["loss"]
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
            last_val = self.task.evaluate(self.model, self.task.data.val)["loss"]
            if not last_val <= self.best_val:
                self.model.load_state_dict(self.best_state)
        data = self.task.data
        final: dict[str, float] = {}
        for split_name, split in (("train", data.train), ("val", data.val), ("test", data.test)):
            for metric, value in self.task.evaluate(self.model, split).items():
                final[f"{split_name}_{metric}"] = value
        result = TrainResult(evaluations=self.counter.evaluations, backward=self.counter.backward,
                             rejected=self.counter.rejected, steps=self.steps, wall_time=self.elapsed,
                             stopped=stopped, best_val_loss=self.best_val, final=final, history=self.log.rows)
        self.log.write({"kind": "final", **result.summary(), **final})
        if self.out_dir is not None:
            save_torch(self.model.state_dict(), self.out_dir / "model.pt")
            save_json({"config": self.run_config, **result.summary()}, self.out_dir / RESULT)
        return result

    # --------------------------------------------------------------------------------------- checkpoints
    def _save_checkpoint(self) -> None:
        if self.out_dir is None:
            return
        save_torch({
            "run_config": self.run_config,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "order": self.order.state_dict(),
            "counter": asdict(self.counter),
            "steps": self.steps,
            "elapsed": self.elapsed,
            "best_val": self.best_val,
            "best_state": self.best_state,
            "bad_validations": self.bad_validations,
            "next_validation": self.next_validation,
            "metrics_offset": self.log.offset(),
        }, self.out_dir / CHECKPOINT)

    def _load_checkpoint(self) -> int:
        assert self.out_dir is not None
        path = self.out_dir / CHECKPOINT
        try:
            ck = torch.load(path, map_location=self.task.data.train.x.device, weights_only=False)
        except Exception as exc:  # a corrupt file from outside: say which and what to do
            raise ConfigError(f"cannot read checkpoint {path}: {exc}. Delete it to start afresh.") from None
        # A setting missing from an older checkpoint counts as its default, None.
        changed = sorted(k for k in set(ck["run_config"]) | set(self.run_config)
                         if ck["run_config"].get(k) != self.run_config.get(k))
        if changed:
            raise ConfigError(f"{path} was made with different settings ({', '.join(changed)}); resume with "
                              "the same arguments or use a new --out directory")
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.order.load_state_dict(ck["order"])
        self.counter = EvaluationCounter(**ck["counter"])
        self.steps, self.elapsed = ck["steps"], ck["elapsed"]
        self.best_val, self.best_state = ck["best_val"], ck["best_state"]
        self.bad_validations, self.next_validation = ck["bad_validations"], ck["next_validation"]
        return int(ck["metrics_offset"])
