"""ZO-signSGD: the sign of a random-direction gradient estimate, as a projected L-inf attack.

Reference: S. Liu, P.-Y. Chen, X. Chen, M. Hong. "signSGD via Zeroth-Order Oracle." ICLR 2019.

* **Estimate** (Sec. 3, eq. 3): forward differences along ``q`` directions uniform on the unit sphere,
  ``g = D / (mu q) sum_j (f(x + mu u_j) - f(x)) u_j`` (:func:`~gradfree.attacks.steps.sphere_forward`).
* **Step** (Algorithm 1): ``x <- Proj(x - eta sign(g))`` onto the L-inf ball and the box (the paper's
  black-box attack experiment of Sec. 6 constrains the perturbation the same way).

Queries per iteration and image: 1 for ``f(x)`` — which is also how a success of the current iterate is
seen — then ``q`` for the perturbed points (skipped once the iterate has succeeded).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from gradfree.attacks.base import Attack, Session, register
from gradfree.attacks.steps import (
    SCORE_LOSSES,
    ScoreLoss,
    descent_step,
    gaussian_directions,
    project,
    score_loss,
    sphere_forward,
)
from gradfree.optim.options import check

ROW_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class ZOSignOptions:
    """ZO-signSGD's options.

    Attributes:
        directions: ``q``, random directions per estimate.
        mu: the finite-difference step (in pixels).
        step: the sign step as a fraction of ``eps``.
        loss: ``"margin"`` (the C&W loss the paper attacks with) or ``"ce"``.
    """

    directions: int = 20
    mu: float = 0.005
    step: float = 0.1
    loss: ScoreLoss = "margin"

    def __post_init__(self) -> None:
        check(self.directions >= 1, "zo-signsgd", f"directions must be >= 1, got {self.directions}")
        check(self.mu > 0 and self.step > 0, "zo-signsgd", "mu and step must be positive")
        check(self.loss in SCORE_LOSSES, "zo-signsgd",
              f"loss must be one of {', '.join(SCORE_LOSSES)}, got {self.loss!r}")


class ZOSignSGD(Attack):
    """ZO-signSGD (Liu et al. 2019): sphere forward-difference estimates, projected sign steps."""

    name = "zo-signsgd"
    Options = ZOSignOptions
    options: ZOSignOptions
    norms = ("linf",)

    def run(self, s: Session, *, starts: Tensor | None = None) -> None:
        del starts
        o = self.options
        assert s.goal.eps is not None
        eps, q = s.goal.eps, o.directions
        x = s.x0.clone()
        group = max(1, ROW_ELEMENTS // (q * s.dims))
        while True:
            idx = s.active_indices()  # active images have at least one query left: the centre
            if idx.numel() == 0:
                return
            for start in range(0, idx.numel(), group):
                g = idx[start:start + group]
                center = score_loss(s, s.query(x[g], g), g, o.loss)
                # The centre query may have succeeded (then the image is done); the estimate needs q more.
                going = ~s.success[g] & (s.remaining(g).to(s.device) >= q)
                s.finish(g[~going])
                g, center = g[going], center[going]
                b = g.numel()
                if b == 0:
                    continue
                u = gaussian_directions(b, q, s.dims, generator=s.generator, dtype=x.dtype, device=s.device,
                                        sphere=True)
                points = x[g].reshape(b, 1, s.dims) + o.mu * u
                owners = g.repeat_interleave(q)
                loss = score_loss(s, s.query(points.reshape(b * q, *s.shape), owners), owners, o.loss)
                grad = sphere_forward(center, loss.reshape(b, q), u, o.mu)
                step = descent_step(x[g], grad.reshape(b, *s.shape), o.step * eps, "linf")
                x[g] = project(step, s.x0[g], eps, "linf")


register(ZOSignSGD, summary="ZO-signSGD (Liu et al. 2019): sign of sphere forward-difference estimates, L-inf",
         kind="score")
