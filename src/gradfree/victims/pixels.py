"""Models that take pixels: the wrapper every victim is attacked through, and the non-differentiable step.

The project's loaders standardise inputs (``(pixel - mean) / std``), and its networks are trained on that.
Attacks work on pixels in ``[0, 1]``, where ``eps = 0.3`` (MNIST) and ``8/255`` (CIFAR-10) are defined, so a
trained network is attacked as :class:`PixelClassifier` — standardisation first, then the network — and every
perturbation is measured in pixels.

:class:`Quantize` rounds every pixel to one of ``levels`` grey levels (bit-depth reduction, the "feature
squeezing" of Xu et al. 2018). Its gradient is zero almost everywhere, so a white-box gradient attack such
as PGD gets no useful gradient through it (the "shattered gradients" of Athalye et al. 2018), while a
black-box attack only sees the labels or scores change, as on any model.

References:
    W. Xu, D. Evans, Y. Qi. "Feature Squeezing: Detecting Adversarial Examples in Deep Neural Networks."
    NDSS 2018 (Sec. III-A, bit depth reduction).
    A. Athalye, N. Carlini, D. Wagner. "Obfuscated Gradients Give a False Sense of Security: Circumventing
    Defenses to Adversarial Examples." ICML 2018 (Sec. 3.1, shattered gradients).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gradfree.errors import ConfigError


class Quantize(nn.Module):
    """Round pixels in ``[0, 1]`` to ``levels`` evenly spaced grey levels (values outside are clipped first).

    ``torch.round`` has a zero gradient, so the module passes no gradient back to its input.
    """

    def __init__(self, levels: int) -> None:
        super().__init__()
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ConfigError(f"quantisation needs at least 2 levels, got {levels!r}")
        self.levels = levels

    def forward(self, x: Tensor) -> Tensor:
        steps = self.levels - 1
        return torch.round(x.clamp(0, 1) * steps) / steps

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


def _stat(values: Sequence[float] | Tensor, input_shape: tuple[int, ...]) -> Tensor:
    """Statistics shaped to broadcast over one input: one value per channel, or one per input element."""
    t = torch.as_tensor(values, dtype=torch.float32).flatten()
    numel = 1
    for d in input_shape:
        numel *= d
    if t.numel() == numel:
        return t.reshape(input_shape)
    if len(input_shape) == 3 and t.numel() == input_shape[0]:
        return t.reshape(-1, 1, 1)
    if t.numel() == 1:
        return t.reshape([1] * len(input_shape))
    raise ConfigError(f"{t.numel()} statistics fit neither the channels nor the elements of inputs of shape "
                      f"{input_shape}")


class PixelClassifier(nn.Module):
    """``net((quantize(x) - mean) / std)``: a network trained on standardised inputs, taking pixels.

    Args:
        net: the trained network (inputs standardised with ``mean`` and ``std``).
        mean, std: the statistics the loader standardised with: one value per channel (MNIST, CIFAR-10) or
            one per input element (scikit-learn's digits).
        input_shape: one input's shape.
        levels: when given, pixels are first rounded to that many grey levels (:class:`Quantize`): the
            non-differentiable victim.

    Shapes:
        ``(B, *input_shape)`` pixels in ``[0, 1]`` -> ``(B, num_classes)`` logits.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor, *,
                 input_shape: tuple[int, ...], levels: int | None = None) -> None:
        super().__init__()
        self.net = net
        self.input_shape = tuple(input_shape)
        self.quantize = Quantize(levels) if levels is not None else None
        self.register_buffer("mean", _stat(mean, self.input_shape).unsqueeze(0))
        self.register_buffer("std", _stat(std, self.input_shape).unsqueeze(0))

    def forward(self, x: Tensor) -> Tensor:
        if self.quantize is not None:
            x = self.quantize(x)
        mean, std = self.get_buffer("mean"), self.get_buffer("std")
        return self.net((x - mean.to(x.dtype)) / std.to(x.dtype))


def to_pixels(x: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor, *,
              levels: int = 255) -> Tensor:
    """Standardised inputs ``(N, *shape)`` back to pixels in ``[0, 1]``: ``x * std + mean``, rounded to
    multiples of ``1 / levels`` (255 for 8-bit images, 16 for scikit-learn's digits)."""
    shape = tuple(x.shape[1:])
    m = _stat(mean, shape).to(x)
    s = _stat(std, shape).to(x)
    return (torch.round((x * s + m) * levels) / levels).clamp(0, 1)
