"""Our COCO-style AP against pycocotools' COCOeval (and faster-coco-eval) to 1e-6, on hand-made and random cases."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pytest

from gradfree.tasks.detection_metrics import (
    COCO_IOU_THRESHOLDS,
    ImageDetections,
    average_precision,
    count_matches,
    greedy_match,
    pairwise_iou,
)

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

Case = tuple[list[ImageDetections], list[np.ndarray]]


def _coco_dicts(dets: list[ImageDetections], gts: list[np.ndarray]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    images, annotations, results = [], [], []
    for i, (det, gt) in enumerate(zip(dets, gts, strict=True), start=1):
        images.append({"id": i, "width": 1000, "height": 1000})
        for b in gt:
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                                "area": w * h, "bbox": [float(b[0]), float(b[1]), w, h]})
        for b, s in zip(det.boxes, det.scores, strict=True):
            results.append({"image_id": i, "category_id": 1, "score": float(s),
                            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    gt_json = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "car"}]}
    return gt_json, results


def _pycocotools(dets: list[ImageDetections], gts: list[np.ndarray]) -> tuple[float, float, np.ndarray]:
    """mAP@0.5:0.95, mAP@0.5 and the precision array at area 'all', 100 detections, from COCOeval."""
    gt_json, results = _coco_dicts(dets, gts)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt_json
        coco.createIndex()
        if results:
            coco_dt = coco.loadRes(results)
        else:  # loadRes refuses an empty list: an empty result set has no detections at all
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt_json["images"], "annotations": [], "categories": gt_json["categories"]}
            coco_dt.createIndex()
        ev = COCOeval(coco, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1]), ev.eval["precision"][:, :, 0, 0, 2]


def _faster_coco_eval(dets: list[ImageDetections], gts: list[np.ndarray]) -> tuple[float, float]:
    from faster_coco_eval import COCO as FCOCO
    from faster_coco_eval import COCOeval_faster

    gt_json, results = _coco_dicts(dets, gts)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = FCOCO(gt_json)
        ev = COCOeval_faster(coco, coco.loadRes(results), "bbox", print_function=lambda *a: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def _ours(dets: list[ImageDetections], gts: list[np.ndarray]) -> tuple[float, float, np.ndarray]:
    result = average_precision(dets, gts)
    return result.map, result.at(0.5), result.precision


def _agree(dets: list[ImageDetections], gts: list[np.ndarray]) -> tuple[float, float]:
    ours = _ours(dets, gts)
    ref = _pycocotools(dets, gts)
    assert ours[0] == pytest.approx(ref[0], abs=1e-6)
    assert ours[1] == pytest.approx(ref[1], abs=1e-6)
    np.testing.assert_allclose(ours[2], ref[2], atol=1e-6)
    return ours[0], ours[1]


def _det(boxes: list[list[float]], scores: list[float]) -> ImageDetections:
    return ImageDetections.of(np.array(boxes, dtype=float).reshape(-1, 4), np.array(scores, dtype=float))


GT_A = np.array([[10, 10, 50, 40], [100, 100, 180, 150.0]])
GT_B = np.array([[300, 200, 340, 260.0]])


def test_perfect_detections_give_one() -> None:
    dets = [_det(GT_A.tolist(), [0.9, 0.8]), _det(GT_B.tolist(), [0.7])]
    assert _agree(dets, [GT_A, GT_B]) == (pytest.approx(1.0), pytest.approx(1.0))


def test_duplicates_count_as_false_positives() -> None:
    dets = [_det([*GT_A.tolist(), [11, 10, 50, 40], [100, 101, 180, 150]], [0.9, 0.8, 0.85, 0.75]),
            _det(GT_B.tolist(), [0.95])]
    m, m50 = _agree(dets, [GT_A, GT_B])
    assert m50 < 1.0


def test_a_false_positive_ranked_first() -> None:
    dets = [_det([[500, 500, 560, 560], *GT_A.tolist()], [0.99, 0.5, 0.4]), _det(GT_B.tolist(), [0.3])]
    m, m50 = _agree(dets, [GT_A, GT_B])
    # precision 0, 1/2, 2/3, 3/4 after each detection: the envelope is 3/4 at every recall point
    assert m50 == pytest.approx(0.75, abs=1e-9)


def test_detections_on_images_without_boxes() -> None:
    empty = np.zeros((0, 4))
    dets = [_det(GT_A.tolist(), [0.6, 0.5]), _det([[5, 5, 40, 40], [60, 60, 90, 90]], [0.9, 0.2]),
            _det([], [])]
    _agree(dets, [GT_A, empty, empty])


def test_localisation_error_lowers_the_strict_thresholds_only() -> None:
    # IoU of the shifted box with its truth: 30x40 overlap of 40x40 boxes -> 1200 / 2000 = 0.6
    gt = np.array([[0, 0, 40, 40.0]])
    m, m50 = _agree([_det([[10, 0, 50, 40]], [0.9])], [gt])
    assert m50 == pytest.approx(1.0) and m == pytest.approx(0.3)  # matched at 0.5, 0.55, 0.6 of ten


def test_missed_boxes_and_no_detections() -> None:
    dets = [_det([GT_A[0].tolist()], [0.9]), _det([], [])]
    m, m50 = _agree(dets, [GT_A, GT_B])
    assert m50 == pytest.approx(np.mean([1.0] * 34 + [0.0] * 67), abs=1e-9)  # recall stops at 1/3


def test_tied_scores_and_a_box_matching_two_truths() -> None:
    gt = np.array([[0, 0, 40, 40], [20, 0, 60, 40.0]])
    dets = [_det([[10, 0, 50, 40], [0, 0, 40, 40], [20, 0, 60, 40]], [0.5, 0.5, 0.5])]
    _agree(dets, [gt])


def test_more_than_a_hundred_detections_per_image_are_cut() -> None:
    rng = np.random.default_rng(3)
    boxes = rng.uniform(0, 400, (150, 2))
    boxes = np.concatenate([boxes, boxes + rng.uniform(10, 60, (150, 2))], axis=1)
    gt = boxes[::7] + rng.normal(0, 2, boxes[::7].shape)
    _agree([_det(boxes.tolist(), rng.uniform(0, 1, 150).tolist())], [gt])


def _random_case(rng: np.random.Generator) -> Case:
    dets, gts = [], []
    for _ in range(int(rng.integers(1, 7))):
        g = int(rng.integers(0, 6))
        xy = rng.uniform(0, 300, (g, 2))
        gt = np.concatenate([xy, xy + rng.uniform(8, 80, (g, 2))], axis=1)
        # detections: noisy copies of most truths, plus clutter
        kept = gt[rng.random(g) < 0.8]
        noisy = kept + rng.normal(0, rng.uniform(0.5, 8), kept.shape)
        k = int(rng.integers(0, 5))
        cxy = rng.uniform(0, 300, (k, 2))
        clutter = np.concatenate([cxy, cxy + rng.uniform(8, 80, (k, 2))], axis=1)
        boxes = np.concatenate([noisy.reshape(-1, 4), clutter])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        dets.append(_det(boxes.tolist(), rng.uniform(0, 1, boxes.shape[0]).round(2).tolist()))
        gts.append(gt)
    return dets, gts


def test_random_cases_agree_with_pycocotools() -> None:
    rng = np.random.default_rng(0)
    compared = 0
    for _ in range(60):
        dets, gts = _random_case(rng)
        if sum(g.shape[0] for g in gts) == 0 or sum(d.scores.size for d in dets) == 0:
            continue
        _agree(dets, gts)
        compared += 1
    assert compared >= 40


def test_random_cases_agree_with_faster_coco_eval() -> None:
    pytest.importorskip("faster_coco_eval")
    rng = np.random.default_rng(1)
    for _ in range(10):
        dets, gts = _random_case(rng)
        if sum(g.shape[0] for g in gts) == 0 or sum(d.scores.size for d in dets) == 0:
            continue
        ours = average_precision(dets, gts)
        ref = _faster_coco_eval(dets, gts)
        assert ours.map == pytest.approx(ref[0], abs=1e-6) and ours.at(0.5) == pytest.approx(ref[1], abs=1e-6)


def test_no_ground_truth_gives_nan() -> None:
    result = average_precision([_det([[0, 0, 5, 5]], [0.5])], [np.zeros((0, 4))])
    assert np.isnan(result.map) and np.isnan(result.at(0.5))


def test_greedy_match_against_a_brute_force_loop() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        ious = rng.uniform(0, 1, (int(rng.integers(0, 8)), int(rng.integers(0, 5)))).round(1)
        got = greedy_match(ious, COCO_IOU_THRESHOLDS)
        for ti, t in enumerate(COCO_IOU_THRESHOLDS):
            taken: set[int] = set()
            for d in range(ious.shape[0]):
                options = [g for g in range(ious.shape[1]) if g not in taken and ious[d, g] >= t]
                if options:
                    best = max(ious[d, g] for g in options)
                    taken.add([g for g in options if ious[d, g] == best][-1])
                    assert got[ti, d]
                else:
                    assert not got[ti, d]


def test_pairwise_iou_by_hand() -> None:
    iou = pairwise_iou(np.array([[0, 0, 2, 2.0]]), np.array([[1, 1, 3, 3], [5, 5, 6, 6], [0, 0, 2, 2.0]]))
    np.testing.assert_allclose(iou, [[1 / 7, 0.0, 1.0]])


def test_precision_recall_f1_at_a_threshold() -> None:
    # image 1: both truths found (0.9, 0.8), one clutter at 0.7 and one at 0.2; image 2: its truth at 0.1
    dets = [_det([*GT_A.tolist(), [500, 500, 520, 520], [600, 600, 620, 620]], [0.9, 0.8, 0.7, 0.2]),
            _det(GT_B.tolist(), [0.1])]
    counts = count_matches(dets, [GT_A, GT_B], score_threshold=0.5)
    assert (counts.tp, counts.fp, counts.fn) == (2, 1, 1)
    assert counts.precision == pytest.approx(2 / 3) and counts.recall == pytest.approx(2 / 3)
    assert counts.f1 == pytest.approx(2 / 3)
    nothing = count_matches([_det([], [])], [np.zeros((0, 4))], score_threshold=0.5)
    assert nothing.f1 == 1.0 and nothing.precision == 1.0 and nothing.recall == 1.0


def test_the_curve_ends_at_the_recall_reached() -> None:
    dets = [_det([*GT_A.tolist(), [500, 500, 520, 520]], [0.9, 0.5, 0.8])]
    result = average_precision(dets, [GT_A])
    recall, precision = result.curve(0.5)
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3])
