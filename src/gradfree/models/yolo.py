"""A small single-stage, anchor-free YOLO-style detector for CPUs: ``yolo:tiny``, ``yolo:small``.

``Yolo = backbone + head``. The backbone is plain 3x3 convolutions with batch norm and SiLU (as in YOLOv5 /
YOLOX, without their CSP blocks, for simplicity), four stride-2 stages to
strides 2, 4, 8 and 16, and a one-step feature pyramid: the stride-16 map is upsampled and concatenated with
the stride-8 one (more context for the large cars, the stride-8 resolution for the small ones), then fused
by a 1x1 and a 3x3 convolution. The head is one 1x1 convolution predicting, for every cell of the stride-8
grid, an objectness logit and four box deltas (:class:`~gradfree.models.boxes.PointCoder`): on a 320x192
canvas a 40x24 grid, 960 cells, fine enough for seven cars an image (a 7x7 grid, YOLOv1's, is not).

The head is its own module (``model.head``) so that it can be re-initialised and trained alone, by any
optimizer, on features the frozen backbone computes once (:mod:`gradfree.tasks.detection_features`).
The objectness logit gets a fixed offset ``OBJECTNESS_PRIOR_LOGIT`` so that an untrained head predicts
``p = 0.01`` everywhere (the prior of Lin et al. 2017, sec. 4.1, "Initialization"): with 960 cells and a
handful of cars, a head that starts at ``p = 0.5`` spends its first steps learning that cars are rare. It is
an offset, not a bias initialisation, so that re-drawing the weights (``build_model`` re-draws every layer
from the run's seed) keeps it.

Specs, parameter counts (3x192x320 inputs, one class; checked by ``tests/detection/test_yolo.py``) and training
throughput measured with one thread on this project's 2-core machine (batch 16, Adam: forward, backward and
step; measured with little else running — under the load of other jobs it halves):

=====================  ====================================  ==========  ===========
spec                   widths (strides 2, 4, 8, 16; neck)    parameters  images / s
=====================  ====================================  ==========  ===========
``yolo:tiny``          16, 32, 48, 96; 64                    211,349     ~54
``yolo:small``         24, 48, 80, 160; 96                   556,733     ~25
``yolo:A-B-C-D-N``     any widths
=====================  ====================================  ==========  ===========

The head alone is 325 parameters (``yolo:tiny``) or 485 (``yolo:small``).

References: J. Redmon et al., "You Only Look Once: Unified, Real-Time Object Detection", CVPR 2016 (the
single-stage grid detector); Z. Ge et al., "YOLOX: Exceeding YOLO Series in 2021", arXiv:2107.08430
(anchor-free head, centre sampling); T.-Y. Lin et al., "Feature Pyramid Networks for Object Detection",
CVPR 2017 (the top-down pathway).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.errors import ConfigError

OBJECTNESS_PRIOR = 0.01
OBJECTNESS_PRIOR_LOGIT = -math.log((1 - OBJECTNESS_PRIOR) / OBJECTNESS_PRIOR)
"""Added to the objectness output: an untrained head predicts ``sigmoid(-4.6) = 0.01``."""

OUTPUTS = 5
"""Channels per cell: objectness logit, then the four box deltas."""

STRIDE = 8
"""Pixels per cell of the output grid."""

WIDTHS = {"tiny": (16, 32, 48, 96, 64), "small": (24, 48, 80, 160, 96)}


def conv_bn(c_in: int, c_out: int, *, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Convolution (no bias), batch norm, SiLU: YOLOv5's ``Conv``."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.SiLU())


class Backbone(nn.Module):
    """Strides 2-4-8-16 of 3x3 convolutions and a top-down fusion to a stride-8 feature map.

    Shapes:
        ``(N, C, H, W) -> (N, neck, H / 8, W / 8)``; ``H`` and ``W`` must be multiples of 16.
    """

    def __init__(self, widths: Sequence[int], *, in_channels: int = 3) -> None:
        super().__init__()
        a, b, c, d, neck = widths
        self.out_channels = neck
        self.stride8 = nn.Sequential(conv_bn(in_channels, a, stride=2), conv_bn(a, b, stride=2),
                                     conv_bn(b, c, stride=2), conv_bn(c, c))
        self.stride16 = nn.Sequential(conv_bn(c, d, stride=2), conv_bn(d, d))
        self.fuse = nn.Sequential(conv_bn(c + d, neck, kernel=1), conv_bn(neck, neck))

    def forward(self, x: Tensor) -> Tensor:
        f8 = self.stride8(x)
        f16 = self.stride16(f8)
        up = F.interpolate(f16, scale_factor=2.0, mode="nearest")
        return self.fuse(torch.cat((f8, up), dim=1))


class Head(nn.Module):
    """The prediction layer: a 1x1 convolution to objectness and box deltas, the objectness prior added.

    Shapes:
        ``(N, C, h, w) -> (N, 5, h, w)``.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.predict = nn.Conv2d(in_channels, OUTPUTS, 1)
        self.register_buffer("offset", torch.tensor([OBJECTNESS_PRIOR_LOGIT, 0.0, 0.0, 0.0, 0.0]).view(1, -1, 1, 1),
                             persistent=False)

    def forward(self, features: Tensor) -> Tensor:
        return self.predict(features) + self.offset


class Yolo(nn.Module):
    """The detector: ``head(backbone(x))``, raw outputs ``(N, 5, H / 8, W / 8)`` (decoded by the task).

    Attributes:
        backbone: image -> stride-8 features.
        head: features -> objectness logit and box deltas per cell.
        stride: pixels per output cell (8).
    """

    def __init__(self, widths: Sequence[int], *, in_channels: int = 3) -> None:
        super().__init__()
        if len(widths) != 5 or any(int(w) < 1 for w in widths):
            raise ConfigError(f"yolo needs five positive widths (four stages and the neck), got {list(widths)}")
        self.widths = tuple(int(w) for w in widths)
        self.backbone = Backbone(self.widths, in_channels=in_channels)
        self.head = Head(self.backbone.out_channels)
        self.stride = STRIDE

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


def output_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """``(5, H / 8, W / 8)`` for inputs ``(C, H, W)``."""
    _, h, w = input_shape
    return OUTPUTS, h // STRIDE, w // STRIDE


def build_yolo(args: list[str], *, input_shape: Sequence[int] | None = None,
               num_classes: int | None = None) -> nn.Module:
    """``yolo:tiny``, ``yolo:small`` or ``yolo:A-B-C-D-N`` (stage and neck widths) -> :class:`Yolo`."""
    usage = "yolo spec is yolo:tiny, yolo:small or yolo:A-B-C-D-N (stage widths and neck, e.g. yolo:16-32-48-96-64)"
    if len(args) != 1:
        raise ConfigError(usage)
    if args[0] in WIDTHS:
        widths: tuple[int, ...] = WIDTHS[args[0]]
    else:
        try:
            widths = tuple(int(w) for w in args[0].split("-"))
        except ValueError:
            raise ConfigError(f"bad yolo widths {args[0]!r}: {usage}") from None
        if len(widths) != 5 or min(widths) < 1:
            raise ConfigError(f"bad yolo widths {args[0]!r}: {usage}")
    if num_classes not in (None, 1):
        raise ConfigError(f"yolo detectors here detect one class; the task has {num_classes}")
    channels = 3
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != 3 or shape[1] % 16 or shape[2] % 16:
            raise ConfigError(f"yolo needs images (C, H, W) with H and W multiples of 16, got {shape}")
        channels = shape[0]
    return Yolo(widths, in_channels=channels)
