"""Square Attack: random search over square-shaped updates, one query per step.

Reference: M. Andriushchenko, F. Croce, N. Flammarion, M. Hein. "Square Attack: a query-efficient black-box
adversarial attack via random search." ECCV 2020 (arXiv:1912.00049). Settings the text leaves open follow
the authors' released code (github.com/max-andr/square-attack, ``attack.py``).

* **L-inf** (Sec. 3.1, Algorithms 1-2): start from vertical stripes of ``+-eps`` (one sign per column and
  channel); each step redraws one square window of side ``s`` with one ``+-eps`` value per channel (redrawn
  until it changes the image), and keeps the candidate when the loss drops.
* **L2** (Sec. 3.2, Algorithm 3): start from a grid of "pseudo-Gaussian" bumps with random signs scaled to
  ``||delta|| = eps``; each step moves the perturbation's mass inside a first window and zeroes a second
  one, putting a new bump of random sign into the first, then rescales to ``eps``.
* **Schedule** (Sec. 3, "p_selection"): the fraction ``p`` of pixels a window covers starts at ``p_init``
  and halves at 10, 50, 200, 500, 1,000, 2,000, 4,000, 6,000 and 8,000 of every 10,000 queries of the
  budget, so the schedule scales with the budget.
* **Loss**: the margin ``z_y - max_{i != y} z_i`` (untargeted, the authors'); targeted: the target's
  cross-entropy (``loss="ce"``, the paper's choice for targeted attacks) or the margin.

Queries: 1 for the initial point and 1 per step, each also the success check. Windows are placed per
image (the reference draws one L2 window position per batch). Flat inputs of ``s * s`` values are treated
as ``s x s`` grey images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gradfree.attacks.base import Attack, Session, register
from gradfree.attacks.steps import SCORE_LOSSES, ScoreLoss, score_loss
from gradfree.errors import ConfigError
from gradfree.optim.options import check

_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
             (8000, 256), (10000, 512))


def grid_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The ``(C, H, W)`` the windows live in: the image's own, or ``(1, s, s)`` for a flat input of ``s * s``
    values (e.g. scikit-learn's 8 x 8 digits)."""
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    d = 1
    for v in shape:
        d *= v
    side = math.isqrt(d)
    if side * side != d or side < 2:
        raise ConfigError(f"the Square Attack needs image inputs (C, H, W) or flat square ones, got {shape}")
    return 1, side, side


def p_selection(p_init: float, it: int, n_iters: int) -> float:
    """The fraction of pixels a window covers at step ``it`` of ``n_iters`` (the authors' schedule)."""
    t = int(it / max(n_iters, 1) * 10000)
    for i, (end, div) in enumerate(_SCHEDULE):
        start = _SCHEDULE[i - 1][0] if i else -1
        if i and start < t <= end:
            return p_init / div
    return p_init


def pseudo_gaussian_rectangles(x: int, y: int) -> Tensor:
    """The authors' ``pseudo_gaussian_pert_rectangles``: nested rectangles of weight ``1 / (k + 1)^2``,
    unit L2 norm, float64 ``(x, y)``."""
    delta = torch.zeros(x, y, dtype=torch.float64)
    xc, yc = x // 2 + 1, y // 2 + 1
    c0, c1 = xc - 1, yc - 1
    for k in range(max(xc, yc)):
        delta[max(c0, 0):min(c0 + 2 * k + 1, x), max(0, c1):min(c1 + 2 * k + 1, y)] += 1.0 / (k + 1) ** 2
        c0 -= 1
        c1 -= 1
    return delta / torch.linalg.vector_norm(delta)


