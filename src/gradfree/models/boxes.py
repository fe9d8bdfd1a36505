"""Box operations for detection: areas, IoU and GIoU (pairwise and element-wise), the point box coder, NMS.

Boxes are ``(..., 4)`` tensors ``(x1, y1, x2, y2)`` in pixels, ``x2 >= x1`` and ``y2 >= y1`` (a box of zero
width has zero area). Where a union or an enclosing box has zero area the IoU (GIoU) is defined as 0, not
NaN, so a degenerate prediction costs the most rather than poisoning a loss.

The element-wise forms (:func:`elementwise_iou`, :func:`elementwise_giou`) are differentiable and contain no
data-dependent branches, so a loss built on them runs under ``torch.vmap`` over a population of parameter
vectors; :func:`nms` and :func:`batched_nms` are for inference only.

References:
    IoU as the PASCAL VOC / COCO overlap criterion (Everingham et al. 2010, sec. 4.4; Lin et al. 2014);
    GIoU: H. Rezatofighi et al., "Generalized Intersection over Union", CVPR 2019, Alg. 1 and 2;
    greedy NMS as in R-CNN / Fast R-CNN (Girshick 2015) and every YOLO since Redmon et al. 2016;
    the point coder (offsets from a grid point in strides, log-sizes) follows YOLOX (Ge et al. 2021, sec. 2.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gradfree.errors import ConfigError

MAX_LOG_SIZE = 10.0
""":meth:`PointCoder.decode` clamps log-sizes to ``[-MAX_LOG_SIZE, MAX_LOG_SIZE]`` so ``exp`` cannot overflow."""


def box_area(boxes: Tensor) -> Tensor:
    """Areas ``(...)`` of boxes ``(..., 4)``; negative extents count as zero."""
    return (boxes[..., 2] - boxes[..., 0]).clamp_min(0) * (boxes[..., 3] - boxes[..., 1]).clamp_min(0)


def _safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den``, 0 where ``den`` is 0 (and differentiable elsewhere)."""
    positive = den > 0
    return torch.where(positive, num / torch.where(positive, den, torch.ones_like(den)), torch.zeros_like(num))


