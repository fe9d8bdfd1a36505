"""Small seeded models and inputs for the explanation tests (no datasets, no global RNG)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradfree.models.init import reset_parameters


class Counting(nn.Module):
    """Wraps a model and counts the rows it is asked to score (to check the box's counter is exact)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows = 0

    def forward(self, x: Tensor) -> Tensor:
        self.rows += x.shape[0]
        return self.inner(x)


def smooth_cnn(channels: int = 1, side: int = 8, classes: int = 3, seed: int = 4, gain: float = 5.0) -> nn.Module:
    """A tiny smooth (tanh) CNN on ``channels x side x side`` images, its last layer scaled by ``gain`` so that
    it is confident, as a trained model is."""
    model = nn.Sequential(nn.Conv2d(channels, 4, 3), nn.Tanh(), nn.Flatten(),
                          nn.Linear(4 * (side - 2) ** 2, 8), nn.Tanh(), nn.Linear(8, classes))
    reset_parameters(model, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        model[5].weight.mul_(gain)
    return model.eval()


def images(n: int = 3, channels: int = 1, side: int = 8, seed: int = 1, scale: float = 1.0) -> Tensor:
    """``n`` seeded Gaussian images."""
    return scale * torch.randn(n, channels, side, side, generator=torch.Generator().manual_seed(seed))


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise cosine similarity of flattened tensors."""
    return torch.nn.functional.cosine_similarity(a.reshape(a.shape[0], -1).double(),
                                                 b.reshape(b.shape[0], -1).double(), dim=1)
