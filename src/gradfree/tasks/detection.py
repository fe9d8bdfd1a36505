"""Detection as a :class:`~gradfree.tasks.protocol.Task`: the car set, the detector's loss, COCO mAP.

* ``loss_fn``: the differentiable training loss of :mod:`gradfree.tasks.detection_loss` (vmappable); or, for
  gradient-free fine-tuning on what backprop cannot optimise, ``1 - F1`` at IoU 0.5 or ``1 - AP@0.5`` of the
  batch's decoded, NMS'd detections (``objective="f1"`` / ``"ap50"``: piecewise constant in the weights,
  not vmappable, so population evaluation loops);
* ``evaluate``: decodes every image's detections (score above 0.001, the 300 best before greedy NMS at IoU
  0.6, then at most 100: the settings of YOLOv5's ``val.py``), maps them back to the original pixels with
  each image's letterbox, and reports ``map50`` (the headline and the monitor), ``map`` (mAP@0.5:0.95),
  ``precision``, ``recall`` and ``f1`` at a score threshold (0.25) and IoU 0.5, and the ``loss``;
* ``augmentation``: :mod:`gradfree.data.box_augment` (boxes move with their images).

Registered as ``car-detection`` (and ``car-detection-f1`` / ``car-detection-ap50`` for the fine-tuning
objectives) with ``yolo:tiny`` as the default model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from gradfree.data.box_augment import BoxAugmentation, build_box_augmentation
from gradfree.data.box_targets import BoxTargets
from gradfree.data.images import Letterbox
from gradfree.data.ragged import Ragged
from gradfree.data.splits import DataSplits, Split
from gradfree.errors import ConfigError
from gradfree.models.boxes import nms
from gradfree.tasks.detection_loss import DetectionLoss
from gradfree.tasks.detection_metrics import ImageDetections, average_precision, count_matches
from gradfree.tasks.protocol import Metric

MAP50 = Metric("map50", higher_is_better=True, label="mAP@0.5")
MAP = Metric("map", higher_is_better=True, label="mAP@0.5:0.95")

Objective = Literal["loss", "f1", "ap50"]


@dataclass(frozen=True)
class DecodeSettings:
    """How raw outputs become detections.

    Attributes:
        score_threshold: detections scoring below are dropped before NMS (0.001, for AP).
        pre_nms: at most this many candidates per image enter NMS (the best-scoring).
        nms_iou: greedy NMS threshold.
        max_detections: detections kept per image.
    """

    score_threshold: float = 0.001
    pre_nms: int = 300
    nms_iou: float = 0.6
    max_detections: int = 100


def decode(output: Tensor, loss: DetectionLoss, settings: DecodeSettings = DecodeSettings()) -> list[
        tuple[Tensor, Tensor]]:
    """Per image, its detections in canvas pixels: ``[(boxes (k, 4), scores (k,)), ...]`` in decreasing score.

    Shapes:
        ``output (N, 5, h, w)``: objectness logit and box deltas per cell.
    """
    n, _, h, w = output.shape
    points, coder = loss.grid(h, w, output.device)
    pred = output.detach().flatten(2).transpose(1, 2)
    scores = torch.sigmoid(pred[..., 0])  # (N, A)
    k = min(settings.pre_nms, h * w)
    top_scores, top = scores.topk(k, dim=1)
    deltas = torch.gather(pred[..., 1:], 1, top[..., None].expand(-1, -1, 4))
    boxes = coder.decode(deltas, points[top])  # (N, k, 4)
    results: list[tuple[Tensor, Tensor]] = []
    for i in range(n):
        keep = top_scores[i] >= settings.score_threshold  # topk is sorted: the kept ones lead
        b, s = boxes[i][keep], top_scores[i][keep]
        kept = nms(b, s, settings.nms_iou)[: settings.max_detections]
        results.append((b[kept], s[kept]))
    return results


def in_original_pixels(detections: Sequence[tuple[Tensor, Tensor]], targets: BoxTargets) -> tuple[
        list[ImageDetections], list[Tensor]]:
    """Detections and true boxes of each image mapped from the canvas back to its original pixels."""
    dets, truths = [], []
    for i, (boxes, scores) in enumerate(detections):
        frame: Letterbox = targets.letterbox(i)
        dets.append(ImageDetections.of(frame.to_original(boxes.double()), scores))
        truths.append(frame.to_original(targets[i].double(), clip=False))
    return dets, truths


@dataclass
class DetectionTask:
    """One-class detection on letterboxed images with :class:`BoxTargets`.

    Attributes:
        data: the splits; ``x (N, 3, H, W)`` (or cached features, see
            :mod:`gradfree.tasks.detection_features`), ``y`` box targets in canvas pixels.
        default_model: the model spec used when none is given.
        canvas: the images' ``(height, width)``, which fixes the stride of an output grid.
        objective: what ``loss_fn`` returns: the training loss, or ``1 - F1`` / ``1 - AP@0.5`` of the batch.
        score_threshold: where precision, recall and F1 are counted (and the F1 objective).
        decode_settings: how outputs become detections.
        augment_allowed: false for cached-feature tasks, whose inputs are not images.
        monitor_metric: what validation follows (mAP@0.5; on this split validation mAP@0.5 nears 1.0 within
            minutes while the test range's does not, so ``MAP``, mAP@0.5:0.95, separates later weights better).
    """

    data: DataSplits
    default_model: str = "yolo:tiny"
    canvas: tuple[int, int] = (0, 0)
    objective: Objective = "loss"
    score_threshold: float = 0.25
    decode_settings: DecodeSettings = field(default_factory=DecodeSettings)
    augment_allowed: bool = True
    monitor_metric: Metric = MAP50

    def __post_init__(self) -> None:
        if self.canvas == (0, 0):
            self.canvas = (int(self.data.train.x.shape[-2]), int(self.data.train.x.shape[-1]))
        if self.objective not in ("loss", "f1", "ap50"):
            raise ConfigError(f"detection objective must be loss, f1 or ap50, got {self.objective!r}")
        for split in (self.data.train, self.data.val, self.data.test):
            if not isinstance(split.y, BoxTargets):
                raise ConfigError("a detection task needs BoxTargets (boxes with each image's letterbox)")
        self.criterion = DetectionLoss(self.canvas)

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self.data.name

    @property
    def headline(self) -> Metric:
        """mAP@0.5."""
        return MAP50

    @property
    def monitor(self) -> Metric:
        """mAP@0.5 on validation by default (``monitor_metric``): the loss is a poor proxy for it."""
        return self.monitor_metric

    @property
    def loss_vmappable(self) -> bool:
        """The training loss is (ground-truth-only assignment); the F1 / AP objectives are not (NMS, matching)."""
        return self.objective == "loss"

    def loss_fn(self, output: Tensor, target: Ragged) -> Tensor:
        """The batch's training loss, or ``1 - F1`` / ``1 - AP@0.5`` of its detections (see ``objective``)."""
        if self.objective == "loss":
            return self.criterion(output, target)
        if not isinstance(target, BoxTargets):
            raise ConfigError("the F1 / AP objectives need BoxTargets")
        settings = self.decode_settings
        if self.objective == "f1":  # boxes under the threshold neither count nor suppress one above it
            settings = replace(settings, score_threshold=max(settings.score_threshold, self.score_threshold))
        dets, truths = in_original_pixels(decode(output, self.criterion, settings), target)
        if self.objective == "f1":
            value = 1.0 - count_matches(dets, truths, score_threshold=self.score_threshold).f1
        else:
            ap = average_precision(dets, truths, thresholds=(0.5,)).at(0.5)
            value = 1.0 - (ap if ap == ap else 1.0)  # no box in the batch: nothing to find, nothing lost
        return torch.tensor(value, dtype=output.dtype, device=output.device)

    def detections(self, model: nn.Module, split: Split, *, chunk: int = 64) -> tuple[list[ImageDetections],
                                                                                      list[Tensor], float]:
        """``model``'s detections on ``split`` and the true boxes, in original pixels, and the mean training
        loss (eval mode, no gradients; the model's mode is restored)."""
        was_training = model.training
        model.eval()
        dets: list[ImageDetections] = []
        truths: list[Tensor] = []
        loss_sum = 0.0
        try:
            with torch.no_grad():
                for start in range(0, len(split), chunk):
                    rows = torch.arange(start, min(start + chunk, len(split)))
                    x, y = split.x[rows.to(split.x.device)], split.y[rows]
                    assert isinstance(y, BoxTargets)
                    out = model(x)
                    loss_sum += float(self.criterion(out, y)) * len(rows)
                    d, t = in_original_pixels(decode(out, self.criterion, self.decode_settings), y)
                    dets += d
                    truths += t
        finally:
            model.train(was_training)
        return dets, truths, loss_sum / max(len(split), 1)

    def evaluate(self, model: nn.Module, split: Split) -> dict[str, float]:
        """``loss``, ``map50``, ``map``, and ``precision`` / ``recall`` / ``f1`` at the score threshold."""
        dets, truths, loss = self.detections(model, split)
        ap = average_precision(dets, truths)
        counts = count_matches(dets, truths, score_threshold=self.score_threshold)
        if self.objective == "f1":
            loss = 1.0 - counts.f1
        elif self.objective == "ap50":
            loss = 1.0 - ap.at(0.5)
        return {"loss": loss, "map50": ap.at(0.5), "map": ap.map, "precision": counts.precision,
                "recall": counts.recall, "f1": counts.f1}

    def augmentation(self, spec: str | None) -> BoxAugmentation | None:
        """Flips, zooms, shifts and colour jitter with the boxes (see :mod:`gradfree.data.box_augment`)."""
        if spec and not self.augment_allowed:
            raise ConfigError("this task's inputs are cached features, not images: they cannot be augmented "
                              "(cached features are exact only for the unaugmented images)")
        return build_box_augmentation(spec)


def car_detection_task(*, data_dir: str | Path | None = None, seed: int = 0, download: bool = True,
                       train_subset: int | None = None, objective: Objective = "loss") -> DetectionTask:
    """The registered ``car-detection`` task (:func:`gradfree.data.car_detection.load_car_detection`)."""
    from gradfree.data.car_detection import load_car_detection

    data = load_car_detection(data_dir=data_dir, download=download, train_subset=train_subset, seed=seed)
    return DetectionTask(data, objective=objective)


def _f1_task(**options: object) -> DetectionTask:
    return car_detection_task(objective="f1", **options)  # type: ignore[arg-type]


def _ap50_task(**options: object) -> DetectionTask:
    return car_detection_task(objective="ap50", **options)  # type: ignore[arg-type]


def register() -> None:
    """Add the car-detection tasks to :data:`~gradfree.tasks.registry.TASKS` (called once, on import)."""
    from gradfree.tasks.registry import TASKS

    TASKS.add("car-detection", car_detection_task,
              summary="Kaggle car detection, 1 class, 320x192 letterbox; frame-range split 324/81/88 images")
    TASKS.add("car-detection-f1", _f1_task,
              summary="car-detection with loss 1 - F1 at IoU 0.5 (non-differentiable; gradient-free only)")
    TASKS.add("car-detection-ap50", _ap50_task,
              summary="car-detection with loss 1 - AP@0.5 of the batch (non-differentiable; gradient-free only)")


register()
