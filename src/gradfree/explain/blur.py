"""The Gaussian blur of images: insertion's start (RISE's protocol) and zo-ig's blurred path start."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gradfree.errors import ConfigError

BLUR = 0.1
"""The default blur's standard deviation as a fraction of the image side: at 28 and 32 pixels it leaves a
shapeless blob, as RISE's insertion start does at 224."""


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Each channel of images ``(N, C, H, W)`` blurred by a Gaussian of ``sigma`` pixels (reflected edges)."""
    radius = max(1, int(2 * sigma + 0.5))
    k = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-k.square() / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    pad = F.pad(x, (radius, radius, radius, radius), mode="reflect" if radius < min(x.shape[2:]) else "replicate")
    out = F.conv2d(pad, kernel.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def blurred(x: Tensor, fraction: float = BLUR) -> Tensor:
    """Images ``(N, C, H, W)`` blurred by a Gaussian of ``fraction`` times their side."""
    if x.ndim != 4:
        raise ConfigError(f"a blur needs images (N, C, H, W), got inputs of shape {tuple(x.shape)}")
    if not fraction > 0:
        raise ConfigError(f"the blur's fraction of the image side must be > 0, got {fraction}")
    return gaussian_blur(x, fraction * x.shape[-1])
