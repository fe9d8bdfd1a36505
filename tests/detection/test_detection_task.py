"""The car-detection task: decoding, metrics in original pixels, the objectives, every optimizer family."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from car_fixtures import make_car_folder
from torch import Tensor, nn

from gradfree.data.box_targets import BoxTargets
from gradfree.data.car_detection import load_car_detection
from gradfree.data.splits import DataSplits
from gradfree.models import build_model
from gradfree.optim import build_optimizer
from gradfree.tasks.detection import DetectionTask, decode
from gradfree.tasks.detection_features import backbone_features
from gradfree.tasks.detection_loss import DetectionLoss
from gradfree.train import TrainConfig, Trainer

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


class Oracle(nn.Module):
    """Outputs, for the images of a split, the raw predictions that decode to their true boxes exactly: each
    box's centre cell gets logit +8 and the box's deltas, every other cell logit -8. Images are recognised
    by their position in the split (written into pixel (0, 0, 0))."""

    def __init__(self, targets: BoxTargets, loss: DetectionLoss, grid: tuple[int, int]) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        h, w = grid
        points, coder = loss.grid(h, w, torch.device("cpu"))
        out = torch.zeros(len(targets), 5, h * w)
        out[:, 0] = -8.0
        for i in range(len(targets)):
            for box in targets[i]:
                centre = (box[:2] + box[2:]) / 2
                cell = int(torch.argmin(((points - centre) ** 2).sum(dim=1)))
                out[i, 0, cell] = 8.0
                out[i, 1:, cell] = coder.encode(box[None], points[cell][None])[0]
        self.register_buffer("table", out.view(len(targets), 5, h, w))

    def forward(self, x: Tensor) -> Tensor:
        return self.table[x[:, 0, 0, 0].round().long()] * self.scale


def _indexed(data: DataSplits) -> DataSplits:
    """The splits with each image's index in its split written into pixel (0, 0, 0) (for the oracle)."""
    def mark(x: Tensor) -> Tensor:
        x = x.clone()
        x[:, 0, 0, 0] = torch.arange(x.shape[0], dtype=x.dtype)
        return x

    from gradfree.data.splits import Split

    return DataSplits(data.name, *(Split(mark(s.x), s.y) for s in (data.train, data.val, data.test)),
                      num_classes=1)


def test_an_oracle_scores_one_in_original_pixels(data: DataSplits) -> None:
    task = DetectionTask(_indexed(data))
    split = task.data.val
    assert isinstance(split.y, BoxTargets)
    oracle = Oracle(split.y, task.criterion, (CANVAS[0] // 8, CANVAS[1] // 8))
    metrics = task.evaluate(oracle, split)
    assert metrics["map50"] == pytest.approx(1.0) and metrics["map"] == pytest.approx(1.0)
    assert metrics["f1"] == 1.0 and metrics["precision"] == 1.0 and metrics["recall"] == 1.0
    dets, truths, _ = task.detections(oracle, split)
    # boxes come back in the original 96x54 pixels
    assert max(float(t.max()) for t in truths if t.numel()) > CANVAS[1]
    for d, t in zip(dets, truths, strict=True):
        found = torch.as_tensor(d.boxes)
        assert found.shape == t.shape
        order = lambda b: b[torch.argsort(b[:, 0] * 1e4 + b[:, 1])]  # noqa: E731
        assert torch.allclose(order(found), order(t), atol=1e-3)


def test_the_f1_and_ap_objectives_are_zero_for_the_oracle_and_one_for_silence(data: DataSplits) -> None:
    for objective in ("f1", "ap50"):
        task = DetectionTask(_indexed(data), objective=objective)  # type: ignore[arg-type]
        assert not task.loss_vmappable
        split = task.data.train
        assert isinstance(split.y, BoxTargets)
        oracle = Oracle(split.y, task.criterion, (CANVAS[0] // 8, CANVAS[1] // 8))
        assert task.loss_fn(oracle(split.x), split.y).item() == 0.0
        silent = torch.full((len(split), 5, 4, 8), -20.0)
        assert task.loss_fn(silent, split.y).item() == 1.0
        assert task.evaluate(oracle, split)["loss"] == 0.0
    assert DetectionTask(data).loss_vmappable


def test_decode_suppresses_overlaps_and_drops_low_scores() -> None:
    loss = DetectionLoss((16, 32))
    out = torch.full((1, 5, 2, 4), -10.0)  # score 4.5e-5: below the 0.001 threshold
    out[0, 1:3] = 0.0
    out[0, 3:5] = math.log(2)  # every cell predicts a 64x64 box on its centre
    out[0, 0, 0, 0], out[0, 0, 0, 1], out[0, 0, 1, 3] = 3.0, 2.0, 1.0
    (boxes, scores), = decode(out, loss)
    # cells (4, 4) and (12, 4): IoU 56 * 64 / (2 * 64 * 64 - 56 * 64) = 0.78 > 0.6, the second suppressed;
    # cell (28, 12) overlaps the first by 40 * 56 / (2 * 4096 - 2240) = 0.38 and stays
    assert torch.allclose(scores, torch.sigmoid(torch.tensor([3.0, 1.0])))
    assert boxes.tolist() == [[-28.0, -28.0, 36.0, 36.0], [-4.0, -20.0, 60.0, 44.0]]


@pytest.mark.parametrize("optimizer", ["zo-adam", "mezo", "sep-cma", "rso"])
def test_every_gradient_free_family_trains_a_detector_step(data: DataSplits, optimizer: str) -> None:
    task = DetectionTask(data)
    model = build_model("yolo:4-4-4-4-4", seed=0, input_shape=data.input_shape, num_classes=1)
    before = [p.detach().clone() for p in model.parameters()]
    options = {"weights_per_step": 16} if optimizer == "rso" else {}  # rso: a step tries 16 weights, not 1024
    result = Trainer(task, model, build_optimizer(optimizer, model.parameters(), seed=0, **options),
                     TrainConfig(budget=40, batch_size=16, eval_every=1000, progress=False)).fit()
    assert result.backward == 0 and result.evaluations >= 40
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert backbone_features(model.backbone, data.val.x).shape == (len(data.val), 4, 4, 8)


def test_the_f1_objective_decodes_only_above_its_threshold_and_loses_nothing(data: DataSplits) -> None:
    from gradfree.tasks.detection import in_original_pixels
    from gradfree.tasks.detection_metrics import count_matches

    task = DetectionTask(data, objective="f1")
    split = data.train
    assert isinstance(split.y, BoxTargets)
    for seed in range(3):
        out = torch.randn(len(split), 5, 4, 8, generator=torch.Generator().manual_seed(seed))
        out[:, 0] += 1.0  # many cells above and below the 0.25 threshold
        dets, truths = in_original_pixels(decode(out, task.criterion), split.y)  # the full decode (score 0.001)
        expected = 1.0 - count_matches(dets, truths, score_threshold=0.25).f1
        assert task.loss_fn(out, split.y).item() == pytest.approx(expected, abs=1e-6)
