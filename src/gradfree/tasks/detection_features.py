"""Training a detector's head alone on features its frozen backbone computes once (the hybrid route).

When the backbone is frozen and in eval mode (batch norm on its running statistics), its output for an
image never changes, so the head's loss on an image is the head's loss on that image's cached features —
exactly, not approximately. :func:`feature_task` builds that task: the same targets, metrics and canvas,
with inputs replaced by the backbone's features; any optimizer then trains ``model.head`` on it, and a
population method scores its population through the head alone (a 1x1 convolution: vmappable, and about
a thousand times cheaper than the whole network). The head trained this way is the full detector's head
(the same module), so the full model evaluates it on images directly.

What is not exact, and so refused: augmentation (features would have to be recomputed per step), and a
backbone in training mode (its batch statistics depend on the batch).

This is the "hybrid" of gradient-trained features with a gradient-free last layer, as in e.g. the
random-features / extreme-learning-machine line and the ZO fine-tuning of last layers (Malladi et al. 2023
study full-model ZO; training only the head is the cheap limit of their "prefix" variants).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from gradfree.data.splits import DataSplits, Split
from gradfree.errors import ConfigError
from gradfree.models.init import reset_parameters
from gradfree.models.yolo import Yolo
from gradfree.tasks.detection import DetectionTask


@torch.no_grad()
def backbone_features(backbone: nn.Module, x: Tensor, *, chunk: int = 64) -> Tensor:
    """``backbone(x)`` in eval mode, without gradients, in chunks of ``chunk`` images (mode restored)."""
    was_training = backbone.training
    backbone.eval()
    try:
        return torch.cat([backbone(x[s : s + chunk]) for s in range(0, x.shape[0], chunk)])
    finally:
        backbone.train(was_training)


def feature_task(task: DetectionTask, backbone: nn.Module, *, chunk: int = 64) -> DetectionTask:
    """``task`` with every split's images replaced by ``backbone``'s features (see the module docstring).

    The returned task trains a head ``(N, C, h, w) -> (N, 5, h, w)``; its metrics are the full detector's.
    """
    if not isinstance(task, DetectionTask):
        raise ConfigError("feature_task needs a DetectionTask")
    def features(split: Split) -> Split:
        return Split(backbone_features(backbone, split.x, chunk=chunk), split.y)

    data = task.data
    cached = DataSplits(data.name, features(data.train), features(data.val), features(data.test), data.num_classes)
    return replace(task, data=cached, canvas=task.canvas, augment_allowed=False, default_model="")


def reinitialise_head(model: nn.Module, *, seed: int) -> nn.Module:
    """Re-draw ``model.head``'s weights from ``seed`` (PyTorch's default distributions); returns the head."""
    if not isinstance(model, Yolo):
        raise ConfigError(f"re-initialising a head needs a yolo detector, got {type(model).__name__}")
    return reset_parameters(model.head, generator=torch.Generator().manual_seed(seed))
