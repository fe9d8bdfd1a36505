"""ZOO's attack space: the variable the coordinate solver moves, at the image's size or smaller.

ZOO (Chen et al. 2017, Sec. III-D "Attack-space dimension reduction") optimises a perturbation ``m`` of
shape ``(C, s, s)`` with ``s`` smaller than the image side and upsamples it bilinearly to the image; the
"hierarchical attack" (Sec. III-D) doubles ``s`` during the attack (upsampling ``m`` itself, so the search
continues where it was); "importance sampling" (Sec. III-D) draws the coordinates to update with
probabilities proportional to the largest recent change in each of 8 x 8 regions (max pooling of ``|m|``,
spread back over the region, normalised). This module holds those three pieces as functions of tensors;
:mod:`gradfree.attacks.zoo` decides when to use them.

Only inputs larger than 32 x 32 get a reduced space by default: a small input (MNIST, CIFAR-10) is attacked
at its own size and never upsampled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gradfree.errors import ConfigError

DEFAULT_SIDE = 32
"""Side of the first attack space of an image larger than this (the paper's and reference code's 32)."""


class AttackSpace:
    """The shape of ZOO's variable and how it maps onto the image.

    Args:
        image_shape: one input's shape; reduction applies only to images ``(C, H, W)``.
        side: the attack space's height (its width keeps the image's aspect); ``None`` or the image's
            height means the image itself.

    Attributes:
        shape: the variable's shape for one image. size: its number of coordinates.
    """

    def __init__(self, image_shape: tuple[int, ...], side: int | None = None) -> None:
        self.image_shape = tuple(image_shape)
        is_image = len(self.image_shape) == 3
        if side is None or not is_image or side == self.image_shape[1]:
            self.shape = self.image_shape
            self.reduced = False
        else:
            c, h, w = self.image_shape
            if not 1 <= side <= h:
                raise ConfigError(f"the attack space's side must be in 1..{h} (the image's height), got {side}")
            self.shape = (c, side, max(1, round(side * w / h)))
            self.reduced = True
        self.size = 1
        for s in self.shape:
            self.size *= s

    @property
    def side(self) -> int:
        """The attack space's height (the input's length for non-images)."""
        return self.shape[1] if len(self.shape) == 3 else self.shape[0]

    def to_image(self, m: Tensor) -> Tensor:
        """``(R, size)`` variables to ``(R, *image_shape)`` perturbations (bilinear upsampling if reduced)."""
        m = m.reshape(m.shape[0], *self.shape)
        if not self.reduced:
            return m
        return F.interpolate(m, size=self.image_shape[1:], mode="bilinear", align_corners=False)

    def grown(self, side: int) -> AttackSpace:
        """The space with height ``side`` (capped at the image's)."""
        return AttackSpace(self.image_shape, min(side, self.image_shape[1]) if len(self.image_shape) == 3 else None)

    def carry(self, m: Tensor, to: AttackSpace) -> Tensor:
        """Variables ``(n, size)`` of this space moved into ``to`` by bilinear resizing (the hierarchical
        attack continues from where it was)."""
        if to.shape == self.shape:
            return m.clone()
        moved = F.interpolate(m.reshape(m.shape[0], *self.shape), size=to.shape[1:], mode="bilinear",
                              align_corners=False)
        return moved.reshape(m.shape[0], to.size)


def initial_side(image_shape: tuple[int, ...], side: int | None) -> int | None:
    """The first attack-space height: ``side`` if given, else :data:`DEFAULT_SIDE` for images larger than
    that and the image itself otherwise (``None``)."""
    if len(image_shape) != 3:
        if side is not None:
            raise ConfigError("attack-space reduction needs image inputs (C, H, W)")
        return None
    if side is not None:
        return side
    return DEFAULT_SIDE if image_shape[1] > DEFAULT_SIDE else None


def importance_probabilities(m: Tensor, space: AttackSpace, *, regions: int = 8) -> Tensor:
    """Coordinate sampling weights ``(n, size)`` from the variables ``m`` ``(n, size)`` (ZOO Sec. III-D).

    Each channel is cut into ``regions x regions`` blocks; every coordinate gets its block's largest
    ``|m|``; rows are normalised to sum to 1. A small floor keeps every coordinate drawable, and a row of
    zeros (nothing has moved yet) is uniform.
    """
    n = m.shape[0]
    if len(space.shape) != 3:
        return torch.full((n, space.size), 1.0 / space.size, dtype=m.dtype, device=m.device)
    c, h, w = space.shape
    block = max(1, h // regions), max(1, w // regions)
    a = m.abs().reshape(n, c, h, w)
    pooled = F.max_pool2d(a, kernel_size=block, stride=block, ceil_mode=True)
    spread = pooled.repeat_interleave(block[0], dim=2).repeat_interleave(block[1], dim=3)[:, :, :h, :w]
    weights = spread.reshape(n, -1)
    weights = weights + weights.amax(dim=1, keepdim=True) * 1e-6 + 1e-30
    return weights / weights.sum(dim=1, keepdim=True)


def sample_coordinates(n: int, size: int, k: int, *, generator: torch.Generator, device: torch.device,
                       probabilities: Tensor | None = None) -> Tensor:
    """``(n, k)`` int64 distinct coordinates per row: uniform, or drawn without replacement from
    ``probabilities`` ``(n, size)``."""
    if probabilities is not None:
        return torch.multinomial(probabilities, k, replacement=False, generator=generator)
    keys = torch.rand(n, size, generator=generator, device=device)
    return keys.topk(k, dim=1).indices
