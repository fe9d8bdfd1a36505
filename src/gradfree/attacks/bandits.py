"""Bandits-TD: gradient priors over time and over the image's spatial structure.

Reference: A. Ilyas, L. Engstrom, A. Madry. "Prior Convictions: Black-Box Adversarial Attacks with Bandits
and Priors." ICLR 2019 (arXiv:1807.07978). Settings the text leaves open follow the authors' released code
(github.com/MadryLab/blackbox-bandits, ``src/main.py`` and ``src/configs``).

* **The prior** ``v`` (Sec. 4, Algorithm 2) is a running estimate of the gradient, kept across iterations
  (the **time** prior) and at a coarser resolution, ``tile x tile`` pixels sharing one value (the **data**
  prior, Sec. 4.2 "tiling"); it is upsampled to the image by nearest neighbour.
* **Exploration** (Algorithm 2): ``u ~ N(0, I / dim)`` scaled by ``delta``; the loss ``L`` is queried at
  ``x + eta q / ||q||`` for ``q = up(v +- delta u)``, and ``Delta = (L(q+) - L(q-)) / (eta delta) * u``
  estimates the gradient of the directional "bandit reward" ``<v, grad L>``.
* **Prior update**: exponentiated gradients on ``(v + 1) / 2`` for L-inf (``eg_step``, the prior stays in
  ``[-1, 1]``), plain gradient ascent for L2 (``gd_prior_step``).
* **Image update**: ``x <- Proj(x + h sign(up(v)))`` for L-inf, ``x <- Proj(x + h up(v) / ||up(v)||)`` for L2.
* **Loss**: the code's cross-entropy (``loss="ce"``, ascended); ``"margin"`` uses the C&W margin.

Defaults per norm are the authors' ImageNet configs (``linf.json``: ``fd_eta = 0.1, online_lr = 100,
exploration = 1``; ``l2.json``: ``fd_eta = 0.01, online_lr = 0.1, exploration = 0.01``), with the image step
as a fraction of ``eps`` (their 0.01 at eps 0.05 and 0.5 at eps 5: a fifth and a tenth) and tiles of 4
pixels for 28-32 pixel images (their 299-pixel images had tiles of about 6).

Queries per iteration and image: 2 (the exploration pair) + 1 for the new iterate, which is how a success
is seen. (The reference code does not count that last query; here every query counts.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gradfree.attacks.base import Attack, Session, register
from gradfree.attacks.steps import SCORE_LOSSES, ScoreLoss, project, score_loss
from gradfree.optim.options import check

DEFAULTS = {"linf": {"fd_eta": 0.1, "online_lr": 100.0, "exploration": 1.0, "step": 0.2},
            "l2": {"fd_eta": 0.01, "online_lr": 0.1, "exploration": 0.01, "step": 0.1}}
"""The authors' per-norm settings (see the module docstring); ``None`` options take these."""


@dataclass(frozen=True)
class BanditsOptions:
    """Bandits-TD's options (``None``: the per-norm default of :data:`DEFAULTS`).

    Attributes:
        tile: pixels per side of one prior value (the data prior; 1 turns it off).
        fd_eta: the finite-difference step ``eta`` (an L2 length in pixels).
        online_lr: the prior's learning rate.
        exploration: ``delta``, the exploration scale.
        step: the image step as a fraction of ``eps``.
        loss: ``"ce"`` (the authors') or ``"margin"``.
    """

    tile: int = 4
    fd_eta: float | None = None
    online_lr: float | None = None
    exploration: float | None = None
    step: float | None = None
    loss: ScoreLoss = "ce"

    def __post_init__(self) -> None:
        check(self.tile >= 1, "bandits-td", f"tile must be >= 1, got {self.tile}")
        for name in ("fd_eta", "online_lr", "exploration", "step"):
            value = getattr(self, name)
            check(value is None or value > 0, "bandits-td", f"{name} must be positive, got {value}")
        check(self.loss in SCORE_LOSSES, "bandits-td",
              f"loss must be one of {', '.join(SCORE_LOSSES)}, got {self.loss!r}")

    def resolved(self, norm: str) -> dict[str, float]:
        """fd_eta, online_lr, exploration and step with the per-norm defaults filled in."""
        return {k: float(getattr(self, k) if getattr(self, k) is not None else v) for k, v in DEFAULTS[norm].items()}


