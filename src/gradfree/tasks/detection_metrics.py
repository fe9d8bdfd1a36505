"""COCO-style average precision, and precision / recall / F1 at a score threshold: our own implementation.

It follows the COCO evaluation (``pycocotools.cocoeval.COCOeval``, bounding boxes, one category, area range
"all") step for step, and the tests check it against pycocotools to 1e-6:

1. per image, detections sorted by score (stable) and cut to ``max_detections`` (100);
2. per IoU threshold ``t`` (0.50:0.05:0.95), greedy matching in score order: a detection takes the
   not-yet-matched ground-truth box of highest IoU, provided that IoU is at least ``t`` (a later box wins
   a tie, as in COCOeval's loop); unmatched detections are false positives, including every detection on
   an image without boxes;
3. all images' detections merged and sorted by score (stable, image order breaking ties), cumulative true
   and false positives give recall ``tp / num_gt`` and precision ``tp / (tp + fp)``;
4. precision is made monotone (its running maximum from the right) and read at the 101 recall points
   0, 0.01, ..., 1 (``searchsorted`` on the left; points beyond the reached recall read 0); AP is their mean.

mAP@0.5 is the AP at ``t = 0.5``, mAP@0.5:0.95 the mean over the ten thresholds (with one class, mAP = AP).
Where there is no ground-truth box at all, AP is undefined: NaN here (COCOeval reports -1).

Reference: T.-Y. Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014, and the COCO detection
evaluation (cocodataset.org/#detection-eval); the interpolated AP of Everingham et al., "The PASCAL Visual
Object Classes (VOC) Challenge", IJCV 2010, sec. 4.2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from torch import Tensor

COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
"""0.50, 0.55, ..., 0.95 (as COCOeval builds them, with ``np.linspace``)."""

RECALL_POINTS: NDArray[np.float64] = np.linspace(0.0, 1.0, 101)
"""The 101 recall values COCO reads interpolated precision at."""

MAX_DETECTIONS = 100
"""Detections per image that count (COCO's largest ``maxDets``)."""

Array = NDArray[np.float64]
BoxesLike = Tensor | NDArray[np.floating] | Sequence[Sequence[float]]


def _boxes(value: BoxesLike) -> Array:
    array = (value.detach().cpu().double().numpy() if isinstance(value, Tensor)
             else np.asarray(value, dtype=np.float64))
    return array.reshape(-1, 4)


def _scores(value: Tensor | NDArray[np.floating] | Sequence[float]) -> Array:
    array = (value.detach().cpu().double().numpy() if isinstance(value, Tensor)
             else np.asarray(value, dtype=np.float64))
    return array.reshape(-1)


@dataclass(frozen=True)
class ImageDetections:
    """The detections of one image: boxes ``(K, 4)`` as ``(x1, y1, x2, y2)`` and their scores ``(K,)``."""

    boxes: Array
    scores: Array

    @classmethod
    def of(cls, boxes: BoxesLike, scores: Tensor | NDArray[np.floating] | Sequence[float]) -> ImageDetections:
        """From tensors, arrays or lists (converted to float64)."""
        b, s = _boxes(boxes), _scores(scores)
        if b.shape[0] != s.shape[0]:
            raise ValueError(f"{b.shape[0]} boxes but {s.shape[0]} scores")
        return cls(b, s)


def pairwise_iou(a: Array, b: Array) -> Array:
    """IoU ``(N, M)`` of ``(x1, y1, x2, y2)`` boxes in float64, 0 where the union is empty."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def greedy_match(ious: Array, thresholds: Sequence[float]) -> NDArray[np.bool_]:
    """Which detections are true positives at each threshold: ``(T, D)`` bool.

    ``ious (D, G)`` holds the IoU of each detection (in decreasing score) with each ground-truth box. At
    threshold ``t`` each detection in turn takes the unmatched box of highest IoU ``>= t`` (the last of equal
    ones, as COCOeval's loop does; ``t`` is capped at ``1 - 1e-10`` as there).
    """
    d, g = ious.shape
    matched = np.zeros((len(thresholds), d), dtype=bool)
    if d == 0 or g == 0:
        return matched
    lowest = min(min(thresholds), 1 - 1e-10)
    candidates = [i for i in np.flatnonzero(ious.max(axis=1) >= lowest).tolist()]
    rows = ious.tolist()
    for ti, t in enumerate(thresholds):
        limit = min(t, 1 - 1e-10)
        taken = [False] * g
        for di in candidates:
            best, m = limit, -1
            for gi, value in enumerate(rows[di]):
                if taken[gi] or value < best:
                    continue
                best, m = value, gi
            if m >= 0:
                taken[m] = True
                matched[ti, di] = True
    return matched


@dataclass(frozen=True)
class APResult:
    """What :func:`average_precision` measured.

    Attributes:
        thresholds: the IoU thresholds ``(T,)``.
        ap: AP at each threshold ``(T,)`` (NaN when there is no ground truth).
        precision: interpolated precision at the 101 recall points ``(T, 101)``.
        recall: the recall reached at each threshold ``(T,)``.
        scores: every counted detection's score, merged over images in decreasing order ``(n,)``.
        true_positive: ``(T, n)`` whether each of those detections matched a box at each threshold.
        num_gt: ground-truth boxes in all images.
    """

    thresholds: tuple[float, ...]
    ap: Array
    precision: Array
    recall: Array
    scores: Array
    true_positive: NDArray[np.bool_]
    num_gt: int

    @property
    def map(self) -> float:
        """Mean AP over the thresholds: mAP@0.5:0.95 with COCO's thresholds."""
        return float(np.mean(self.ap)) if self.num_gt else float("nan")

    def at(self, threshold: float) -> float:
        """AP at one of the thresholds (``at(0.5)`` is mAP@0.5 for one class)."""
        return float(self.ap[self._index(threshold)])

    def curve(self, threshold: float = 0.5) -> tuple[Array, Array]:
        """The raw precision-recall curve at ``threshold``: recall and precision after each detection in
        decreasing score, ``(n,)`` each (before interpolation)."""
        tp = np.cumsum(self.true_positive[self._index(threshold)]).astype(float)
        fp = np.cumsum(~self.true_positive[self._index(threshold)]).astype(float)
        return tp / max(self.num_gt, 1), tp / np.maximum(tp + fp, np.spacing(1))

    def _index(self, threshold: float) -> int:
        close = [i for i, t in enumerate(self.thresholds) if abs(t - threshold) < 1e-9]
        if not close:
            raise ValueError(f"threshold {threshold} is not among {self.thresholds}")
        return close[0]


def _sorted_cut(det: ImageDetections, max_detections: int) -> tuple[Array, Array]:
    order = np.argsort(-det.scores, kind="mergesort")[:max_detections]
    return det.boxes[order], det.scores[order]


def average_precision(detections: Sequence[ImageDetections], ground_truth: Sequence[BoxesLike], *,
                      thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
                      max_detections: int = MAX_DETECTIONS) -> APResult:
    """COCO-style AP of one class over a set of images (see the module docstring for each step).

    Args:
        detections: per image, its detections (any number; the ``max_detections`` best count).
        ground_truth: per image (the same order), its boxes ``(G, 4)``, possibly none.
        thresholds: IoU thresholds.
        max_detections: detections per image that count.

    Returns:
        The AP per threshold, the interpolated precision and the merged matches (:class:`APResult`).
    """
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} images of detections but {len(ground_truth)} of ground truth")
    thresholds = tuple(float(t) for t in thresholds)
    all_scores, all_matches, num_gt = [], [], 0
    for det, gt in zip(detections, ground_truth, strict=True):
        gt_boxes = _boxes(gt)
        boxes, scores = _sorted_cut(det, max_detections)
        num_gt += gt_boxes.shape[0]
        all_scores.append(scores)
        all_matches.append(greedy_match(pairwise_iou(boxes, gt_boxes), thresholds))
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    matches = (np.concatenate(all_matches, axis=1) if all_matches
               else np.zeros((len(thresholds), 0), dtype=bool))
    order = np.argsort(-scores, kind="mergesort")
    scores, matches = scores[order], matches[:, order]
    t_count = len(thresholds)
    ap = np.full(t_count, np.nan)
    precision = np.zeros((t_count, RECALL_POINTS.size))
    recall = np.zeros(t_count)
    if num_gt:
        for ti in range(t_count):
            tp = np.cumsum(matches[ti]).astype(float)
            fp = np.cumsum(~matches[ti]).astype(float)
            rc = tp / num_gt
            pr = tp / (fp + tp + np.spacing(1))
            recall[ti] = rc[-1] if rc.size else 0.0
            envelope = np.maximum.accumulate(pr[::-1])[::-1] if pr.size else pr
            index = np.searchsorted(rc, RECALL_POINTS, side="left")
            inside = index < envelope.size
            precision[ti, inside] = envelope[index[inside]]
            ap[ti] = precision[ti].mean()
    return APResult(thresholds, ap, precision, recall, scores, matches, num_gt)


@dataclass(frozen=True)
class Counts:
    """True positives, false positives and missed boxes at one score and IoU threshold."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        """``tp / (tp + fp)``; 1 when nothing was detected (no false alarm)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """``tp / (tp + fn)``; 1 when there was nothing to find."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """``2 tp / (2 tp + fp + fn)``, the harmonic mean of precision and recall; 1 when there was nothing to
        find and nothing was detected."""
        total = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / total if total else 1.0


def count_matches(detections: Sequence[ImageDetections], ground_truth: Sequence[BoxesLike], *,
                  score_threshold: float, iou_threshold: float = 0.5,
                  max_detections: int = MAX_DETECTIONS) -> Counts:
    """True / false positives and misses of the detections scoring at least ``score_threshold``, matched
    greedily by score at ``iou_threshold`` exactly as :func:`average_precision` matches them."""
    tp = fp = fn = 0
    for det, gt in zip(detections, ground_truth, strict=True):
        gt_boxes = _boxes(gt)
        boxes, scores = _sorted_cut(det, max_detections)
        boxes = boxes[scores >= score_threshold]
        hits = int(greedy_match(pairwise_iou(boxes, gt_boxes), (iou_threshold,)).sum())
        tp += hits
        fp += boxes.shape[0] - hits
        fn += gt_boxes.shape[0] - hits
    return Counts(tp, fp, fn)
