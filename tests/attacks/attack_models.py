"""Tiny models with known answers for the attack tests (float64, so boundary ties do not flip)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

F64 = torch.float64
SHAPE = (1, 8, 8)


def linear_model(*, classes: int = 5, seed: int = 0, shape: tuple[int, ...] = SHAPE) -> nn.Sequential:
    """``Flatten -> Linear`` with seeded N(0, 1) weights, in float64, centred on the grey image: the logits are
    ``W (x - 0.5)``, so images around 0.5 fall in every class."""
    g = torch.Generator().manual_seed(seed)
    d = 1
    for s in shape:
        d *= s
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, classes)).to(F64)
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(classes, d, generator=g, dtype=F64))
        model[1].bias.copy_(-0.5 * model[1].weight.sum(dim=1))
    return model


def smooth_model(*, classes: int = 3, seed: int = 0, shape: tuple[int, ...] = (1, 4, 4)) -> nn.Sequential:
    """A small tanh MLP: smooth, so finite differences can be checked against autograd."""
    g = torch.Generator().manual_seed(seed)
    d = 1
    for s in shape:
        d *= s
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, 12), nn.Tanh(), nn.Linear(12, classes)).to(F64)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64))
    return model


def images(n: int, *, seed: int = 1, shape: tuple[int, ...] = SHAPE) -> Tensor:
    """``n`` images with pixels in ``[0.3, 0.7]``: small perturbations never reach the box."""
    g = torch.Generator().manual_seed(seed)
    return 0.3 + 0.4 * torch.rand(n, *shape, generator=g, dtype=F64)


def minimal_distance(model: nn.Sequential, x: Tensor, y: Tensor, *, dual: float) -> Tensor:
    """The smallest perturbation that changes a linear classifier's label, per image, ignoring the box.

    Crossing to class ``j`` needs ``(w_y - w_j) . delta <= -(z_y - z_j)``; the smallest norm of such a
    ``delta`` is ``(z_y - z_j) / ||w_y - w_j||_dual`` (dual = 2 for L2, 1 for L-inf).
    """
    w = model[1].weight.detach()
    with torch.no_grad():
        z = model(x)
    out = torch.full((x.shape[0],), float("inf"), dtype=F64)
    for j in range(w.shape[0]):
        diff = w[y] - w[j]
        gap = z.gather(1, y.reshape(-1, 1)).squeeze(1) - z[:, j]
        size = torch.linalg.vector_norm(diff, ord=dual, dim=1)
        d = torch.where(y == j, torch.full_like(gap, float("inf")), gap / size)
        out = torch.minimum(out, d)
    return out


class CountingModel(nn.Module):
    """Counts the rows of every forward pass (queries, gradient passes and the verification forward)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rows = 0

    def forward(self, x: Tensor) -> Tensor:
        self.rows += int(x.shape[0])
        return self.model(x)
