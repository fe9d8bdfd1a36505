"""One training run from names and options: what ``gradfree train`` and the demo call.

Builds the task, the model and the optimizer from the registries, trains under the budget, and writes
``config.json`` (resolved settings and provenance), ``metrics.jsonl``, ``checkpoint.pt``, ``model.pt`` and
``result.json`` into the output folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from gradfree.errors import ConfigError
from gradfree.models import build_model
from gradfree.optim import build_optimizer
from gradfree.tasks import build_task
from gradfree.train import TrainConfig, Trainer, TrainResult
from gradfree.train.files import save_json
from gradfree.train.provenance import provenance
from gradfree.train.trainer import RESULT as RESULT_FILE


@dataclass
class RunSpec:
    """Everything that defines a run; two runs with equal specs give equal results (same device).

    The model is initialised from ``seed``, the optimizer's generator from ``seed + 1`` and the batch order
    and the augmentation from ``seed + 2``: independent streams, none of them the global RNG.
    """

    task: str = "digits"
    model: str | None = None
    optimizer: str = "zo-adam"
    options: dict[str, Any] = field(default_factory=dict)
    budget: int | None = None
    time_limit: float | None = None
    batch_size: int | None = 128
    eval_every: int = 5000
    patience: int | None = None
    seed: int = 0
    train_subset: int | None = None
    device: str = "auto"
    augment: str | None = None


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an unavailable CUDA request is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    return device


def train_run(spec: RunSpec, *, out_dir: str | Path | None = None, resume: bool = False,
              data_dir: str | Path | None = None, download: bool = True,
              progress: bool | None = None) -> TrainResult:
    """Build and train the run ``spec``; with ``resume`` continue the checkpoint in ``out_dir``."""
    device = resolve_device(spec.device)
    task = build_task(spec.task, data_dir=data_dir, seed=spec.seed, download=download,
                      train_subset=spec.train_subset)
    task.data = task.data.to(device)
    model_spec = spec.model or task.default_model
    model = build_model(model_spec, seed=spec.seed, input_shape=task.data.input_shape,
                        num_classes=task.data.num_classes).to(device)
    options = dict(spec.options)
    if "seed" not in options and _takes_seed(spec.optimizer):
        options["seed"] = spec.seed + 1
    optimizer = build_optimizer(spec.optimizer, model.parameters(), **options)
    config = TrainConfig(budget=spec.budget, time_limit=spec.time_limit, batch_size=spec.batch_size,
                         eval_every=spec.eval_every, patience=spec.patience, seed=spec.seed + 2,
                         progress=progress, augment=spec.augment)
    run_config = {**asdict(spec), "model": model_spec, "device": str(device)}
    if out_dir is not None:
        out = Path(out_dir)
        if out.exists() and any(out.iterdir()) and not resume:
            raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose a new --out")
        save_json({"config": run_config, "provenance": provenance(device)}, out / "config.json")
    trainer = Trainer(task, model, optimizer, config, out_dir=out_dir, run_config=run_config)
    return trainer.fit(resume=resume)


def _takes_seed(optimizer: str) -> bool:
    from gradfree.optim.registry import needs_gradient

    return not needs_gradient(optimizer)


def train_on_ray(spec: RunSpec, *, address: str, actors: int | None = None, out_dir: str | Path | None = None,
                 data_dir: str | Path | None = None, download: bool = True) -> dict[str, Any]:
    """Train ``spec`` with a population strategy whose generations are scored on a Ray cluster.

    Uses :func:`gradfree.distributed.train_strategy` with a :class:`~gradfree.distributed.RayEvaluator`
    (``address``: ``"local"`` starts a local Ray, ``"auto"`` joins the cluster of this node, or
    ``"ray://host:10001"``). The options ``popsize``, ``sigma`` and the strategy's hyper-parameters come from
    ``spec.options``. Writes ``config.json`` and ``result.json`` into ``out_dir``. The budget, the time limit
    and early stopping (ending on the best validation's mean) work as in the in-process trainer; resume and
    augmentation are not supported on this path yet.

    Returns:
        the result summary (evaluations, seconds, final metrics, history).
    """
    from functools import partial

    from gradfree.distributed import RayEvaluator, train_strategy
    from gradfree.strategies import STRATEGIES

    if spec.optimizer not in STRATEGIES:
        raise ConfigError(f"--ray-address needs a population strategy ({', '.join(STRATEGIES.names())}); "
                          f"{spec.optimizer!r} is not one")
    if spec.augment:
        raise ConfigError("--augment is not supported with --ray-address yet (the actors score fixed batches)")
    if spec.budget is None and spec.time_limit is None:
        raise ConfigError("with --ray-address give --budget, --time or both")
    if resolve_device(spec.device).type != "cpu":
        raise ConfigError("--ray-address trains on CPU actors; pass --device cpu")
    task = build_task(spec.task, data_dir=data_dir, seed=spec.seed, download=download,
                      train_subset=spec.train_subset)
    model_spec = spec.model or task.default_model
    model = build_model(model_spec, seed=spec.seed, input_shape=task.data.input_shape,
                        num_classes=task.data.num_classes)
    options = dict(spec.options)
    popsize = int(options.pop("popsize", 32))
    sigma = float(options.pop("sigma", 0.05))
    seed = int(options.pop("seed", spec.seed + 1))
    run_config = {**asdict(spec), "model": model_spec, "device": "cpu", "ray_address": address,
                  "ray_actors": actors}
    if out_dir is not None:
        out = Path(out_dir)
        if out.exists() and any(out.iterdir()):
            raise ConfigError(f"{out} already holds a run; choose a new --out")
        save_json({"config": run_config, "provenance": provenance("cpu")}, out / "config.json")
    trained = train_strategy(model, task, spec.optimizer, budget=spec.budget, time_limit=spec.time_limit,
                             patience=spec.patience, restore_best=spec.patience is not None, popsize=popsize,
                             sigma=sigma, seed=seed, batch_size=spec.batch_size, eval_every=spec.eval_every,
                             options=options, evaluator=partial(RayEvaluator, address=address, num_actors=actors))
    summary = {"evaluations": trained.evaluations, "wall_time": trained.seconds,
               "training_time": trained.training_seconds, "stopped": trained.stopped, "final": trained.final,
               "history": trained.history}
    if out_dir is not None:
        save_json({"config": run_config, **summary}, Path(out_dir) / RESULT_FILE)
    return summary
