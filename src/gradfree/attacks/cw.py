"""C&W-L2: the white-box Carlini-Wagner attack with autograd, the reference ZOO is judged against.

Reference: N. Carlini, D. Wagner. "Towards Evaluating the Robustness of Neural Networks." IEEE S&P 2017
(arXiv:1608.04644), Sec. V (the L2 attack). Settings follow the authors' code (``nn_robust_attacks``,
``l2_attack.py``): Adam with learning rate 0.01 on the tanh variable, binary search over ``c`` from 1e-3,
early abort every tenth of the iterations, confidence 0.

The objective, the change of variables, the binary search and the early abort are ZOO's (shared in
:mod:`gradfree.attacks.cw_objective`); the difference is the exact gradient of every coordinate at once
instead of ``k`` coordinate estimates. One forward-and-backward pass per image and iteration is charged as
one query.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from gradfree.attacks.base import WHITE_BOX, Attack, Session, margins, register
from gradfree.attacks.cw_objective import ConstantSearch, EarlyAbort, from_tanh_space, to_tanh_space
from gradfree.optim.options import check


@dataclass(frozen=True)
class CWOptions:
    """C&W-L2's options (the authors' defaults, except 1,000 iterations instead of 10,000).

    Attributes:
        iterations: Adam steps per binary-search step.
        binary_steps: binary-search steps over ``c``.
        initial_const: the first ``c``.
        confidence: kappa.
        lr: Adam's learning rate on the tanh variable.
        abort_early: stop a step whose loss stalls (checked every tenth of the iterations).
    """

    iterations: int = 1000
    binary_steps: int = 9
    initial_const: float = 1e-3
    confidence: float = 0.0
    lr: float = 0.01
    abort_early: bool = True

    def __post_init__(self) -> None:
        check(self.iterations >= 1 and self.binary_steps >= 1, "cw-l2", "iterations and binary_steps must be >= 1")
        check(self.initial_const > 0 and self.lr > 0, "cw-l2", "initial_const and lr must be positive")
        check(self.confidence >= 0, "cw-l2", f"confidence must be >= 0, got {self.confidence}")


class CarliniWagnerL2(Attack):
    """C&W-L2 (Carlini & Wagner 2017), white-box: Adam on the tanh variable, binary search over ``c``."""

    name = "cw-l2"
    Options = CWOptions
    options: CWOptions
    norms = ("l2",)
    access_levels = (WHITE_BOX,)
    bounded = False

    def confidence(self) -> float:
        return self.options.confidence

    def run(self, s: Session, *, starts: Tensor | None = None) -> None:
        del starts
        o = self.options
        w0 = to_tanh_space(s.x0)
        search = ConstantSearch(s.n, o.initial_const, steps=o.binary_steps, device=s.device)
        beta1, beta2, adam_eps = 0.9, 0.999, 1e-8  # tf.train.AdamOptimizer's defaults, as the authors'
        for step in range(o.binary_steps):
            images = s.active_indices()
            if images.numel() == 0:
                break
            const = search.for_step(step)
            w = w0.clone()
            mean, var = torch.zeros_like(w), torch.zeros_like(w)
            running = torch.zeros(s.n, dtype=torch.bool, device=s.device)
            running[images] = True
            found = torch.zeros(s.n, dtype=torch.bool, device=s.device)
            abort = EarlyAbort(s.n, max(1, o.iterations // 10), device=s.device)
            for it in range(o.iterations):
                g = torch.nonzero(running & s.active).flatten()
                if g.numel() == 0:
                    break
                c = const[g]
                # The model's part of the gradient comes from autograd with respect to the images (what the
                # session charges and checks); the exact L2 part and the change of variables
                # (dx/dw = (1 - tanh^2) / 2) are chained in by hand.
                x = from_tanh_space(w[g])
                logits, part, grad_x = s.gradients(x, g, functools.partial(self._classification, s=s, c=c))
                sq = ((x - s.x0[g]) ** 2).reshape(g.numel(), -1).sum(dim=1)
                value = sq.to(torch.float64) + part.to(torch.float64)
                grad_w = (grad_x + 2 * (x - s.x0[g])) * (1 - torch.tanh(w[g]) ** 2) / 2
                tt = it + 1
                mean[g] = beta1 * mean[g] + (1 - beta1) * grad_w
                var[g] = beta2 * var[g] + (1 - beta2) * grad_w * grad_w
                lr_t = o.lr * (1 - beta2 ** tt) ** 0.5 / (1 - beta1 ** tt)
                w[g] = w[g] - lr_t * mean[g] / (var[g].sqrt() + adam_eps)
                found[g] |= margins(logits, s.labels[g], None if s.targets is None else s.targets[g]) > o.confidence
                if o.abort_early:
                    running[g[abort.stalled(it, g, value)]] = False
            search.update(images, found[images])
        s.info.update(const=search.const.tolist(), upper=search.upper.tolist())

    def _classification(self, logits: Tensor, owners: Tensor, s: Session, c: Tensor) -> Tensor:
        """``c * max(-margin, -kappa)`` of each row: the part of the objective the model's gradient enters."""
        targets = None if s.targets is None else s.targets[owners]
        f = torch.clamp(-margins(logits, s.labels[owners], targets), min=-self.options.confidence)
        return c.to(logits.dtype) * f


register(CarliniWagnerL2, summary="C&W-L2 (Carlini & Wagner 2017), white-box autograd reference for ZOO",
         kind="white-box")
