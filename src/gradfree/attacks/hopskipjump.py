"""HopSkipJump: a decision-based attack that sees labels only.

Reference: J. Chen, M. I. Jordan, M. J. Wainwright. "HopSkipJumpAttack: A Query-Efficient Decision-Based
Attack." IEEE S&P 2020 (arXiv:1904.02144). Settings the text leaves open follow the authors' released code
(github.com/Jianbo-Lab/HSJA, ``hsja.py``).

Every query returns a label; ``phi(x) = +1`` when it meets the goal, ``-1`` otherwise.

* **Initialisation** (Sec. 4, "initialization"): a given adversarial start (e.g. an image of the target
  class for a targeted attack), else uniform noise drawn until one is adversarial, pulled towards the
  original by a binary search on the blend ``(1 - a) x0 + a noise`` to within ``a`` of 0.001.
* **Boundary search** (Algorithm 1 "Bin-Search"): L2 — a binary search on the blend towards ``x0`` down to
  ``theta = gamma / d^{3/2}``; L-inf — on the radius of the box ``clip(x, x0 - r, x0 + r)``, down to
  ``min(theta, theta dist)`` with ``theta = gamma / d^2``.
* **Gradient-direction estimate** (Sec. 3, eq. 9-10): ``B_t = B_0 sqrt(t)`` random unit directions (Gaussian
  for L2, uniform for L-inf, capped at ``max_evals``) around the boundary point at radius ``delta_t``
  (0.1 at the first iteration, then ``sqrt(d) theta dist`` for L2, ``d theta dist`` for L-inf), weighted by
  ``phi`` minus its mean (the baseline of eq. 10), normalised.
* **Step** (Sec. 4, "geometric progression"): ``xi_t = dist / sqrt(t)`` along the estimate (its sign for
  L-inf), halved until the point is adversarial; then back to the boundary.

A minimal-distortion attack: it runs ``iterations`` steps (or the budget) and returns the adversarial point
of smallest distortion it queried. With ``eps`` an image stops at the first adversarial point inside the
ball. Departure: the next ``delta_t`` uses the distance after the boundary search (the paper's ``d_{t-1}``;
the reference code's L-inf branch reuses the distance before it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gradfree.attacks.base import Attack, Session, distances, register
from gradfree.optim.options import check

ROW_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class HopSkipJumpOptions:
    """HopSkipJump's options (the reference code's defaults).

    Attributes:
        iterations: gradient-estimate-and-step iterations.
        init_evals: ``B_0``, directions of the first estimate.
        max_evals: the cap on directions per estimate.
        gamma: sets ``theta``, the boundary-search precision and the estimate's radius.
        init_tries: random-noise draws per image while looking for an adversarial start.
        max_halvings: geometric step-size halvings before a step is given up.
    """

    iterations: int = 40
    init_evals: int = 100
    max_evals: int = 10000
    gamma: float = 1.0
    init_tries: int = 100
    max_halvings: int = 25

    def __post_init__(self) -> None:
        check(self.iterations >= 0 and self.init_evals >= 1 and self.max_evals >= self.init_evals,
              "hopskipjump", "iterations >= 0, init_evals >= 1 and max_evals >= init_evals are required")
        check(self.gamma > 0 and self.init_tries >= 1 and self.max_halvings >= 1, "hopskipjump",
              "gamma must be positive, init_tries and max_halvings >= 1")


def _rows(t: Tensor, like: Tensor) -> Tensor:
    return t.reshape(-1, *[1] * (like.ndim - 1))


class HopSkipJump(Attack):
    """HopSkipJump (Chen et al. 2020): boundary search plus sign-of-label gradient-direction estimates."""

    name = "hopskipjump"
    Options = HopSkipJumpOptions
    options: HopSkipJumpOptions
    access_levels = ("label",)
    bounded = False
    uses_starts = True

    def run(self, s: Session, *, starts: Tensor | None = None) -> None:
        o = self.options
        d = s.dims
        l2 = s.goal.norm == "l2"
        theta = o.gamma / (d ** 1.5) if l2 else o.gamma / (d ** 2)
        adv, have = self._initialise(s, starts)
        s.finish(torch.nonzero(~have).flatten())
        images = self._live(s)
        adv[images], dist = self._boundary(s, images, adv[images], theta, l2)
        distance = torch.zeros(s.n, dtype=torch.float64, device=s.device)
        distance[images] = dist
        for t in range(1, o.iterations + 1):
            num = min(int(o.init_evals * math.sqrt(t)), o.max_evals)
            live = self._live(s)
            g = s.affordable(live, num + 1)
            s.finish(live[~torch.isin(live, g)])
            if g.numel() == 0:
                return
            if t == 1:
                delta = torch.full((g.numel(),), 0.1, dtype=torch.float64, device=s.device)
            else:
                delta = (math.sqrt(d) if l2 else d) * theta * distance[g]
            update = self._direction(s, g, adv[g], delta, num, l2)
            if not l2:
                update = torch.sign(update)
            moved, ok = self._geometric(s, g, adv[g], update, distance[g] / math.sqrt(t))
            g, moved = g[ok], moved[ok]
            adv[g] = moved
            g = g[s.remaining(g).to(s.device) > 0]
            adv[g], distance[g] = self._boundary(s, g, adv[g], theta, l2)

    def _live(self, s: Session) -> Tensor:
        """Active images; with ``eps``, those with a success inside the ball are done."""
        if s.goal.eps is not None:
            s.finish(torch.nonzero(s.success).flatten())
        return s.active_indices()

    def _decide(self, s: Session, points: Tensor, owners: Tensor) -> Tensor:
        return s.hits(s.query(points, owners), owners)

    def _initialise(self, s: Session, starts: Tensor | None) -> tuple[Tensor, Tensor]:
        o = self.options
        adv = s.x0.clone()
        have = torch.zeros(s.n, dtype=torch.bool, device=s.device)
        if starts is not None:
            g = s.affordable(s.active_indices(), 1)
            ok = self._decide(s, starts[g].to(s.x0), g)
            adv[g[ok]] = starts[g[ok]].to(s.x0)
            have[g[ok]] = True
        noise = torch.zeros_like(s.x0)
        from_noise = torch.zeros_like(have)
        for _ in range(o.init_tries):
            g = s.affordable(torch.nonzero(~have & s.active).flatten(), 1)
            if g.numel() == 0:
                break
            draw = torch.rand(g.numel(), *s.shape, generator=s.generator, dtype=s.x0.dtype, device=s.device)
            ok = self._decide(s, draw, g)
            noise[g[ok]] = draw[ok]
            have[g[ok]] = True
            from_noise[g[ok]] = True
        # Pull random starts towards the original: binary search on the blend, to 0.001.
        g = torch.nonzero(from_noise).flatten()
        low = torch.zeros(g.numel(), dtype=s.x0.dtype, device=s.device)
        high = torch.ones_like(low)
        while g.numel():
            searching = (high - low > 0.001) & (s.remaining(g).to(s.device) > 0)
            if not bool(searching.any()):
                break
            h = g[searching]
            mid = (low[searching] + high[searching]) / 2
            blend = (1 - _rows(mid, s.x0)) * s.x0[h] + _rows(mid, s.x0) * noise[h]
            ok = self._decide(s, blend, h)
            high[searching] = torch.where(ok, mid, high[searching])
            low[searching] = torch.where(ok, low[searching], mid)
        adv[g] = (1 - _rows(high, s.x0)) * s.x0[g] + _rows(high, s.x0) * noise[g]
        return adv, have

    def _project(self, x0: Tensor, x: Tensor, alpha: Tensor, l2: bool) -> Tensor:
        a = _rows(alpha.to(x0.dtype), x0)
        if l2:
            return (1 - a) * x0 + a * x
        return torch.maximum(torch.minimum(x, x0 + a), x0 - a)

    def _boundary(self, s: Session, g: Tensor, x: Tensor, theta: float, l2: bool) -> tuple[Tensor, Tensor]:
        """Binary search from the adversarial ``x`` towards each original (Algorithm 1's Bin-Search)."""
        x0 = s.x0[g]
        norm = "l2" if l2 else "linf"
        if l2:
            high = torch.ones(g.numel(), dtype=torch.float64, device=s.device)
            threshold = torch.full_like(high, theta)
        else:
            high = distances(x - x0, "linf").to(torch.float64)
            threshold = torch.clamp(high * theta, max=theta)
        low = torch.zeros_like(high)
        while True:
            searching = ((high - low) > threshold) & (s.remaining(g).to(s.device) > 0)
            if not bool(searching.any()):
                break
            h = torch.nonzero(searching).flatten()
            mid = (low[h] + high[h]) / 2
            ok = self._decide(s, self._project(x0[h], x[h], mid, l2), g[h])
            high[h] = torch.where(ok, mid, high[h])
            low[h] = torch.where(ok, low[h], mid)
        out = self._project(x0, x, high, l2)
        return out, distances(out - x0, norm).to(torch.float64)

    def _direction(self, s: Session, g: Tensor, x: Tensor, delta: Tensor, num: int, l2: bool) -> Tensor:
        """The normalised gradient-direction estimate at the boundary points ``x`` (eq. 9-10)."""
        grads = torch.empty_like(x)
        group = max(1, ROW_ELEMENTS // (num * s.dims))
        for start in range(0, g.numel(), group):
            sl = slice(start, start + group)
            b = g[sl].numel()
            shape = (b, num, s.dims)
            if l2:
                rv = torch.randn(*shape, generator=s.generator, dtype=x.dtype, device=s.device)
            else:
                rv = torch.rand(*shape, generator=s.generator, dtype=x.dtype, device=s.device) * 2 - 1
            rv = rv / torch.linalg.vector_norm(rv, dim=2, keepdim=True).clamp_min(1e-12)
            center = x[sl].reshape(b, 1, s.dims)
            step = delta[sl].to(x.dtype).reshape(b, 1, 1)
            points = (center + step * rv).clamp(0, 1)
            rv = (points - center) / step
            owners = g[sl].repeat_interleave(num)
            fval = self._decide(s, points.reshape(b * num, *s.shape), owners).reshape(b, num).to(x.dtype) * 2 - 1
            mean = fval.mean(dim=1, keepdim=True)
            weights = torch.where((mean == 1) | (mean == -1), mean.expand_as(fval), fval - mean)
            grad = torch.einsum("bn,bnd->bd", weights, rv) / num
            grad = grad / torch.linalg.vector_norm(grad, dim=1, keepdim=True).clamp_min(1e-12)
            grads[sl] = grad.reshape(b, *s.shape)
        return grads

    def _geometric(self, s: Session, g: Tensor, x: Tensor, update: Tensor,
                   step: Tensor) -> tuple[Tensor, Tensor]:
        """Halve ``step`` until ``x + step * update`` is adversarial; returns the points and which succeeded."""
        step = step.clone()
        out = x.clone()
        done = torch.zeros(g.numel(), dtype=torch.bool, device=s.device)
        for _ in range(self.options.max_halvings):
            pending = torch.nonzero(~done & (s.remaining(g).to(s.device) > 0)).flatten()
            if pending.numel() == 0:
                break
            trial = (x[pending] + _rows(step[pending].to(x.dtype), x) * update[pending]).clamp(0, 1)
            ok = self._decide(s, trial, g[pending])
            out[pending[ok]] = trial[ok]
            done[pending[ok]] = True
            step[pending[~ok]] /= 2
        return out, done


register(HopSkipJump, summary="HopSkipJump (Chen et al. 2020): label-only boundary search + sign-based gradient "
         "direction, L2 and L-inf", kind="label")
