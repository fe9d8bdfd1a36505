"""PGD: projected gradient descent with autograd, the white-box reference of the eps-bounded attacks.

Reference: A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu. "Towards Deep Learning Models Resistant to
Adversarial Attacks." ICLR 2018 (arXiv:1706.06083), Sec. 2 (the projected-gradient attack, random start).

``x_{t+1} = Proj(x_t - alpha sign(grad L))`` for L-inf and ``Proj(x_t - alpha grad L / ||grad L||)`` for L2,
from a uniformly random start in the ball, with ``alpha = step * eps`` (default ``2.5 / steps``, the usual
choice of Madry et al.'s code) and the cross-entropy loss (or the C&W margin). Each forward-and-backward pass
is charged as one query; an image stops at its first adversarial iterate. On a model whose input gradient is
zero almost everywhere (input quantisation: :mod:`gradfree.victims`) the sign is 0 and PGD stays at its
random start — the failure the black-box attacks are measured against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gradfree.attacks.base import WHITE_BOX, Attack, Session, margins, register
from gradfree.attacks.steps import SCORE_LOSSES, ScoreLoss, descent_step, project
from gradfree.optim.options import check


@dataclass(frozen=True)
class PGDOptions:
    """PGD's options.

    Attributes:
        steps: gradient steps (each a query: one forward and backward pass per image).
        step: the step size as a fraction of ``eps`` (``None``: ``2.5 / steps``).
        random_start: start from a uniform point in the ball (L-inf) or a uniform direction and radius (L2).
        loss: ``"ce"`` (Madry et al.) or ``"margin"``.
    """

    steps: int = 100
    step: float | None = None
    random_start: bool = True
    loss: ScoreLoss = "ce"

    def __post_init__(self) -> None:
        check(self.steps >= 1, "pgd", f"steps must be >= 1, got {self.steps}")
        check(self.step is None or self.step > 0, "pgd", f"step must be positive, got {self.step}")
        check(self.loss in SCORE_LOSSES, "pgd", f"loss must be one of {', '.join(SCORE_LOSSES)}")


class PGD(Attack):
    """PGD (Madry et al. 2018), white-box: autograd gradients of the loss with respect to the input."""

    name = "pgd"
    Options = PGDOptions
    options: PGDOptions
    norms = ("linf", "l2")
    access_levels = (WHITE_BOX,)
    needs_budget = False  # the step count bounds the passes

    def run(self, s: Session, *, starts: Tensor | None = None) -> None:
        del starts
        o = self.options
        assert s.goal.eps is not None
        eps, norm = s.goal.eps, s.goal.norm
        alpha = (o.step if o.step is not None else 2.5 / o.steps) * eps
        x = s.x0.clone()
        if o.random_start:
            x = project(x + self._start(s, eps, norm), s.x0, eps, norm)

        def loss(logits: Tensor, owners: Tensor) -> Tensor:
            if o.loss == "margin":
                return -margins(logits, s.labels[owners], None if s.targets is None else s.targets[owners])
            if s.targets is not None:
                return F.cross_entropy(logits, s.targets[owners], reduction="none")
            return -F.cross_entropy(logits, s.labels[owners], reduction="none")

        for _ in range(o.steps + 1):  # the last pass only checks the last iterate
            g = s.active_indices()
            if g.numel() == 0:
                return
            _, _, grad = s.gradients(x[g], g, loss)
            g_on = g[~s.success[g]]
            grad = grad[~s.success[g]]
            x[g_on] = project(descent_step(x[g_on], grad, alpha, norm), s.x0[g_on], eps, norm)

    def _start(self, s: Session, eps: float, norm: str) -> Tensor:
        shape = (s.n, *s.shape)
        if norm == "linf":
            return (torch.rand(shape, generator=s.generator, dtype=s.x0.dtype, device=s.device) * 2 - 1) * eps
        u = torch.randn(shape, generator=s.generator, dtype=s.x0.dtype, device=s.device)
        u = u / torch.linalg.vector_norm(u.reshape(s.n, -1), dim=1).clamp_min(1e-12).reshape(-1, *[1] * len(s.shape))
        radius = torch.rand(s.n, generator=s.generator, dtype=s.x0.dtype, device=s.device) ** (1 / max(s.dims, 1))
        return u * (eps * radius).reshape(-1, *[1] * len(s.shape))


register(PGD, summary="PGD (Madry et al. 2018), white-box autograd reference, L-inf and L2", kind="white-box")
