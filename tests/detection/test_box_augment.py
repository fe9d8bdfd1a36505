"""Detection augmentation: the boxes stay on the pixels they mark, seeded, and vanishing boxes dropped."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from gradfree.data.box_augment import BoxAugmentation, _moved, build_box_augmentation
from gradfree.data.box_targets import BoxTargets
from gradfree.data.images import letterbox_geometry
from gradfree.errors import ConfigError

H, W = 48, 64


def _batch(n: int = 24) -> tuple[Tensor, BoxTargets]:
    """Grey images, each with one white rectangle (the box) at a different place."""
    g = torch.Generator().manual_seed(0)
    x = torch.full((n, 3, H, W), 0.3)
    rows = []
    for i in range(n):
        x0, y0 = int(torch.randint(4, 30, (1,), generator=g)), int(torch.randint(4, 20, (1,), generator=g))
        w, h = int(torch.randint(8, 24, (1,), generator=g)), int(torch.randint(8, 20, (1,), generator=g))
        x[i, :, y0 : y0 + h, x0 : x0 + w] = 1.0
        rows.append(torch.tensor([[x0, y0, x0 + w, y0 + h]], dtype=torch.float32))
    frames = [letterbox_geometry(W, H, (H, W))] * n
    return x, BoxTargets.pack(rows, frames)


def _bright_extent(image: Tensor) -> Tensor | None:
    """The pixel-edge box of the pixels brighter than the midpoint of grey and white."""
    mask = image[0] > 0.65
    if not mask.any():
        return None
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


def test_a_flip_mirrors_boxes_exactly() -> None:
    x, y = _batch()
    out, moved = BoxAugmentation(hflip=True)(x, y, torch.Generator().manual_seed(1))
    assert isinstance(moved, BoxTargets)
    flipped = 0
    for i in range(len(x)):
        extent = _bright_extent(out[i])
        assert extent is not None and torch.equal(extent, moved[i][0])
        flipped += int(not torch.equal(moved[i], y[i]))
    assert 4 < flipped < 20  # about half
    assert torch.equal(x, _batch()[0])  # the input is left alone


def test_zoom_and_shift_keep_boxes_on_their_pixels() -> None:
    x, y = _batch()
    aug = BoxAugmentation(scale=0.4, translate=0.15, fill=0.3)
    out, moved = aug(x, y, torch.Generator().manual_seed(2))
    assert isinstance(moved, BoxTargets)
    compared = 0
    for i in range(len(x)):
        extent = _bright_extent(out[i])
        if moved[i].shape[0] == 0:
            continue
        assert extent is not None
        assert torch.allclose(extent, moved[i][0], atol=1.5)  # bilinear edges: within a pixel and a half
        compared += 1
    assert compared >= 16
    assert torch.equal(moved.frames, y.frames)  # each image keeps its letterbox


def test_the_same_generator_gives_the_same_batch() -> None:
    x, y = _batch()
    aug = build_box_augmentation("standard")
    assert aug is not None
    a = aug(x, y, torch.Generator().manual_seed(5))
    b = aug(x, y, torch.Generator().manual_seed(5))
    c = aug(x, y, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1].values, b[1].values)  # type: ignore[union-attr]
    assert not torch.equal(a[0], c[0])
    assert float(a[0].min()) >= 0 and float(a[0].max()) <= 1


def test_boxes_pushed_out_of_the_canvas_are_dropped_and_others_clipped() -> None:
    boxes = torch.tensor([[2.0, 2.0, 12.0, 12.0], [30.0, 20.0, 40.0, 30.0]])
    # shift left by 25 pixels at scale 1: the first box leaves entirely, the second is kept whole
    assert _moved(boxes, 1.0, -25.0, 0.0, W, H).tolist() == [[5.0, 20.0, 15.0, 30.0]]
    # shift right by 28: the second box is cut at the right edge (6 of its 10 columns are left)
    assert _moved(boxes, 1.0, 28.0, 0.0, W, H).tolist() == [[30.0, 2.0, 40.0, 12.0], [58.0, 20.0, 64.0, 30.0]]
    # a box 3 pixels wide after clipping but with under 10% of its area inside is dropped; at 20% it stays
    wide = torch.tensor([[10.0, 10.0, 50.0, 20.0]])
    assert _moved(wide, 1.0, 46.0, 0.0, W, H).tolist() == [[56.0, 10.0, 64.0, 20.0]]
    assert _moved(wide, 1.0, 51.0, 0.0, W, H).numel() == 0
    # zoom by 2 about the centre (32, 24): (30, 20)-(40, 30) -> (28, 16)-(48, 36)
    assert _moved(boxes[1:], 2.0, 0.0, 0.0, W, H).tolist() == [[28.0, 16.0, 48.0, 36.0]]


def test_jitter_changes_pixels_not_boxes() -> None:
    x, y = _batch()
    out, moved = BoxAugmentation(jitter=0.4)(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(moved.values, y.values)  # type: ignore[union-attr]
    assert not torch.allclose(out, x)


@pytest.mark.parametrize("spec", ["rotate:10", "scale:2", "scale:x", "hflip:1", "jitter:0"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ConfigError):
        build_box_augmentation(spec)


def test_ragged_targets_without_letterboxes_are_refused() -> None:
    from gradfree.data.ragged import Ragged

    x, y = _batch(2)
    with pytest.raises(ConfigError, match="box targets"):
        BoxAugmentation(hflip=True)(x, Ragged(y.values, y.offsets), torch.Generator())
