"""The ``"detection"`` trial kind: training a car detector by one of three routes, with pictures.

* ``route="scratch"`` — the whole network from its initialisation, by any optimizer (backprop baselines and
  every gradient-free family), through :func:`gradfree.run.train_run`;
* ``route="hybrid"`` — a start detector trained by Adam for ``start_time`` seconds, its head re-initialised
  and trained by the trial's optimizer on the frozen backbone's cached features
  (:mod:`gradfree.tasks.detection_features`) for ``time_limit`` seconds;
* ``route="finetune"`` — the start detector's head trained further by the trial's optimizer on a
  non-differentiable ``objective`` (``"f1"``: 1 - F1 at IoU 0.5, ``"ap50"``: 1 - AP@0.5 of the batch), on
  cached features, ending on its last weights (no selection on validation), so that the row says honestly
  whether validation mAP rose above the start's.

Start detectors are trained once per (settings, seed, data) and kept under ``cache_dir()/detectors/<key>``
(written under a temporary name and renamed when complete; weights read back with ``weights_only=True``), so
trials with the same start settings and seed share one, and a rerun or resumed benchmark reuses it. A trial's
``wall_time`` is its whole cost: the start's training time, the feature caching and its own stage (each is
also in the row: ``start_wall_time``, ``feature_seconds``, ``stage_wall_time``); validation is not charged,
as in the trainer.

Every trial ends by evaluating the final detector on the test split: the row holds the test precision-recall
curve at IoU 0.5 (``pr_curve``), the run folder a picture of test images with predicted and true boxes
(artifact ``test_images``), and ``config.json`` + ``model.pt`` that ``gradfree detect --run`` reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from gradfree.errors import ConfigError
from gradfree.experiments.kinds import TRIAL_KINDS, TrialKind, TrialOutcome
from gradfree.models.yolo import Yolo
from gradfree.tasks.detection import MAP50, DetectionTask, Objective, decode

Route = Literal["scratch", "hybrid", "finetune"]
START_CACHE_VERSION = 1
PR_POINTS = 200
"""Points of the test precision-recall curve kept in a row."""


@dataclass
class DetectionTrialSpec:
    """One detection trial (see the module docstring).

    Attributes:
        route: ``"scratch"``, ``"hybrid"`` or ``"finetune"``.
        optimizer, options: the trial's optimizer (for hybrid / finetune: of the head).
        model: the detector spec.
        budget, time_limit: of the trial's own stage (evaluations / seconds of training).
        batch_size: images per step (``None``: the whole training split).
        eval_every: evaluations between validations.
        augment: augmentation of the scratch route's batches (cached features cannot be augmented).
        objective: the finetune route's loss: ``"f1"`` or ``"ap50"`` (``"loss"`` for the other routes).
        start_time, start_options, start_batch_size: the Adam training of the start detector.
        seed, device, train_subset: as for any run.
        pictures: test images drawn.
    """

    kind: ClassVar[str] = "detection"
    route: Route = "scratch"
    optimizer: str = "adam"
    options: dict[str, Any] = field(default_factory=dict)
    model: str = "yolo:tiny"
    budget: int | None = None
    time_limit: float | None = None
    batch_size: int | None = 16
    eval_every: int = 200
    augment: str | None = "standard"
    objective: Objective = "loss"
    start_time: float | None = None
    start_options: dict[str, Any] = field(default_factory=lambda: {"lr": 2e-3})
    start_batch_size: int = 16
    start_eval_every: int = 100
    seed: int = 0
    device: str = "auto"
    train_subset: int | None = None
    pictures: int = 6

    def __post_init__(self) -> None:
        if self.route not in ("scratch", "hybrid", "finetune"):
            raise ConfigError(f"detection route must be scratch, hybrid or finetune, got {self.route!r}")
        if self.route != "scratch" and not self.start_time:
            raise ConfigError(f"the {self.route} route needs start_time (seconds of Adam for its start detector)")
        if (self.route == "finetune") != (self.objective != "loss"):
            raise ConfigError("the finetune route (and only it) takes a non-differentiable objective, f1 or ap50")
        if self.budget is None and self.time_limit is None:
            raise ConfigError("a detection trial needs a budget or a time limit")


# ---------------------------------------------------------------------------------------------- the start
def _start_spec(spec: DetectionTrialSpec) -> Any:
    from gradfree.run import RunSpec

    return RunSpec(task="car-detection", model=spec.model, optimizer="adam", options=dict(spec.start_options),
                   time_limit=spec.start_time, batch_size=spec.start_batch_size, eval_every=spec.start_eval_every,
                   seed=spec.seed, device=spec.device, augment=spec.augment, train_subset=spec.train_subset)


def start_detector(spec: DetectionTrialSpec, *, data_dir: str | Path | None, download: bool,
                   progress: bool | None) -> tuple[nn.Module, dict[str, Any]]:
    """The start detector of ``spec`` (trained now, or read from the cache) and its training record
    (``result.json``: wall time, final metrics; ``history``: its validations)."""
    from gradfree.data.car_detection import dataset_fingerprint
    from gradfree.data.store import cache_dir
    from gradfree.detection.command import load_detector
    from gradfree.run import resolve_device, train_run

    run = _start_spec(spec)
    device = resolve_device(run.device)
    identity = {"version": START_CACHE_VERSION, "run": {**asdict(run), "device": device.type},
                "data": dataset_fingerprint(data_dir=data_dir, download=download)}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:24]
    final = cache_dir() / "detectors" / key
    if not (final / "result.json").is_file():
        for stale in final.parent.glob(f".{key}.*.tmp"):  # an interrupted training of the same start
            shutil.rmtree(stale, ignore_errors=True)
        tmp = final.parent / f".{key}.{os.getpid()}.tmp"
        train_run(run, out_dir=tmp, data_dir=data_dir, download=download, progress=progress)
        (tmp / "identity.json").write_text(json.dumps(identity, indent=2, default=str))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    record = json.loads((final / "result.json").read_text())
    history = [json.loads(line) for line in (final / "metrics.jsonl").read_text().splitlines() if line.strip()]
    record["history"] = [h for h in history if h.get("kind") == "val"]
    record["folder"] = str(final)
    return load_detector(final, device=device).model.train(), record


# ----------------------------------------------------------------------------------------------- running
def _test_record(task: DetectionTask, model: nn.Module, run_dir: Path, count: int) -> tuple[dict[str, Any],
                                                                                          dict[str, str]]:
    """The test precision-recall curve (for the row) and a picture of ``count`` test images."""
    from gradfree.data.box_targets import BoxTargets
    from gradfree.detection.pictures import canvas_panel, detection_grid
    from gradfree.tasks.detection_metrics import average_precision

    test = task.data.test
    dets, truths, _ = task.detections(model, test)
    ap = average_precision(dets, truths)
    recall, precision = ap.curve(0.5)
    pick = np.unique(np.linspace(0, recall.size - 1, min(PR_POINTS, recall.size)).round().astype(int))
    curve = {"recall": recall[pick].round(5).tolist(), "precision": precision[pick].round(5).tolist(),
             "ap50": ap.at(0.5), "map": ap.map}
    artifacts: dict[str, str] = {}
    if count > 0 and len(test):
        rows = sorted(set(np.linspace(0, len(test) - 1, count).round().astype(int).tolist()))
        index = torch.tensor(rows)
        x, y = test.x[index.to(test.x.device)], test.y[index]
        assert isinstance(y, BoxTargets)
        was = model.training
        model.eval()
        with torch.no_grad():
            found = decode(model(x), task.criterion, task.decode_settings)
        model.train(was)
        panels = [canvas_panel(x[i].cpu(), y.letterbox(i), y[i].cpu(), b.cpu(), s.cpu(),
                               title=f"test image {rows[i]}: {y[i].shape[0]} car(s)")
                  for i, (b, s) in enumerate(found)]
        detection_grid(panels, run_dir / "test_images.png", columns=3, score_threshold=task.score_threshold)
        artifacts["test_images"] = "test_images.png"
    return curve, artifacts


def _shifted(history: list[dict[str, Any]], seconds: float, stage: str) -> list[dict[str, Any]]:
    return [{**h, "time": float(h.get("time", 0.0)) + seconds, "stage": stage} for h in history
            if h.get("kind", "val") == "val"]


def run_detection_trial(spec: DetectionTrialSpec, *, run_dir: Path, resume: bool,
                        data_dir: str | Path | None = None, download: bool = True,
                        progress: bool | None = False) -> TrialOutcome:
    """Run one detection trial in ``run_dir`` (see the module docstring)."""
    from gradfree.train.provenance import provenance

    outcome = (_run_scratch if spec.route == "scratch" else _run_head)(
        spec, run_dir=run_dir, resume=resume, data_dir=data_dir, download=download, progress=progress)
    task, model, summary, final, history, resolved = outcome
    curve, artifacts = _test_record(task, model, run_dir, spec.pictures)
    summary["pr_curve"] = curve
    return TrialOutcome(summary=summary, final=final, history=history, headline=asdict(MAP50),
                        artifacts=artifacts, resolved=resolved, provenance=provenance(resolved.get("device", "cpu")))


def _run_scratch(spec: DetectionTrialSpec, *, run_dir: Path, resume: bool, data_dir: str | Path | None,
                 download: bool, progress: bool | None) -> tuple[Any, ...]:
    from gradfree.detection.command import load_detector
    from gradfree.run import RunSpec, resolve_device, train_run
    from gradfree.tasks import build_task

    run = RunSpec(task="car-detection", model=spec.model, optimizer=spec.optimizer, options=dict(spec.options),
                  budget=spec.budget, time_limit=spec.time_limit, batch_size=spec.batch_size,
                  eval_every=spec.eval_every, seed=spec.seed, device=spec.device, augment=spec.augment,
                  train_subset=spec.train_subset)
    result = train_run(run, out_dir=run_dir, resume=resume, data_dir=data_dir, download=download, progress=progress)
    device = resolve_device(spec.device)
    task = build_task("car-detection", data_dir=data_dir, seed=spec.seed, download=download,
                      train_subset=spec.train_subset)
    assert isinstance(task, DetectionTask)
    task.data = task.data.to(device)
    model = load_detector(run_dir, device=device).model
    summary = result.summary()
    final, _ = summary.pop("final"), summary.pop("headline")
    summary["stage_wall_time"] = summary["wall_time"]
    history = [h for h in result.history if h.get("kind") == "val"]
    return task, model, summary, final, history, {"model": spec.model, "device": str(device)}


def _run_head(spec: DetectionTrialSpec, *, run_dir: Path, resume: bool, data_dir: str | Path | None,
              download: bool, progress: bool | None) -> tuple[Any, ...]:
    import time

    from gradfree.optim import build_optimizer
    from gradfree.run import resolve_device
    from gradfree.tasks import build_task
    from gradfree.tasks.detection_features import feature_task, reinitialise_head
    from gradfree.train import TrainConfig, Trainer
    from gradfree.train.files import save_json, save_torch
    from gradfree.train.provenance import provenance

    device = resolve_device(spec.device)
    model, start = start_detector(spec, data_dir=data_dir, download=download, progress=progress)
    if not isinstance(model, Yolo):
        raise ConfigError(f"the {spec.route} route needs a yolo detector, got {spec.model!r}")
    task = build_task("car-detection", data_dir=data_dir, seed=spec.seed, download=download,
                      train_subset=spec.train_subset)
    assert isinstance(task, DetectionTask)
    task.data = task.data.to(device)
    start_val, start_test = task.evaluate(model, task.data.val), task.evaluate(model, task.data.test)
    if spec.route == "hybrid":
        reinitialise_head(model, seed=spec.seed + 3)
    began = time.perf_counter()
    features = feature_task(replace(task, objective=spec.objective), model.backbone)
    feature_seconds = time.perf_counter() - began
    head = model.head
    options = dict(spec.options)
    options.setdefault("seed", spec.seed + 1)
    optimizer = build_optimizer(spec.optimizer, head.parameters(), **options)
    config = TrainConfig(budget=spec.budget, time_limit=spec.time_limit, batch_size=spec.batch_size,
                         eval_every=spec.eval_every, seed=spec.seed + 2, progress=progress,
                         restore_best=spec.route != "finetune")
    run_config = {**asdict(spec), "task": "car-detection", "device": str(device), "start": start["folder"]}
    if not resume:
        save_json({"config": run_config, "provenance": provenance(device)}, run_dir / "config.json")
    result = Trainer(features, head, optimizer, config, out_dir=run_dir, run_config=run_config).fit(resume=resume)
    save_torch(model.state_dict(), run_dir / "model.pt")  # the whole detector (the trainer saved the head)
    final: dict[str, float] = {}
    for name, split in (("train", task.data.train), ("val", task.data.val), ("test", task.data.test)):
        final.update({f"{name}_{k}": v for k, v in task.evaluate(model, split).items()})
    start_time = float(start["wall_time"])
    summary = result.summary()
    summary.pop("final")
    summary.pop("headline")
    summary.update(stage_wall_time=result.wall_time, start_wall_time=start_time, feature_seconds=feature_seconds,
                   wall_time=start_time + feature_seconds + result.wall_time,
                   start_val_map50=start_val["map50"], start_val_map=start_val["map"],
                   start_test_map50=start_test["map50"], start_test_map=start_test["map"],
                   val_map50_gain=final["val_map50"] - start_val["map50"])
    history = (_shifted(start["history"], 0.0, "start")
               + _shifted(result.history, start_time + feature_seconds, spec.route))
    return task, model, summary, final, history, {"model": spec.model, "device": str(device)}


def rebudget(spec: DetectionTrialSpec, budget: int | None, time_limit: float | None) -> DetectionTrialSpec:
    """``--budget`` sets the trial's own stage's evaluations; ``--time`` scales every time of the trial (the
    start's and the stage's) so their total is ``time_limit``; ``eval_every`` scales with the stage."""
    if time_limit is not None:
        total = (spec.time_limit or 0.0) + (spec.start_time or 0.0)
        ratio = time_limit / total if total else 1.0
        stage = (spec.time_limit or time_limit) * ratio
        start = spec.start_time * ratio if spec.start_time else None
        spec = replace(spec, time_limit=stage, start_time=start, budget=budget,
                       eval_every=max(1, round(spec.eval_every * ratio)),
                       start_eval_every=max(1, round(spec.start_eval_every * ratio)))
    elif budget is not None:
        ratio = budget / spec.budget if spec.budget else 1.0
        spec = replace(spec, budget=budget, time_limit=None, eval_every=max(1, round(spec.eval_every * ratio)))
    return spec


TRIAL_KINDS.add("detection", TrialKind(spec=DetectionTrialSpec, run=run_detection_trial, resumable=True,
                                       rebudget=rebudget),
                summary="train a car detector from scratch, as a hybrid (gradient backbone, gradient-free head) "
                        "or by gradient-free fine-tuning on a non-differentiable objective; test pictures")
