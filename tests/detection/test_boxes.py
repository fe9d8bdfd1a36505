"""Box ops against brute-force references, and their properties (hypothesis)."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from gradfree.models.boxes import (
    PointCoder,
    batched_nms,
    box_area,
    box_iou,
    elementwise_giou,
    generalized_box_iou,
    grid_points,
    nms,
)


def _pixels(b: list[float]) -> set[tuple[int, int]]:
    """The unit pixels a box with integer corners covers."""
    return {(x, y) for x in range(int(b[0]), int(b[2])) for y in range(int(b[1]), int(b[3]))}


def _brute_iou(a: list[float], b: list[float]) -> float:
    """IoU by counting the pixels both boxes cover (boxes with integer corners)."""
    union = len(_pixels(a) | _pixels(b))
    return len(_pixels(a) & _pixels(b)) / union if union else 0.0


def _brute_giou(a: list[float], b: list[float]) -> float:
    """GIoU by pixel counting: IoU minus the enclosing box's share not covered by either."""
    enclosing = len(_pixels([min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]))
    union = len(_pixels(a) | _pixels(b))
    return _brute_iou(a, b) - (enclosing - union) / enclosing if enclosing else 0.0


def _int_boxes(n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, 20, (n, 2), generator=g)
    wh = torch.randint(1, 12, (n, 2), generator=g)
    return torch.cat([xy, xy + wh], dim=1).double()


def test_iou_and_giou_match_rasterised_brute_force() -> None:
    a, b = _int_boxes(12, 0), _int_boxes(9, 1)
    iou, giou = box_iou(a, b), generalized_box_iou(a, b)
    for i, j in itertools.product(range(12), range(9)):
        assert float(iou[i, j]) == pytest.approx(_brute_iou(a[i].tolist(), b[j].tolist()), abs=1e-12)
        assert float(giou[i, j]) == pytest.approx(_brute_giou(a[i].tolist(), b[j].tolist()), abs=1e-12)


def test_degenerate_boxes_give_zero_not_nan() -> None:
    point = torch.tensor([[3.0, 3.0, 3.0, 3.0]])
    assert box_iou(point, point).item() == 0.0 and generalized_box_iou(point, point).item() == 0.0
    assert box_area(torch.tensor([[5.0, 5.0, 2.0, 9.0]])).item() == 0.0


def test_giou_gradient_is_finite_and_matches_finite_differences() -> None:
    a = torch.tensor([[1.0, 2.0, 7.0, 9.0]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[3.0, 1.0, 12.0, 6.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: elementwise_giou(x, b), (a,))


box = st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(0.5, 60), st.floats(0.5, 60)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])
boxes = st.lists(box, min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(boxes, boxes)
def test_iou_is_symmetric_and_in_unit_interval(a: list[list[float]], b: list[list[float]]) -> None:
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    iou = box_iou(ta, tb)
    assert torch.allclose(iou, box_iou(tb, ta).T)
    assert bool(((iou >= 0) & (iou <= 1 + 1e-12)).all())
    assert torch.allclose(torch.diagonal(box_iou(ta, ta)), torch.ones(len(a), dtype=torch.float64))
    giou = generalized_box_iou(ta, tb)
    assert bool(((giou >= -1 - 1e-12) & (giou <= iou + 1e-12)).all())


@settings(max_examples=60, deadline=None)
@given(boxes, st.floats(-3, 3), st.floats(-3, 3), st.sampled_from([8.0, 16.0]), st.floats(0.5, 6))
def test_decode_inverts_encode(b: list[list[float]], px: float, py: float, stride: float, prior: float) -> None:
    tb = torch.tensor(b, dtype=torch.float64)
    points = (tb[:, :2] + tb[:, 2:]) / 2 + torch.tensor([px, py], dtype=torch.float64) * stride
    coder = PointCoder(stride, prior)
    assert torch.allclose(coder.decode(coder.encode(tb, points), points), tb, atol=1e-9)


def _brute_nms(b: Tensor, s: Tensor, t: float) -> list[int]:
    order = sorted(range(len(s)), key=lambda i: (-float(s[i]), i))
    keep: list[int] = []
    for i in order:
        if all(float(box_iou(b[i : i + 1], b[k : k + 1])) <= t for k in keep):
            keep.append(i)
    return keep


@settings(max_examples=60, deadline=None)
@given(boxes, st.floats(0.1, 0.9), st.randoms(use_true_random=False))
def test_nms_matches_brute_force_and_leaves_no_overlap(b: list[list[float]], t: float, rnd: object) -> None:
    tb = torch.tensor(b, dtype=torch.float64)
    scores = torch.tensor([rnd.random() for _ in b], dtype=torch.float64)  # type: ignore[attr-defined]
    keep = nms(tb, scores, t)
    assert keep.tolist() == _brute_nms(tb, scores, t)
    kept = box_iou(tb[keep], tb[keep])
    assert bool((kept.fill_diagonal_(0) <= t).all())
    assert bool((scores[keep][:-1] >= scores[keep][1:]).all())


def test_batched_nms_keeps_groups_apart() -> None:
    b = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60.0]])
    s = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert nms(b, s, 0.5).tolist() == [0, 3]
    assert batched_nms(b, s, torch.tensor([0, 0, 1, 1]), 0.5).tolist() == [0, 2, 3]
    assert batched_nms(b[:0], s[:0], torch.zeros(0, dtype=torch.int64), 0.5).numel() == 0


def test_grid_points_are_cell_centres_row_major() -> None:
    p = grid_points(2, 3, 8.0)
    assert p.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
