"""NES: natural-evolution-strategies gradient estimates inside projected gradient descent.

Reference: A. Ilyas, L. Engstrom, A. Athalye, J. Lin. "Black-box Adversarial Attacks with Limited Queries
and Information." ICML 2018 (arXiv:1804.08598).

* **Estimate** (Sec. 2.2, Algorithm 1): ``n`` queries as ``n / 2`` antithetic Gaussian pairs,
  ``g = 1 / (n sigma) sum_i (L(x + sigma u_i) - L(x - sigma u_i)) u_i``
  (:func:`~gradfree.attacks.steps.antithetic_gaussian`; the paper's ``n = 50``, ``sigma = 0.001``).
* **Step** (Sec. 2.3): projected gradient descent, ``x <- Proj(x - eta sign(g))`` for L-inf and
  ``x <- Proj(x - eta g / ||g||)`` for L2, optionally with momentum on ``g`` (the authors' code).
* **Loss**: the paper minimises the target's cross-entropy (``loss="ce"``; untargeted: the true class's
  log-probability); ``loss="margin"`` uses the C&W margin instead.

Queries per iteration and image: ``n`` for the estimate plus 1 for the new iterate, which is how a success is
seen (every query is counted, that one included). The step size is a fraction of ``eps``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradfree.attacks.base import Attack, Session, register
from gradfree.attacks.steps import (
    SCORE_LOSSES,
    ScoreLoss,
    antithetic_gaussian,
    descent_step,
    gaussian_directions,
    project,
    score_loss,
)
from gradfree.optim.options import check

ROW_ELEMENTS = 1 << 24
"""Bound on the elements of one group's query rows (images are processed in groups under it)."""


@dataclass(frozen=True)
class NESOptions:
    """NES's options.

    Attributes:
        samples: queries per gradient estimate (even: ``samples / 2`` antithetic pairs).
        sigma: the search distribution's standard deviation (in pixels).
        step: the step size as a fraction of ``eps``.
        momentum: averaging of successive estimates (0: none).
        loss: ``"ce"`` (the paper's) or ``"margin"``.
    """

    samples: int = 50
    sigma: float = 0.001
    step: float = 0.1
    momentum: float = 0.0
    loss: ScoreLoss = "margin"

    def __post_init__(self) -> None:
        check(self.samples >= 2 and self.samples % 2 == 0, "nes",
              f"samples must be an even number >= 2 (antithetic pairs), got {self.samples}")
        check(self.sigma > 0 and self.step > 0, "nes", "sigma and step must be positive")
        check(0 <= self.momentum < 1, "nes", f"momentum must be in [0, 1), got {self.momentum}")
        check(self.loss in SCORE_LOSSES, "nes", f"loss must be one of {', '.join(SCORE_LOSSES)}, got {self.loss!r}")


class NES(Attack):
    """NES (Ilyas et al. 2018): antithetic Gaussian estimates, projected sign / normalised steps."""

    name = "nes"
    Options = NESOptions
    options: NESOptions
    norms = ("linf", "l2")

    def run(self, s: Session, *, starts: Tensor | None = None) -> None:
        del starts
        o = self.options
        assert s.goal.eps is not None
        eps, norm, q = s.goal.eps, s.goal.norm, o.samples // 2
        cost = o.samples + 1
        x = s.x0.clone()
        velocity = torch.zeros(s.n, s.dims, dtype=x.dtype, device=s.device)
        group = max(1, ROW_ELEMENTS // (o.samples * s.dims))
        while True:
            active = s.active_indices()
            idx = s.affordable(active, cost)
            s.finish(active[~torch.isin(active, idx)])
            if idx.numel() == 0:
                return
            for start in range(0, idx.numel(), group):
                g = idx[start:start + group]
                b = g.numel()
                center = x[g].reshape(b, 1, s.dims)
                u = gaussian_directions(b, q, s.dims, generator=s.generator, dtype=x.dtype, device=s.device)
                points = torch.cat([center + o.sigma * u, center - o.sigma * u], dim=1)
                owners = g.repeat_interleave(2 * q)
                out = s.query(points.reshape(b * 2 * q, *s.shape), owners)
                loss = score_loss(s, out, owners, o.loss).reshape(b, 2 * q)
                grad = antithetic_gaussian(loss[:, :q], loss[:, q:], u, o.sigma)
                going = ~s.success[g]  # a sample inside the ball may already have succeeded: stop those
                g, grad = g[going], grad[going]
                if g.numel() == 0:
                    continue
                velocity[g] = o.momentum * velocity[g] + (1 - o.momentum) * grad
                step = descent_step(x[g], velocity[g].reshape(g.numel(), *s.shape), o.step * eps, norm)
                x[g] = project(step, s.x0[g], eps, norm)
                s.query(x[g], g)  # the new iterate: a success is seen here


register(NES, summary="NES (Ilyas et al. 2018): antithetic Gaussian estimates + projected steps, L-inf and L2",
         kind="score")