def meta_pseudo_gaussian(s: int) -> Tensor:
    """Two opposite pseudo-Gaussian halves in an ``s x s`` window, unit norm (the authors'
    ``meta_pseudo_gaussian_pert`` with two sub-squares, before its random transpose)."""
    delta = torch.zeros(s, s, dtype=torch.float64)
    delta[: s // 2] = pseudo_gaussian_rectangles(s // 2, s)
    delta[s // 2:] = -pseudo_gaussian_rectangles(s - s // 2, s)
    return delta / torch.linalg.vector_norm(delta)


def _window_index(corner_h: Tensor, corner_w: Tensor, s: int) -> tuple[Tensor, Tensor]:
    """Row and column indices ``(b, 1, s, 1)`` and ``(b, 1, 1, s)`` of windows with the given corners."""
    ar = torch.arange(s, device=corner_h.device)
    return (corner_h.reshape(-1, 1, 1, 1) + ar.reshape(1, 1, s, 1),
            corner_w.reshape(-1, 1, 1, 1) + ar.reshape(1, 1, 1, s))


@dataclass(frozen=True)
class SquareOptions:
    """Square Attack's options.

    Attributes:
        p_init: the first window's fraction of the image (``None``: 0.05 for L-inf, 0.1 for L2, the authors'
            standard values).
        loss: the loss of a targeted attack, ``"ce"`` (the paper's) or ``"margin"``; untargeted attacks use
            the margin.
    """

    p_init: float | None = None
    loss: ScoreLoss = "ce"

    def __post_init__(self) -> None:
        check(self.p_init is None or 0 < self.p_init <= 1, "square", f"p_init must be in (0, 1], got {self.p_init}")
        check(self.loss in SCORE_LOSSES, "square", f"loss must be one of {', '.join(SCORE_LOSSES)}")


class Square(Attack):
    """Square Attack (Andriushchenko et al. 2020): random square updates at the boundary of the ball."""

    name = "square"
    Options = SquareOptions
    options: SquareOptions
    norms = ("linf", "l2")

    def run(self, s: Session, *, starts: Tensor | None = None) -> None:
        del starts
        self._grid = grid_shape(s.shape)
        assert s.goal.eps is not None and s.budget is not None
        o = self.options
        linf = s.goal.norm == "linf"
        p_init = o.p_init if o.p_init is not None else (0.05 if linf else 0.1)
        kind = o.loss if s.targets is not None else "margin"
        n_iters = s.budget
        x0 = s.x0.reshape(s.n, *self._grid)
        best = self._initial(s, linf)
        idx = s.active_indices()
        loss = torch.full((s.n,), float("inf"), dtype=torch.float64, device=s.device)
        loss[idx] = score_loss(s, s.query(best[idx].reshape(-1, *s.shape), idx), idx, kind)
        it = 0
        while True:
            g = s.active_indices()
            if g.numel() == 0:
                return
            p = p_selection(p_init, it, n_iters)
            candidate = self._linf_step(s, g, best[g], x0[g], p) if linf else self._l2_step(s, g, best[g], x0[g], p)
            new = score_loss(s, s.query(candidate.reshape(-1, *s.shape), g), g, kind)
            better = new < loss[g]
            loss[g[better]] = new[better]
            best[g[better]] = candidate[better]
            it += 1

    def _initial(self, s: Session, linf: bool) -> Tensor:
        c, h, w = self._grid
        eps = float(s.goal.eps)  # type: ignore[arg-type]
        x0 = s.x0.reshape(s.n, c, h, w)
        if linf:
            signs = torch.randint(0, 2, (s.n, c, 1, w), generator=s.generator, device=s.device) * 2 - 1
            return (x0 + eps * signs.to(x0.dtype)).clamp(0, 1)
        delta = torch.zeros(s.n, c, h, w, dtype=torch.float64, device=s.device)
        side = max(1, h // 5)
        offset = (h - side * 5) // 2
        bump = meta_pseudo_gaussian(side).to(s.device)
        for i in range(h // side):
            for j in range(w // side):
                r, q = offset + i * side, offset + j * side
                if r < 0 or q < 0 or r + side > h or q + side > w:
                    continue
                signs = torch.randint(0, 2, (s.n, c, 1, 1), generator=s.generator, device=s.device) * 2 - 1
                delta[:, :, r:r + side, q:q + side] += bump * signs
        size = torch.linalg.vector_norm(delta.reshape(s.n, -1), dim=1).clamp_min(1e-12).reshape(-1, 1, 1, 1)
        return (x0 + (delta / size * eps).to(x0.dtype)).clamp(0, 1)

    def _corners(self, s: Session, b: int, side: int) -> tuple[Tensor, Tensor]:
        h, w = self._grid[1], self._grid[2]
        return (torch.randint(0, max(1, h - side), (b,), generator=s.generator, device=s.device),
                torch.randint(0, max(1, w - side), (b,), generator=s.generator, device=s.device))

    def _linf_step(self, s: Session, g: Tensor, best: Tensor, x0: Tensor, p: float) -> Tensor:
        c, h, w = self._grid
        eps = float(s.goal.eps)  # type: ignore[arg-type]
        b = g.numel()
        side = min(max(int(round((p * h * w) ** 0.5)), 1), h - 1)
        rows, cols = _window_index(*self._corners(s, b, side), side)
        batch = torch.arange(b, device=s.device).reshape(-1, 1, 1, 1)
        chan = torch.arange(c, device=s.device).reshape(1, -1, 1, 1)
        delta = best - x0
        old = best[batch, chan, rows, cols]
        pending = torch.ones(b, dtype=torch.bool, device=s.device)
        for _ in range(100):  # redraw until the window changes (prob. 1/2^c per draw of staying the same)
            signs = torch.randint(0, 2, (b, c, 1, 1), generator=s.generator, device=s.device) * 2 - 1
            trial = (x0[batch, chan, rows, cols] + eps * signs.to(x0.dtype)).clamp(0, 1)
            same = ((trial - old).abs() < 1e-7).reshape(b, -1).all(dim=1)
            take = pending.reshape(-1, 1, 1, 1)
            window = delta[batch, chan, rows, cols]
            delta[batch, chan, rows, cols] = torch.where(take, eps * signs.to(x0.dtype).expand_as(window), window)
            pending &= same
            if not bool(pending.any()):
                break
        return (x0 + delta).clamp(0, 1)

    def _l2_step(self, s: Session, g: Tensor, best: Tensor, x0: Tensor, p: float) -> Tensor:
        c, h, w = self._grid
        eps = float(s.goal.eps)  # type: ignore[arg-type]
        b = g.numel()
        side = max(int(round((p * h * w) ** 0.5)), 3)
        side += 1 - side % 2  # odd
        side = min(side, h - 1 if (h - 1) % 2 else h - 2) if h > 3 else min(side, h)
        rows1, cols1 = _window_index(*self._corners(s, b, side), side)
        rows2, cols2 = _window_index(*self._corners(s, b, side), side)
        batch = torch.arange(b, device=s.device).reshape(-1, 1, 1, 1)
        chan = torch.arange(c, device=s.device).reshape(1, -1, 1, 1)
        delta = (best - x0).to(torch.float64)
        mask1 = torch.zeros(b, 1, h, w, dtype=torch.bool, device=s.device)
        mask1[batch, torch.zeros_like(batch), rows1, cols1] = True
        mask2 = mask1.clone()
        mask2[batch, torch.zeros_like(batch), rows2, cols2] = True
        window1 = delta[batch, chan, rows1, cols1]
        norm_window = torch.linalg.vector_norm(window1, dim=(2, 3), keepdim=True)
        norm_image = torch.linalg.vector_norm(delta.reshape(b, -1), dim=1).reshape(-1, 1, 1, 1)
        norm_windows = torch.linalg.vector_norm(delta * mask2, dim=(2, 3), keepdim=True)
        bump = meta_pseudo_gaussian(side).to(s.device)
        flip = torch.rand(b, generator=s.generator, device=s.device) > 0.5
        bumps = torch.where(flip.reshape(-1, 1, 1), bump.t().unsqueeze(0), bump.unsqueeze(0)).unsqueeze(1)
        signs = (torch.randint(0, 2, (b, c, 1, 1), generator=s.generator, device=s.device) * 2 - 1).to(delta.dtype)
        new = bumps * signs + window1 / (1e-10 + norm_window)
        budget = (torch.clamp(eps ** 2 - norm_image ** 2, min=0) / c + norm_windows ** 2).sqrt()
        new = new / torch.linalg.vector_norm(new, dim=(2, 3), keepdim=True).clamp_min(1e-12) * budget
        delta[batch, chan, rows2, cols2] = 0.0
        delta[batch, chan, rows1, cols1] = new
        size = torch.linalg.vector_norm(delta.reshape(b, -1), dim=1).clamp_min(1e-12).reshape(-1, 1, 1, 1)
        return (x0 + (delta / size * eps).to(x0.dtype)).clamp(0, 1)


register(Square, summary="Square Attack (Andriushchenko et al. 2020): random search with square updates, L-inf and L2",
         kind="score")
