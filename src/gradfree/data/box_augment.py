"""Seeded augmentation of detection batches: the boxes move with their images.

A spec string names the parts (``--augment hflip,scale:0.3,translate:0.1,jitter:0.2``; ``standard`` is that
set), applied in this order to each image of a training batch, all drawn from the step's CPU generator (so a
resumed run, or a worker told the step number, sees the same batch on any device):

* ``hflip`` — mirror left-right with probability 1/2; boxes ``x -> W - x``;
* ``scale:S`` and ``translate:T`` — one random similarity per image: zoom by a factor uniform in
  ``[1 - S, 1 + S]`` about the canvas centre, then shift by up to ``T`` of the canvas in each direction
  (bilinear resampling; uncovered pixels take the letterbox grey). Boxes move with the pixels and are
  clipped to the canvas; a box left narrower or lower than 2 pixels, or with less than 10% of its area
  inside, is dropped (the rule of YOLOv5's ``box_candidates``);
* ``jitter:J`` — contrast times a factor uniform in ``[1 - J, 1 + J]`` about the image's mean, then brightness
  plus an offset uniform in ``[-J/2, J/2]``, clamped to [0, 1]; boxes do not move.

References: the flip / scale / translate / HSV augmentations of YOLOv5 (Jocher et al., ``utils/augmentations``
``random_perspective``) and of SSD (Liu et al. 2016, sec. 2.2 "data augmentation").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gradfree.data.box_targets import BoxTargets
from gradfree.data.images import PAD_VALUE
from gradfree.data.ragged import Targets
from gradfree.errors import ConfigError

SPEC_HELP = ("comma-separated: hflip, scale:S (zoom by 1 +- S), translate:T (shift by up to T of the canvas), "
             "jitter:J (contrast 1 +- J, brightness +- J/2), or 'standard' "
             "(hflip,scale:0.3,translate:0.1,jitter:0.2)")
STANDARD = "hflip,scale:0.3,translate:0.1,jitter:0.2"

MIN_SIDE = 2.0
"""Boxes narrower or lower than this (canvas pixels) after augmentation are dropped."""

MIN_AREA_KEPT = 0.1
"""Boxes with less than this fraction of their transformed area inside the canvas are dropped."""


@dataclass(frozen=True)
class BoxAugmentation:
    """Flip, zoom, shift and colour jitter of image batches with their boxes (see the module docstring).

    Attributes:
        hflip: mirror each image with probability 1/2.
        scale: zoom range ``S`` (factor in ``[1 - S, 1 + S]``), 0 for none.
        translate: shift range as a fraction of the canvas, 0 for none.
        jitter: contrast / brightness range, 0 for none.
        fill: the value of uncovered pixels (the letterbox grey on [0, 1] pixels).
    """

    hflip: bool = False
    scale: float = 0.0
    translate: float = 0.0
    jitter: float = 0.0
    fill: float = PAD_VALUE / 255.0

    def __call__(self, x: Tensor, y: Targets, generator: torch.Generator) -> tuple[Tensor, Targets]:
        """The batch ``x (N, C, H, W)`` and its :class:`BoxTargets` augmented; ``x`` is not changed."""
        if not isinstance(y, BoxTargets):
            raise ConfigError("detection augmentation needs box targets (BoxTargets)")
        n, _, h, w = x.shape
        boxes = [y[i].clone() for i in range(n)]
        out = x
        if self.hflip:
            flip = (torch.rand(n, generator=generator) < 0.5).tolist()
            flip_t = torch.tensor(flip, device=x.device)
            out = torch.where(flip_t[:, None, None, None], out.flip(-1), out)
            for i, f in enumerate(flip):
                if f and boxes[i].numel():
                    boxes[i] = torch.stack((w - boxes[i][:, 2], boxes[i][:, 1], w - boxes[i][:, 0],
                                            boxes[i][:, 3]), dim=1)
        if self.scale > 0 or self.translate > 0:
            s = 1.0 + (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * self.scale
            tx = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * self.translate * w
            ty = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * self.translate * h
            out = self._warp(out, s, tx, ty)
            boxes = [_moved(b, float(s[i]), float(tx[i]), float(ty[i]), w, h) for i, b in enumerate(boxes)]
        if self.jitter > 0:
            contrast = 1.0 + (torch.rand(n, generator=generator) * 2 - 1) * self.jitter
            brightness = (torch.rand(n, generator=generator) * 2 - 1) * self.jitter / 2
            c = contrast.to(x.device, x.dtype)[:, None, None, None]
            b = brightness.to(x.device, x.dtype)[:, None, None, None]
            mean = out.mean(dim=(1, 2, 3), keepdim=True)
            out = ((out - mean) * c + mean + b).clamp(0.0, 1.0)
        return out.contiguous(), y.with_rows(boxes)

    def _warp(self, x: Tensor, s: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
        """Each image zoomed by ``s`` about the centre, then shifted by ``(tx, ty)`` pixels."""
        n, _, h, w = x.shape
        # Output pixel U shows input pixel (U - c - t) / s + c; in grid_sample's normalised coordinates
        # (align_corners=False: -1 and 1 are the canvas edges) that is in = out / s - 2 t / (size s).
        theta = torch.zeros(n, 2, 3, dtype=torch.float64)
        theta[:, 0, 0] = 1 / s
        theta[:, 1, 1] = 1 / s
        theta[:, 0, 2] = -2 * tx / (w * s)
        theta[:, 1, 2] = -2 * ty / (h * s)
        grid = F.affine_grid(theta.to(x.device, x.dtype), [n, x.shape[1], h, w], align_corners=False)
        moved = F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return moved + self.fill


def _moved(boxes: Tensor, s: float, tx: float, ty: float, w: int, h: int) -> Tensor:
    """``boxes (k, 4)`` zoomed by ``s`` about the canvas centre, shifted, clipped; vanishing ones dropped."""
    if boxes.numel() == 0:
        return boxes
    centre = boxes.new_tensor([w / 2, h / 2, w / 2, h / 2])
    moved = (boxes - centre) * s + centre + boxes.new_tensor([tx, ty, tx, ty])
    limit = boxes.new_tensor([w, h, w, h])
    clipped = torch.minimum(moved.clamp_min(0), limit)
    cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    full = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    keep = (cw > MIN_SIDE) & (ch > MIN_SIDE) & (cw * ch >= MIN_AREA_KEPT * full)
    return clipped[keep]


def build_box_augmentation(spec: str | None) -> BoxAugmentation | None:
    """The augmentation ``spec`` names (``None`` / empty: none).

    Raises:
        ConfigError: an unknown part or a value out of range, with the accepted forms.
    """
    if not spec:
        return None
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if parts == ["standard"]:
        parts = STANDARD.split(",")
    options: dict[str, float | bool] = {}
    for part in parts:
        name, _, arg = part.partition(":")
        if name == "hflip" and not arg:
            options["hflip"] = True
            continue
        if name in ("scale", "translate", "jitter"):
            try:
                value = float(arg)
            except ValueError:
                value = -1.0
            if not 0 < value < 1:
                raise ConfigError(f"augmentation {part!r}: {name} takes a number in (0, 1), e.g. {name}:0.2")
            options[name] = value
            continue
        raise ConfigError(f"unknown detection augmentation {part!r} in {spec!r}; use {SPEC_HELP}")
    return BoxAugmentation(**options)  # type: ignore[arg-type]
