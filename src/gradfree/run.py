"""One training run from names and options: what ``gradfree train`` and the demo call.

Builds the task, the model and the optimizer from the registries, trains under the budget, and writes
``config.json`` (resolved settings and provenance), ``metrics.jsonl``, ``checkpoint.pt``, ``model.pt`` and
``result.json`` into the output folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from gradfree.errors import ConfigError
from gradfree.models import build_model
from gradfree.optim import build_optimizer, optimizer_options
from gradfree.optim.options import option_names
from gradfree.strategies.optimizer import StrategyOptimizer
from gradfree.tasks import build_task
from gradfree.train import TrainConfig, Trainer, TrainResult
from gradfree.train.files import save_json
from gradfree.train.provenance import provenance


@dataclass
class RunSpec:
    """Everything that defines a run; two runs with equal specs give equal results (same device).

    The model is initialised from ``seed``, the optimizer's generator from ``seed + 1`` and the batch order
    and the augmentation from ``seed + 2``: independent streams, none of them the global RNG. As a benchmark
    trial it is of kind ``"train"`` (:mod:`gradfree.experiments.training`).
    """

    kind: ClassVar[str] = "train"

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


DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a malformed or unavailable device is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", name or ""):
        raise ConfigError(f"unknown device {name!r}; use {DEVICE_FORMS}")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name} was asked for but no CUDA device is available; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps was asked for but MPS is not available here; use --device cpu")
    return device


def check_out_dir(out: Path, *, resume: bool) -> None:
    """Refuse, with one clear line, an output folder that cannot hold a run: a file, a path under a file, a
    folder that cannot be created or written, and ``resume`` without a run to continue."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; choose a folder for the run")
    ancestor = out
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"--out {out} cannot be created: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out} cannot be created or written: no write permission on {ancestor}")
    if resume and not (out / "checkpoint.pt").is_file():
        raise ConfigError(f"nothing to resume in {out}: it holds no checkpoint.pt (drop --resume to start a run)")


def train_run(spec: RunSpec, *, out_dir: str | Path | None = None, resume: bool = False,
              data_dir: str | Path | None = None, download: bool = True, progress: bool | None = None,
              ray_address: str | None = None, ray_actors: int | None = None,
              trust_checkpoint: bool = False) -> TrainResult:
    """Build and train the run ``spec``; with ``resume`` continue the checkpoint in ``out_dir``.

    With ``ray_address`` (``"local"`` starts a local Ray, ``"auto"`` joins the cluster of this node, or
    ``"ray://host:10001"``) a population strategy's generations are scored on a pool of Ray actors
    (:class:`~gradfree.distributed.RayEvaluator`, ``ray_actors`` of them); everything else — batches,
    augmentation, validation, early stopping, checkpoints, resume, budgets and time limits — is the same
    trainer, so the run gives the same numbers as in-process. ``trust_checkpoint`` lets a resume load optimizer
    state that exists only as a pickle (the nevergrad and pycma adapters).
    """
    device = resolve_device(spec.device)
    if ray_address is not None and device.type != "cpu":
        raise ConfigError("--ray-address trains on CPU actors; pass --device cpu")
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
    if ray_address is not None and not isinstance(optimizer, StrategyOptimizer):
        from gradfree.strategies import STRATEGIES

        raise ConfigError(f"--ray-address needs a population strategy ({', '.join(STRATEGIES.names())}); "
                          f"{spec.optimizer!r} is not one")
    if spec.time_limit is not None and device.type == "cpu":
        from gradfree.engines.incremental.selection import warm_up

        warm_up()  # not on the clock: the first step of a search would otherwise compile the numba kernels
    config = TrainConfig(budget=spec.budget, time_limit=spec.time_limit, batch_size=spec.batch_size,
                         eval_every=spec.eval_every, patience=spec.patience, seed=spec.seed + 2,
                         progress=progress, augment=spec.augment, trust_checkpoint=trust_checkpoint)
    run_config = {**asdict(spec), "model": model_spec, "device": str(device)}
    if out_dir is not None:
        out = Path(out_dir)
        if out.exists() and any(out.iterdir()) and not resume:
            raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose a new --out")
        save_json({"config": run_config, "provenance": provenance(device),
                   **({"ray": {"address": ray_address, "actors": ray_actors}} if ray_address else {})},
                  out / "config.json")
    trainer = Trainer(task, model, optimizer, config, out_dir=out_dir, run_config=run_config)
    if ray_address is None:
        return trainer.fit(resume=resume)
    from gradfree.distributed.ray_evaluator import RayEvaluator

    assert isinstance(optimizer, StrategyOptimizer)
    with RayEvaluator(trainer.problem(), address=ray_address, num_actors=ray_actors) as evaluator:
        optimizer.use_evaluator(evaluator)
        try:
            return trainer.fit(resume=resume)
        finally:
            optimizer.use_evaluator(None)


def _takes_seed(optimizer: str) -> bool:
    return "seed" in option_names(optimizer_options(optimizer))
