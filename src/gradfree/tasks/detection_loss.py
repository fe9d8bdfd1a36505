"""The detector's training loss: a fixed, ground-truth-only target assignment, GIoU boxes, centerness objectness.

Anchor-free, after YOLOX / FCOS, and chosen over YOLOv1's loss for two reasons. YOLOv1 makes one cell
responsible for each box and regresses square-rooted sizes with squared errors (its lambda_coord = 5,
lambda_noobj = 0.5), which on a 960-cell grid gives one positive per car and a box loss that does not track
IoU; here every cell near a car's centre learns it, and the box loss is GIoU, which is the overlap itself.
Second, the assignment depends on the ground truth alone, so the loss is a fixed function of the network's
outputs — no matching that looks at the predictions (SimOTA, YOLOv8's task-aligned assigner) — and it runs
under ``torch.vmap``: every population method scores its whole population in one call.

For a batch, with grid points ``p`` (cell centres) at stride ``s``:

* **positives** (centre sampling, YOLOX sec. 2.2 "multi positives" / FCOS sec. 3.1): a cell is positive for
  a box when its centre lies inside the box and within ``radius`` strides (2.5) of the box's centre in
  both directions; the cell holding the centre is always positive (so a car smaller than a cell still has
  one). A cell positive for several boxes takes the smallest (FCOS's rule for ambiguous locations);
* **box loss**: ``1 - GIoU`` between each positive cell's decoded box and its target (Rezatofighi et al.
  2019), summed over positives;
* **objectness**: binary cross-entropy over every cell; the target of a positive cell is its centerness
  in its box (FCOS sec. 3.3: ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` from the distances to
  the box's sides) divided by the best centerness among that box's positive cells, of any other cell 0.
  So each car's central cell learns score 1 and its neighbours less: NMS keeps the central cell's box,
  and scores rank detections by how central, hence how well placed, they are — without looking at the
  predictions. (``quality="iou"`` uses YOLOv5's target instead, the detached IoU of the cell's own
  prediction with its box. It trains as well by backprop, but it makes the loss depend on the predictions
  in a way backprop ignores and a zeroth-order method does not: lowering a weakly scored cell's IoU lowers
  the loss, which pulls a gradient-free estimate away from better boxes.) On the car set the two reached
  test mAP@0.5 / mAP@0.5:0.95 of 0.82 / 0.35 (centerness) and 0.78 / 0.34 (IoU) after 90 s of Adam (one
  seed each, one thread, so within noise);
* ``loss = (box_weight * box + objectness) / max(positives, 1)``, box_weight 5 (YOLOX's weight for its
  IoU loss).

The assignment of the last target seen is cached (a zeroth-order step evaluates one batch many times).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from gradfree.data.ragged import Ragged
from gradfree.errors import ConfigError
from gradfree.models.boxes import PointCoder, box_area, elementwise_giou, elementwise_iou, grid_points

CENTER_RADIUS = 2.5
BOX_WEIGHT = 5.0
Quality = Literal["centerness", "iou"]
SIZE_PRIOR = 4.0
"""A zero log-size decodes to a box of ``SIZE_PRIOR`` strides (32 px at stride 8, near the median car)."""


@dataclass(frozen=True)
class Assignment:
    """Which cells learn which box.

    Attributes:
        positive: ``(N, A)`` float 0/1.
        boxes: ``(N, A, 4)`` each positive cell's target box (zeros elsewhere), canvas pixels.
        quality: ``(N, A)`` each positive cell's centerness in its box over the best of that box's cells
            (so each box's best cell has 1; 0 elsewhere): the objectness target of ``quality="centerness"``.
        count: the number of positive cells, at least 1 (the loss's normaliser).
    """

    positive: Tensor
    boxes: Tensor
    quality: Tensor
    count: float


def assign(targets: Ragged, points: Tensor, stride: float, *, radius: float = CENTER_RADIUS) -> Assignment:
    """The centre-sampling assignment of ``targets`` (boxes per image) to cells at ``points (A, 2)``."""
    n, a = len(targets), int(points.shape[0])
    device = points.device
    positive = torch.zeros(n, a, device=device)
    quality = torch.zeros(n, a, device=device)
    boxes = torch.zeros(n, a, 4, device=device)
    for i in range(n):
        gt = targets[i].to(device=device, dtype=points.dtype)
        if gt.shape[0] == 0:
            continue
        centre = (gt[:, :2] + gt[:, 2:]) / 2  # (G, 2)
        px, py = points[None, :, 0], points[None, :, 1]  # (1, A)
        inside = (px > gt[:, 0:1]) & (px < gt[:, 2:3]) & (py > gt[:, 1:2]) & (py < gt[:, 3:4])
        near = ((px - centre[:, 0:1]).abs() <= radius * stride) & ((py - centre[:, 1:2]).abs() <= radius * stride)
        own = ((px - centre[:, 0:1]).abs() <= stride / 2) & ((py - centre[:, 1:2]).abs() <= stride / 2)
        candidate = (inside & near) | own  # (G, A)
        area = torch.where(candidate, box_area(gt)[:, None], torch.full_like(candidate, float("inf"),
                                                                               dtype=points.dtype))
        best_area, best = area.min(dim=0)
        hit = torch.isfinite(best_area)
        positive[i] = hit.to(positive.dtype)
        boxes[i] = torch.where(hit[:, None], gt[best], torch.zeros_like(boxes[i]))
        # centerness of each cell in its box, divided by the best of that box's cells
        ctr = centerness(boxes[i], points) * positive[i]
        top = torch.zeros(gt.shape[0], device=device).scatter_reduce(0, best, ctr, "amax", include_self=True)
        quality[i] = torch.where(hit, ctr / top[best].clamp_min(1e-12), torch.zeros_like(ctr))
        quality[i] = torch.where(hit & (top[best] <= 0), torch.ones_like(ctr), quality[i])
    return Assignment(positive, boxes, quality, max(float(positive.sum()), 1.0))


def centerness(boxes: Tensor, points: Tensor) -> Tensor:
    """FCOS's centerness of ``points (A, 2)`` in ``boxes (A, 4)``: ``sqrt(min(l, r) / max(l, r) * min(t, b) /
    max(t, b))`` with ``l, r, t, b`` the distances to the sides (0 outside the box)."""
    lr = torch.stack((points[:, 0] - boxes[:, 0], boxes[:, 2] - points[:, 0]), dim=1).clamp_min(0)
    tb = torch.stack((points[:, 1] - boxes[:, 1], boxes[:, 3] - points[:, 1]), dim=1).clamp_min(0)
    ratio = (lr.min(dim=1).values / lr.max(dim=1).values.clamp_min(1e-12)
             * tb.min(dim=1).values / tb.max(dim=1).values.clamp_min(1e-12))
    return ratio.sqrt()


class DetectionLoss:
    """``loss(output (N, 5, h, w), targets) -> scalar`` as described in the module docstring.

    Args:
        canvas: the input images' ``(height, width)``; the stride is ``height / h``.
        prior: the box coder's size prior, in strides.
        radius: the centre-sampling radius, in strides.
        box_weight: weight of the GIoU term.
    """

    def __init__(self, canvas: tuple[int, int], *, prior: float = SIZE_PRIOR, radius: float = CENTER_RADIUS,
                 box_weight: float = BOX_WEIGHT, quality: Quality = "centerness") -> None:
        if not (radius > 0 and box_weight >= 0):
            raise ConfigError(f"detection loss needs radius > 0 and box_weight >= 0, got {radius}, {box_weight}")
        if quality not in ("centerness", "iou"):
            raise ConfigError(f"objectness quality must be centerness or iou, got {quality!r}")
        self.canvas, self.prior, self.radius, self.box_weight = canvas, prior, radius, box_weight
        self.quality = quality
        self._grids: dict[tuple[int, int, str], tuple[Tensor, PointCoder]] = {}
        self._last: tuple[Ragged, tuple[int, int, str], Assignment] | None = None

    def grid(self, h: int, w: int, device: torch.device) -> tuple[Tensor, PointCoder]:
        """Cell centres ``(h * w, 2)`` and the box coder of an ``h x w`` output grid."""
        key = (h, w, str(device))
        if key not in self._grids:
            if self.canvas[0] % h or self.canvas[1] % w or self.canvas[0] // h != self.canvas[1] // w:
                raise ConfigError(f"a {h}x{w} output grid does not tile the {self.canvas[0]}x{self.canvas[1]} "
                                  "canvas with square cells")
            stride = self.canvas[0] // h
            self._grids[key] = (grid_points(h, w, stride, device=device), PointCoder(stride, self.prior))
        return self._grids[key]

    def assignment(self, targets: Ragged, h: int, w: int, device: torch.device) -> Assignment:
        """The assignment of ``targets`` on an ``h x w`` grid (cached for the last targets seen)."""
        key = (h, w, str(device))
        if self._last is not None and self._last[0] is targets and self._last[1] == key:
            return self._last[2]
        points, coder = self.grid(h, w, device)
        result = assign(targets, points, coder.stride, radius=self.radius)
        self._last = (targets, key, result)
        return result

    def __call__(self, output: Tensor, targets: Ragged) -> Tensor:
        if output.ndim != 4 or output.shape[1] != 5:
            raise ConfigError(f"the detection loss needs outputs (N, 5, h, w), got {tuple(output.shape)}")
        n, _, h, w = output.shape
        if len(targets) != n:
            raise ConfigError(f"{n} outputs but targets for {len(targets)} images")
        points, coder = self.grid(h, w, output.device)
        target = self.assignment(targets, h, w, output.device)
        dtype = output.dtype
        positive, target_boxes = target.positive.to(dtype), target.boxes.to(dtype)
        pred = output.flatten(2).transpose(1, 2)  # (N, A, 5)
        boxes = coder.decode(pred[..., 1:], points.to(dtype))
        giou = elementwise_giou(boxes, target_boxes)
        if self.quality == "iou":
            quality = elementwise_iou(boxes, target_boxes).detach().clamp_min(0)
        else:
            quality = target.quality.to(dtype)
        box = (positive * (1 - giou)).sum()
        objectness = F.binary_cross_entropy_with_logits(pred[..., 0], positive * quality, reduction="sum")
        return (self.box_weight * box + objectness) / target.count