def _inter_union(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Intersection and union areas of boxes ``a`` and ``b`` broadcast against each other."""
    w = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp_min(0)
    h = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp_min(0)
    inter = w * h
    return inter, box_area(a) + box_area(b) - inter


def _enclosing_area(a: Tensor, b: Tensor) -> Tensor:
    w = torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])
    h = torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])
    return w.clamp_min(0) * h.clamp_min(0)


def elementwise_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of corresponding boxes: ``a (..., 4)`` and ``b (..., 4)`` broadcast to ``(...)``; in [0, 1]."""
    inter, union = _inter_union(a, b)
    return _safe_ratio(inter, union)


def elementwise_giou(a: Tensor, b: Tensor) -> Tensor:
    """Generalized IoU of corresponding boxes (Rezatofighi et al. 2019, Alg. 1): ``IoU - (C - U) / C`` with
    ``C`` the area of the smallest box enclosing both; in [-1, 1], 1 only for equal boxes."""
    inter, union = _inter_union(a, b)
    enclosing = _enclosing_area(a, b)
    return _safe_ratio(inter, union) - _safe_ratio(enclosing - union, enclosing)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU: ``a (N, 4)``, ``b (M, 4)`` -> ``(N, M)``."""
    return elementwise_iou(a[:, None, :], b[None, :, :])


def generalized_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise GIoU: ``a (N, 4)``, ``b (M, 4)`` -> ``(N, M)``."""
    return elementwise_giou(a[:, None, :], b[None, :, :])


@dataclass(frozen=True)
class PointCoder:
    """Boxes relative to grid points: offsets of the centre in strides and log-sizes over a size prior.

    For a point ``(px, py)`` of a grid with stride ``s`` and a prior size ``p = prior * s`` pixels::

        decode(d) = (x - w / 2, y - h / 2, x + w / 2, y + h / 2),
        x = px + d0 s,  y = py + d1 s,  w = p exp(d2),  h = p exp(d3);

    :meth:`encode` is its inverse, so ``decode(encode(b)) == b`` for any box of positive size whose
    log-sizes lie within ``MAX_LOG_SIZE`` (up to rounding). The prior only sets what a zero output means:
    with ``prior=4`` an untrained head predicts 32x32-pixel boxes on a stride-8 grid, near the typical car.

    Attributes:
        stride: pixels between grid points.
        prior: the box size a zero log-size decodes to, in strides.
    """

    stride: float
    prior: float = 1.0

    def __post_init__(self) -> None:
        if not (self.stride > 0 and self.prior > 0):
            raise ConfigError(f"box coder needs stride > 0 and prior > 0, got {self.stride}, {self.prior}")

    def decode(self, deltas: Tensor, points: Tensor) -> Tensor:
        """Boxes ``(..., 4)`` from ``deltas (..., 4)`` at ``points (..., 2)`` (pixels; broadcast)."""
        s, size = self.stride, self.prior * self.stride
        x = points[..., 0] + deltas[..., 0] * s
        y = points[..., 1] + deltas[..., 1] * s
        w = size * torch.exp(deltas[..., 2].clamp(-MAX_LOG_SIZE, MAX_LOG_SIZE))
        h = size * torch.exp(deltas[..., 3].clamp(-MAX_LOG_SIZE, MAX_LOG_SIZE))
        return torch.stack((x - w / 2, y - h / 2, x + w / 2, y + h / 2), dim=-1)

    def encode(self, boxes: Tensor, points: Tensor) -> Tensor:
        """Deltas ``(..., 4)`` of ``boxes (..., 4)`` at ``points (..., 2)``; boxes must have positive size."""
        s, size = self.stride, self.prior * self.stride
        w, h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
        x, y = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2
        return torch.stack(((x - points[..., 0]) / s, (y - points[..., 1]) / s,
                            torch.log(w / size), torch.log(h / size)), dim=-1)


def grid_points(height: int, width: int, stride: float, *, device: torch.device | str = "cpu") -> Tensor:
    """Centres of the cells of a ``height x width`` grid with ``stride`` pixels, row-major: ``(H * W, 2)``
    holding ``((j + 0.5) s, (i + 0.5) s)`` for row ``i``, column ``j``."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx.reshape(-1), gy.reshape(-1)), dim=-1)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

    Boxes are visited in decreasing score (ties in their given order); a box is kept unless its IoU with an
    already kept box exceeds ``iou_threshold``. So no two kept boxes overlap by more than the threshold, and
    every suppressed box overlaps a kept one of at least its score by more than it.

    Shapes:
        ``boxes (K, 4)``, ``scores (K,)`` -> int64 ``(kept,)`` on ``boxes``' device.
    """
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:1]:
        raise ConfigError(f"nms needs boxes (K, 4) and scores (K,), got {tuple(boxes.shape)} and "
                          f"{tuple(scores.shape)}")
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    b = boxes[order].detach().cpu().double().numpy()  # numpy: a 300 x 300 IoU costs a fifth of torch's here
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    w = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = area[:, None] + area[None, :] - inter
    over = inter > iou_threshold * union  # IoU > t, and never for an empty union (inter is 0 there)
    removed = np.zeros(b.shape[0], dtype=bool)
    keep = []
    for i in range(b.shape[0]):
        if removed[i]:
            continue
        keep.append(i)
        removed |= over[i]
    return order[torch.as_tensor(keep, dtype=torch.int64, device=boxes.device)]


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """:func:`nms` within each group (an image, a class) independently: boxes of different groups never
    suppress each other. Returns the kept indices in decreasing score (ties in index order).

    Each group is suppressed on its own, so memory grows with the largest group's square, not the total's
    (torchvision's trick of shifting groups apart builds one matrix over every box).

    Shapes:
        ``boxes (K, 4)``, ``scores (K,)``, integer ``groups (K,)`` -> int64 ``(kept,)``.
    """
    if groups.shape != scores.shape:
        raise ConfigError(f"batched_nms needs one group per box, got {tuple(groups.shape)} for "
                          f"{tuple(scores.shape)} scores")
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    kept = []
    for g in torch.unique(groups).tolist():
        members = torch.nonzero(groups == g, as_tuple=False).flatten()
        kept.append(members[nms(boxes[members], scores[members], iou_threshold)])
    index = torch.sort(torch.cat(kept)).values
    return index[torch.argsort(scores[index], descending=True, stable=True)]
