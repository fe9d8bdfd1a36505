"""Training detectors end to end: Adam raising mAP, the hybrid (head alone on cached features), train_run."""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import pytest
import torch
from car_fixtures import make_car_folder
from torch import nn

from gradfree.data.car_detection import load_car_detection
from gradfree.data.splits import DataSplits
from gradfree.models import build_model
from gradfree.optim import build_optimizer
from gradfree.run import RunSpec, train_run
from gradfree.tasks import build_task
from gradfree.tasks.detection import DetectionTask
from gradfree.tasks.detection_features import feature_task, reinitialise_head
from gradfree.train import TrainConfig, Trainer, TrainResult

CANVAS = (32, 64)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cars")
    make_car_folder(root)
    return root


@pytest.fixture(scope="module")
def data(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> DataSplits:
    os.environ["GRADFREE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        return load_car_detection(data_dir=folder, canvas=CANVAS, gap=40, download=False)
    finally:
        del os.environ["GRADFREE_CACHE"]


@pytest.fixture(scope="module")
def adam_run(data: DataSplits) -> tuple[TrainResult, nn.Module]:
    """A small detector trained by Adam for 120 steps, with augmentation (shared by two tests)."""
    task = DetectionTask(data)
    model = build_model("yolo:8-8-16-16-16", seed=0, input_shape=data.input_shape, num_classes=1)
    optimizer = build_optimizer("adam", model.parameters(), lr=1e-2)
    result = Trainer(task, model, optimizer, TrainConfig(budget=120, batch_size=16, eval_every=20,
                                                         augment="hflip,scale:0.2", progress=False)).fit()
    return result, model


def test_adam_training_raises_map_end_to_end(adam_run: tuple[TrainResult, nn.Module]) -> None:
    result, _ = adam_run
    start, best = result.history[0]["val_map50"], max(r["val_map50"] for r in result.history)
    assert start < 0.05 and best > 0.6
    assert result.final["test_map50"] > 0.5 and result.monitor == "map50"
    assert {"val_map", "val_f1", "val_precision", "val_recall", "test_map"} <= set(result.history[-1]) | set(
        result.final)


def test_the_hybrid_trains_the_head_alone_on_exact_cached_features(
        data: DataSplits, adam_run: tuple[TrainResult, nn.Module]) -> None:
    task = DetectionTask(data)
    model = copy.deepcopy(adam_run[1])
    trained = task.evaluate(model, data.test)["map50"]
    head = reinitialise_head(model, seed=5)
    reset = task.evaluate(model, data.test)["map50"]
    features = feature_task(task, model.backbone)
    # exact: the head on cached features is the model on the images
    model.eval()
    with torch.no_grad():
        assert torch.allclose(head(features.data.val.x), model(data.val.x), atol=1e-5)
    assert features.evaluate(head, features.data.val) == pytest.approx(task.evaluate(model, data.val))
    backbone_before = [p.detach().clone() for p in model.backbone.parameters()]
    optimizer = build_optimizer("zo-adam", head.parameters(), seed=0, lr=0.01)
    result = Trainer(features, head, optimizer, TrainConfig(budget=6000, batch_size=None, eval_every=1000,
                                                            progress=False)).fit()
    assert all(torch.equal(a, b) for a, b in zip(backbone_before, model.backbone.parameters(), strict=True))
    after = task.evaluate(model, data.test)["map50"]  # the full model, with the head trained gradient-free
    assert reset < 0.05 and after > 0.4 and trained > 0.6
    assert result.evaluations >= 6000 and result.backward == 0
    with pytest.raises(Exception, match="cannot be augmented"):
        features.augmentation("hflip")


def test_train_run_with_the_registered_task_checkpoints_and_resumes(folder: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADFREE_CACHE", str(tmp_path / "cache"))
    spec = RunSpec(task="car-detection", model="yolo:4-4-4-4-4", optimizer="adam", budget=4, batch_size=8,
                   eval_every=2, seed=0, device="cpu", augment="standard")
    out = tmp_path / "run"
    first = train_run(spec, out_dir=out, data_dir=folder, progress=False)
    assert first.evaluations == 4 and math.isfinite(first.final["test_map50"])
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["task"] == "car-detection" and (out / "model.pt").is_file()
    longer = RunSpec(**{**spec.__dict__, "budget": 6})
    with pytest.raises(Exception, match="different settings"):
        train_run(longer, out_dir=out, data_dir=folder, resume=True, progress=False)
    again = train_run(spec, out_dir=out, data_dir=folder, resume=True, progress=False)
    assert again.evaluations == 4
    task = build_task("car-detection-f1", data_dir=folder, download=False)
    assert task.name == "car-detection" and not task.loss_vmappable


