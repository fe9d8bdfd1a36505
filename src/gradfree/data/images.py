"""Image files for detection: decoding with Pillow, and letterboxing to a fixed canvas with the mapping kept.

A letterbox scales an image to fit a ``width x height`` canvas without changing its aspect ratio and pads
the rest with grey (114, as YOLOv5 does), centred. :class:`Letterbox` records the per-axis scale and the
padding, so boxes map onto the canvas and back to the original pixels exactly (the metric is computed in
original pixels). Pillow is imported where used, so ``import gradfree`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gradfree.errors import DataError

PAD_VALUE = 114
"""The grey that fills a letterbox's borders (YOLOv5's ``letterbox``)."""


@dataclass(frozen=True)
class Letterbox:
    """Where an image of ``width x height`` pixels sits on the canvas.

    Canvas pixel ``u = x * scale_x + pad_x`` shows original pixel ``x`` (likewise ``v`` for ``y``).

    Attributes:
        scale_x, scale_y: resized size over original size, per axis (equal up to rounding of the size).
        pad_x, pad_y: canvas pixels left of and above the resized image.
        width, height: the original image's size.
    """

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    width: int
    height: int

    def as_tensor(self) -> Tensor:
        """``(6,)`` float64: ``scale_x, scale_y, pad_x, pad_y, width, height``."""
        return torch.tensor([self.scale_x, self.scale_y, self.pad_x, self.pad_y, self.width, self.height],
                            dtype=torch.float64)

    @classmethod
    def from_tensor(cls, row: Tensor) -> Letterbox:
        """The inverse of :meth:`as_tensor`."""
        sx, sy, px, py, w, h = (float(v) for v in row.tolist())
        return cls(sx, sy, px, py, int(round(w)), int(round(h)))

    def to_canvas(self, boxes: Tensor) -> Tensor:
        """Boxes ``(..., 4)`` in original pixels -> canvas pixels."""
        scale = boxes.new_tensor([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        pad = boxes.new_tensor([self.pad_x, self.pad_y, self.pad_x, self.pad_y])
        return boxes * scale + pad

    def to_original(self, boxes: Tensor, *, clip: bool = True) -> Tensor:
        """Boxes ``(..., 4)`` in canvas pixels -> original pixels, clipped to the image unless ``clip=False``."""
        scale = boxes.new_tensor([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        pad = boxes.new_tensor([self.pad_x, self.pad_y, self.pad_x, self.pad_y])
        out = (boxes - pad) / scale
        if clip:
            limit = boxes.new_tensor([self.width, self.height, self.width, self.height])
            out = torch.minimum(out.clamp_min(0), limit)
        return out


def letterbox_geometry(width: int, height: int, canvas: tuple[int, int]) -> Letterbox:
    """The letterbox of a ``width x height`` image on a ``canvas = (canvas_height, canvas_width)``.

    The image is scaled by ``r = min(W / width, H / height)`` to ``round(width r) x round(height r)`` and
    centred (the odd pixel of padding goes right / below).
    """
    ch, cw = canvas
    if width <= 0 or height <= 0 or ch <= 0 or cw <= 0:
        raise DataError(f"cannot letterbox a {width}x{height} image onto a {cw}x{ch} canvas")
    r = min(cw / width, ch / height)
    new_w, new_h = max(1, min(cw, round(width * r))), max(1, min(ch, round(height * r)))
    return Letterbox(new_w / width, new_h / height, float((cw - new_w) // 2), float((ch - new_h) // 2),
                     width, height)


def decode_image(path: str | Path) -> Tensor:
    """The RGB pixels of an image file as uint8 ``(3, H, W)``.

    Raises:
        DataError: the file is missing, truncated or not an image Pillow can read (naming it).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")  # decodes the whole file: a truncated JPEG fails here
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"image {path} is corrupt or not an image ({exc}); replace it with a good copy") from None
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def letterbox(image: Tensor, canvas: tuple[int, int], *, fill: int = PAD_VALUE) -> tuple[Tensor, Letterbox]:
    """``image`` (uint8 ``(3, h, w)``) resized into a ``canvas = (H, W)`` with grey borders.

    Resizing is Pillow's bilinear filter, which widens its support when shrinking (so it does not alias).

    Returns:
        The canvas, uint8 ``(3, H, W)``, and the :class:`Letterbox` that maps boxes both ways.
    """
    from PIL import Image

    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise DataError(f"letterbox needs a uint8 RGB image (3, H, W), got {image.dtype} {tuple(image.shape)}")
    h, w = int(image.shape[1]), int(image.shape[2])
    geometry = letterbox_geometry(w, h, canvas)
    new_w, new_h = round(w * geometry.scale_x), round(h * geometry.scale_y)
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    if (new_w, new_h) != (w, h):
        pil = pil.resize((new_w, new_h), Image.Resampling.BILINEAR)
    out = torch.full((3, canvas[0], canvas[1]), fill, dtype=torch.uint8)
    x0, y0 = int(geometry.pad_x), int(geometry.pad_y)
    out[:, y0 : y0 + new_h, x0 : x0 + new_w] = torch.from_numpy(np.asarray(pil, dtype=np.uint8).copy()).permute(2, 0, 1)
    return out, geometry