def _norm(t: Tensor) -> Tensor:
    """Per-row L2 norms shaped to broadcast, with 0 replaced by 1e-8 (as the authors' ``norm``)."""
    n = torch.linalg.vector_norm(t.flatten(1), dim=1)
    n = n + (n == 0).to(n.dtype) * 1e-8
    return n.reshape(-1, *[1] * (t.ndim - 1))


def eg_step(v: Tensor, g: Tensor, lr: float) -> Tensor:
    """Exponentiated-gradient ascent on a prior in ``[-1, 1]`` (the authors' ``eg_step``)."""
    real = (v + 1) / 2
    pos = real * torch.exp(lr * g)
    neg = (1 - real) * torch.exp(-lr * g)
    return 2 * pos / (pos + neg) - 1


class BanditsTD(Attack):
    """Bandits-TD (Ilyas et al. 2019): time- and data-dependent gradient priors, L-inf and L2."""

    name = "bandits-td"
    Options = BanditsOptions
    options: BanditsOptions
    norms = ("linf", "l2")

    def run(self, s: Session, *, starts: Tensor | None = None) -> None:
        del starts
        o = self.options
        assert s.goal.eps is not None
        eps, norm = s.goal.eps, s.goal.norm
        h = o.resolved(norm)
        image = len(s.shape) == 3
        prior_shape = ((s.shape[0], math.ceil(s.shape[1] / o.tile), math.ceil(s.shape[2] / o.tile)) if image
                       else s.shape)
        prior = torch.zeros(s.n, *prior_shape, dtype=s.x0.dtype, device=s.device)
        dim = prior[0].numel()
        x = s.x0.clone()

        def up(v: Tensor) -> Tensor:
            return F.interpolate(v, size=s.shape[1:], mode="nearest") if image and o.tile > 1 else v

        while True:
            active = s.active_indices()
            g = s.affordable(active, 3)
            s.finish(active[~torch.isin(active, g)])
            if g.numel() == 0:
                return
            b = g.numel()
            noise = h["exploration"] * torch.randn(b, *prior_shape, generator=s.generator, dtype=x.dtype,
                                                   device=s.device) / math.sqrt(dim)
            q1, q2 = up(prior[g] + noise), up(prior[g] - noise)
            points = torch.cat([x[g] + h["fd_eta"] * q1 / _norm(q1), x[g] + h["fd_eta"] * q2 / _norm(q2)])
            owners = torch.cat([g, g])
            reward = -score_loss(s, s.query(points, owners), owners, o.loss)  # the code ascends its loss
            deriv = (reward[:b] - reward[b:]) / (h["fd_eta"] * h["exploration"])
            going = ~s.success[g]  # an exploration point inside the ball may already have succeeded
            g, deriv, noise = g[going], deriv[going], noise[going]
            if g.numel() == 0:
                continue
            estimate = deriv.to(x.dtype).reshape(-1, *[1] * len(prior_shape)) * noise
            if norm == "linf":
                prior[g] = eg_step(prior[g], estimate, h["online_lr"])
                moved = x[g] + h["step"] * eps * torch.sign(up(prior[g]))
            else:
                prior[g] = prior[g] + h["online_lr"] * estimate
                p = up(prior[g])
                moved = x[g] + h["step"] * eps * p / _norm(p)
            x[g] = project(moved, s.x0[g], eps, norm)
            s.query(x[g], g)  # the new iterate: a success is seen here


register(BanditsTD, summary="Bandits-TD (Ilyas et al. 2019): time and data (tiling) gradient priors, L-inf and L2",
         kind="score")
