"""The detector's shapes and parameter counts, and the loss on hand-made cases (and under vmap)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gradfree.data.box_targets import BoxTargets
from gradfree.data.images import letterbox_geometry
from gradfree.errors import ConfigError
from gradfree.models import build_model
from gradfree.models.boxes import elementwise_giou
from gradfree.models.yolo import OBJECTNESS_PRIOR
from gradfree.objective.population import PopulationLoss
from gradfree.params.flat import FlatParams
from gradfree.tasks.detection_loss import DetectionLoss, assign, centerness


@pytest.mark.parametrize(("spec", "params"), [("yolo:tiny", 211_349), ("yolo:small", 556_733),
                                               ("yolo:8-8-16-16-16", 11_981)])
def test_specs_build_with_the_documented_parameter_counts(spec: str, params: int) -> None:
    model = build_model(spec, seed=0, input_shape=(3, 192, 320), num_classes=1)
    assert sum(p.numel() for p in model.parameters()) == params
    out = model.eval()(torch.zeros(2, 3, 192, 320))
    assert out.shape == (2, 5, 24, 40)  # a stride-8 grid: 960 cells


def test_the_same_seed_builds_the_same_weights() -> None:
    a = build_model("yolo:8-8-16-16-16", seed=3, input_shape=(3, 64, 64), num_classes=1)
    b = build_model("yolo:8-8-16-16-16", seed=3, input_shape=(3, 64, 64), num_classes=1)
    c = build_model("yolo:8-8-16-16-16", seed=4, input_shape=(3, 64, 64), num_classes=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


def test_an_untrained_head_with_zero_weights_predicts_the_prior() -> None:
    model = build_model("yolo:8-8-16-16-16", seed=0, input_shape=(3, 64, 64), num_classes=1)
    with torch.no_grad():
        model.head.predict.weight.zero_()
        model.head.predict.bias.zero_()
    out = model.eval()(torch.rand(1, 3, 64, 64))
    assert torch.allclose(torch.sigmoid(out[:, 0]), torch.full((1, 8, 8), OBJECTNESS_PRIOR))
    assert torch.equal(out[:, 1:], torch.zeros(1, 4, 8, 8))


@pytest.mark.parametrize(("spec", "shape", "classes", "match"), [
    ("yolo:huge", (3, 192, 320), 1, "bad yolo widths"),
    ("yolo:1-2-3", (3, 192, 320), 1, "bad yolo widths"),
    ("yolo:tiny", (3, 190, 320), 1, "multiples of 16"),
    ("yolo:tiny", (3, 192, 320), 3, "one class"),
])
def test_bad_specs_and_shapes_are_clear_errors(spec: str, shape: tuple[int, ...], classes: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_model(spec, seed=0, input_shape=shape, num_classes=classes)


def _targets(rows: list[list[list[float]]], canvas: tuple[int, int] = (16, 32)) -> BoxTargets:
    frames = [letterbox_geometry(canvas[1], canvas[0], canvas)] * len(rows)
    return BoxTargets.pack([torch.tensor(r, dtype=torch.float32).reshape(-1, 4) for r in rows], frames)


# A 16x32 canvas, a 2x4 grid of stride 8: cell centres x = 4, 12, 20, 28 and y = 4, 12. The box (4, 2)-(20, 14)
# holds only the centres (12, 4) and (12, 12) strictly inside; both are also "own" cells of its centre (12, 8).
BOX = [4.0, 2.0, 20.0, 14.0]


def test_the_assignment_by_hand() -> None:
    loss = DetectionLoss((16, 32))
    points, coder = loss.grid(2, 4, torch.device("cpu"))
    result = assign(_targets([[BOX], []]), points, coder.stride)
    assert result.positive[0].tolist() == [0, 1, 0, 0, 0, 1, 0, 0] and result.positive[1].sum() == 0
    assert result.count == 2.0 and result.boxes[0, 1].tolist() == BOX
    # both cells have centerness sqrt(8/8 * 2/10): equal, so both are their box's best and get 1
    assert centerness(torch.tensor([BOX]), torch.tensor([[12.0, 4.0]])).item() == pytest.approx(math.sqrt(0.2))
    assert result.quality[0].tolist() == [0, 1, 0, 0, 0, 1, 0, 0]


def test_a_cell_claimed_by_two_boxes_takes_the_smaller() -> None:
    loss = DetectionLoss((16, 32))
    points, coder = loss.grid(2, 4, torch.device("cpu"))
    big, small = [0.0, 0.0, 32.0, 16.0], [8.0, 0.0, 16.0, 8.0]
    result = assign(_targets([[big, small]]), points, coder.stride)
    assert result.boxes[0, 1].tolist() == small  # centre (12, 4): inside both, the smaller wins
    assert result.boxes[0, 2].tolist() == big


def _perfect_output(logit_pos: float, logit_neg: float) -> torch.Tensor:
    out = torch.full((2, 5, 2, 4), 0.0)
    out[:, 0] = logit_neg
    for cell_y, dy in ((0, 0.5), (1, -0.5)):  # centre y = 8 is half a stride below 4 and above 12
        out[0, 0, cell_y, 1] = logit_pos
        out[0, 1:, cell_y, 1] = torch.tensor([0.0, dy, math.log(16 / 32), math.log(12 / 32)])
    return out


def test_the_loss_of_perfect_boxes_is_the_objectness_term_alone() -> None:
    loss = DetectionLoss((16, 32))
    value = loss(_perfect_output(0.0, -2.0), _targets([[BOX], []]))
    softplus = F.softplus(torch.tensor(-2.0)).item()
    assert value.item() == pytest.approx((2 * math.log(2) + 14 * softplus) / 2, rel=1e-6)


def test_a_misplaced_box_adds_five_times_one_minus_giou() -> None:
    loss = DetectionLoss((16, 32))
    out = _perfect_output(0.0, -2.0)
    out[0, 1, 0, 1] = 0.25  # move the first positive's box right by 2 pixels
    shifted = torch.tensor([BOX]) + torch.tensor([2.0, 0.0, 2.0, 0.0])
    giou = elementwise_giou(shifted, torch.tensor([BOX])).item()
    base = loss(_perfect_output(0.0, -2.0), _targets([[BOX], []])).item()
    assert loss(out, _targets([[BOX], []])).item() == pytest.approx(base + 5 * (1 - giou) / 2, rel=1e-6)


def test_the_loss_gradient_matches_finite_differences() -> None:
    loss = DetectionLoss((16, 32))
    targets = _targets([[BOX], [[18.0, 4.0, 30.0, 15.0]]])
    out = torch.randn(2, 5, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.3
    out.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda o: loss(o, targets), (out,))


def test_the_loss_vmaps_over_a_population_like_the_loop() -> None:
    model = build_model("yolo:8-8-16-16-16", seed=0, input_shape=(3, 32, 64), num_classes=1).eval()
    loss = DetectionLoss((32, 64))
    x = torch.rand(3, 3, 32, 64, generator=torch.Generator().manual_seed(1))
    y = _targets([[[5.0, 5.0, 25.0, 20.0]], [], [[30.0, 2.0, 60.0, 30.0], [1.0, 1.0, 9.0, 9.0]]], (32, 64))
    flat = FlatParams(model)
    centre = flat.get()
    vectors = centre + 0.05 * torch.randn(4, flat.num_dims, generator=torch.Generator().manual_seed(2))
    batched = PopulationLoss(flat, loss, mode="vmap")(vectors, x, y)
    looped = PopulationLoss(flat, loss, mode="loop")(vectors, x, y)
    assert torch.allclose(batched, looped, rtol=1e-4, atol=1e-5)
    assert torch.equal(flat.get(), centre)
