"""ZOO: the zeroth-order Carlini-Wagner attack, with its coordinate solvers ZOO-ADAM and ZOO-Newton.

Reference: P.-Y. Chen, H. Zhang, Y. Sharma, J. Yi, C.-J. Hsieh. "ZOO: Zeroth Order Optimization Based
Black-box Attacks to Deep Neural Networks without Training Substitute Models." AISec 2017
(arXiv:1708.03999). Settings the text leaves open follow the authors' released code
(github.com/huanzhang12/ZOO-Attack, ``l2_attack_black.py``).

* **Objective** (Sec. III-B, eq. 4-5 and the C&W formulation of Sec. III-A): minimise over the perturbation
  ``||x - x0||_2^2 + c * f(x)`` with ``f = max(log F(x)_y - max_{i != y} log F(x)_i, -kappa)`` untargeted and
  ``max(max_{i != t} log F(x)_i - log F(x)_t, -kappa)`` targeted. With ``"probabilities"`` access the scores
  are log-probabilities as in the paper; with ``"logits"`` they are the logits, which give the same margins
  (the log-partition cancels), without the underflow of ``log`` of a tiny probability.
* **Box constraint** (Sec. III-B): ``tanh=True`` optimises ``m`` in ``x = (tanh(w0 + m) + 1) / 2`` with
  ``w0 = atanh(2 x0 - 1)`` (the paper's change of variables), so ``m`` is unconstrained; ``tanh=False``
  optimises ``x = x0 + m`` projected onto ``[0, 1]`` (the reference code's ``use_tanh=False``, and ART's
  formulation). **The default is the projection**, measured: Adam moves a coordinate by about ``lr`` per
  update whatever its gradient's scale, and at a black or white pixel ``dx/dw = (1 - tanh^2) / 2`` is about
  1e-6, so in tanh space MNIST's saturated pixels barely move within a CPU budget — on 3 MNIST LeNet images,
  5 binary steps of 300 iterations reached 36-45% more L2 than white-box C&W with ``tanh=True`` (lr 0.1) and
  0.5-6% more with the projection (lr 0.03); on CIFAR-10 the two were within 10% of each other.
* **Coordinate estimates** (Sec. III-A, eq. 6-7): for each of ``k`` coordinates ``i`` drawn per iteration
  (default 128, the paper's batch), ``g_i = (f(m + h e_i) - f(m - h e_i)) / 2h`` and
  ``h_i = (f(m + h e_i) - 2 f(m) + f(m - h e_i)) / h^2`` with ``h = 1e-4``: ``2k + 1`` queries per image and
  iteration, all images' rows scored in one batched forward.
* **Solvers**: ZOO-ADAM (Algorithm 2: per-coordinate Adam moments and time steps, ``eta = 0.01``) and
  ZOO-Newton (Algorithm 1: ``delta = -eta g / h``, a plain gradient step where ``h <= 0``; the reference code
  also floors ``h`` at 0.1 against numerical noise, done here too).
* **Binary search over c** (Sec. IV-A, as in C&W): per image, after each search step ``c`` is halved
  towards the last failure after a success and raised (x10 until a success is known) after a failure; the
  variable and the solver's state restart at zero each step (reference code). **Early abort**: every tenth
  of the iterations an image whose loss has not dropped by 0.01% ends its step.
* **Attack-space dimension reduction, hierarchical attack, importance sampling** (Sec. III-D): see
  :mod:`gradfree.attacks.attack_space`. Only inputs larger than 32 x 32 are attacked in a reduced space by
  default (starting at 32 x 32 and doubling at iterations 2,000 and 10,000, the reference code's schedule);
  importance sampling is used once the space has grown (the reference code's rule), or always/never.

Queries: ``2k + 1`` per image per iteration (the reference code's count); an image whose remaining budget
cannot pay a full iteration stops. The best adversarial point (smallest L2) is kept among *all* queried
rows, not only the iterates; the tracking costs no query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from gradfree.attacks.attack_space import (
    AttackSpace,
    importance_probabilities,
    initial_side,
    sample_coordinates,
)
from gradfree.attacks.base import Attack, Session, register
from gradfree.attacks.cw_objective import ConstantSearch, EarlyAbort, cw_loss, from_tanh_space, to_tanh_space
from gradfree.optim.options import check

ROW_ELEMENTS = 1 << 24
"""Bound on the elements of one group's query rows (images are processed in groups under it)."""


@dataclass(frozen=True)
class ZOOOptions:
    """ZOO's options (defaults: the paper's and the reference code's where they are stated).

    Attributes:
        solver: ``"adam"`` (ZOO-ADAM, Algorithm 2) or ``"newton"`` (ZOO-Newton, Algorithm 1).
        coordinates: coordinates estimated and updated per iteration (the paper's batch of 128).
        iterations: iterations per binary-search step.
        binary_steps: binary-search steps over ``c``.
        initial_const: the first ``c``.
        confidence: kappa, the margin a success needs.
        lr: the solver's step size eta.
        beta1, beta2, adam_eps: ZOO-ADAM's moment decays and denominator guard.
        h: the finite-difference step in the variable's space.
        hessian_floor: ZOO-Newton's floor on the estimated second derivative.
        tanh: the paper's tanh change of variables; the default projects onto the box instead (see the
            module docstring for the measured reason).
        abort_early: stop a step whose loss stalls (checked every ``early_stop_every`` iterations,
            default a tenth of ``iterations``).
        early_stop_every: see ``abort_early``.
        reset_adam_after_found: restart the solver's state when an image's iterate first becomes adversarial
            in a step (the reference code's option; off there by default).
        attack_size: the first attack-space height (``None``: 32 for images larger than 32 x 32, else the
            image's own size).
        hierarchy: iterations of a step at which the attack space doubles (up to the image's size).
        importance: coordinate sampling: ``"after-resize"`` (importance sampling once the space has grown, as
            the reference code), ``"always"`` or ``"never"``.
        regions: importance sampling's regions per side.
    """

    solver: Literal["adam", "newton"] = "adam"
    coordinates: int = 128
    iterations: int = 1000
    binary_steps: int = 9
    initial_const: float = 0.01
    confidence: float = 0.0
    lr: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    h: float = 1e-4
    hessian_floor: float = 0.1
    tanh: bool = False
    abort_early: bool = True
    early_stop_every: int | None = None
    reset_adam_after_found: bool = False
    attack_size: int | None = None
    hierarchy: tuple[int, ...] = (2000, 10000)
    importance: Literal["after-resize", "always", "never"] = "after-resize"
    regions: int = 8

    def __post_init__(self) -> None:
        check(self.solver in ("adam", "newton"), "zoo", f"solver must be 'adam' or 'newton', got {self.solver!r}")
        check(self.coordinates >= 1, "zoo", f"coordinates must be >= 1, got {self.coordinates}")
        check(self.iterations >= 1 and self.binary_steps >= 1, "zoo", "iterations and binary_steps must be >= 1")
        check(self.initial_const > 0 and self.lr > 0 and self.h > 0, "zoo", "initial_const, lr and h must be > 0")
        check(self.confidence >= 0, "zoo", f"confidence must be >= 0, got {self.confidence}")
        check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "zoo", "beta1 and beta2 must be in [0, 1)")
        check(self.importance in ("after-resize", "always", "never"), "zoo",
              f"importance must be 'after-resize', 'always' or 'never', got {self.importance!r}")
        check(self.regions >= 1 and self.hessian_floor > 0, "zoo", "regions must be >= 1, hessian_floor > 0")
        check(self.early_stop_every is None or self.early_stop_every >= 1, "zoo", "early_stop_every must be >= 1")


class _State:
    """Per-image solver state over one attack space: the variable and Adam's moments and time steps."""

    def __init__(self, n: int, space: AttackSpace, dtype: torch.dtype, device: torch.device) -> None:
        self.space = space
        self.m = torch.zeros(n, space.size, dtype=dtype, device=device)
        self._fresh_solver()

    def _fresh_solver(self) -> None:
        n, size = self.m.shape
        self.mean = torch.zeros_like(self.m)
        self.var = torch.zeros_like(self.m)
        self.epoch = torch.ones(n, size, dtype=torch.int64, device=self.m.device)

    def reset_solver(self, images: Tensor) -> None:
        """Restart the solver's moments and time steps of ``images``."""
        self.mean[images] = 0
        self.var[images] = 0
        self.epoch[images] = 1

    def grow(self, space: AttackSpace) -> None:
        """Move the variable into the larger ``space`` and restart the solver (reference ``resize_img``)."""
        self.m = self.space.carry(self.m, space)
        self.space = space
        self._fresh_solver()


class ZOO(Attack):
    """ZOO (Chen et al. 2017): coordinate-wise zeroth-order C&W-L2, options in :class:`ZOOOptions`."""

    name = "zoo-adam"
    Options = ZOOOptions
    options: ZOOOptions
    norms = ("l2",)
    bounded = False

    def confidence(self) -> float:
        return self.options.confidence

    def run(self, s: Session, *, starts: Tensor | None = None) -> None:
        del starts
        o = self.options
        x0 = s.x0
        w0 = to_tanh_space(x0) if o.tanh else x0
        search = ConstantSearch(s.n, o.initial_const, steps=o.binary_steps, device=s.device)
        first_side = initial_side(s.shape, o.attack_size)
        k = min(o.coordinates, AttackSpace(s.shape, first_side).size)
        rows = 2 * k + 1
        every = o.early_stop_every or max(1, o.iterations // 10)
        steps_run = 0
        sides: list[list[int]] = []
        for step in range(o.binary_steps):
            images = s.affordable(s.active_indices(), rows)
            s.finish(s.active_indices()[~torch.isin(s.active_indices(), images)])
            if images.numel() == 0:
                break
            steps_run += 1
            const = search.for_step(step)
            state = _State(s.n, AttackSpace(s.shape, first_side), x0.dtype, s.device)
            sides.append([state.space.side])
            grown = False
            running = torch.zeros(s.n, dtype=torch.bool, device=s.device)
            running[images] = True
            found = torch.zeros(s.n, dtype=torch.bool, device=s.device)
            hit_before = torch.zeros(s.n, dtype=torch.bool, device=s.device)
            abort = EarlyAbort(s.n, every, device=s.device)
            for it in range(o.iterations):
                if it in o.hierarchy and state.space.reduced:
                    state.grow(state.space.grown(2 * state.space.side))
                    sides[-1].append(state.space.side)
                    grown = True
                idx = torch.nonzero(running).flatten()
                broke = idx[~torch.isin(idx, s.affordable(idx, rows))]
                if broke.numel():  # out of budget: this image is done for good
                    s.finish(broke)
                    running[broke] = False
                    idx = torch.nonzero(running).flatten()
                if idx.numel() == 0:
                    break
                use_importance = o.importance == "always" or (o.importance == "after-resize" and grown)
                kk = min(k, state.space.size)
                group = max(1, ROW_ELEMENTS // ((2 * kk + 1) * max(s.dims, state.space.size)))
                center = torch.empty(idx.numel(), dtype=torch.float64, device=s.device)
                for start in range(0, idx.numel(), group):
                    g = idx[start:start + group]
                    center[start:start + g.numel()] = self._iterate(
                        s, state, g, w0, const[g], kk, found, hit_before, use_importance)
                if o.abort_early:
                    stop = abort.stalled(it, idx, center)
                    running[idx[stop]] = False
            search.update(images, found[images])
        s.info.update(const=search.const.tolist(), upper=search.upper.tolist(), binary_steps_run=steps_run,
                      attack_sides=sides)

    def _iterate(self, s: Session, state: _State, g: Tensor, w0: Tensor, const: Tensor, k: int, found: Tensor,
                 hit_before: Tensor, use_importance: bool) -> Tensor:
        """One coordinate iteration for the images ``g``; returns their centre losses."""
        o = self.options
        b, size = g.numel(), state.space.size
        probabilities = importance_probabilities(state.m[g], state.space, regions=o.regions) if use_importance \
            else None
        coords = sample_coordinates(b, size, k, generator=s.generator, device=s.device,
                                    probabilities=probabilities)
        loss, margin, dist = coordinate_losses(s, state.m[g], g, coords, w0=w0[g], const=const, h=o.h,
                                               confidence=o.confidence, space=state.space, tanh=o.tanh)
        ok = margin > o.confidence
        if s.goal.eps is not None:
            ok &= dist <= s.goal.eps
        found[g] |= ok.any(dim=1)
        if o.reset_adam_after_found:
            first = ok[:, 0] & ~hit_before[g]
            if bool(first.any()):
                state.reset_solver(g[first])
            hit_before[g] |= ok[:, 0]

        grad, hess = coordinate_derivatives(loss, o.h)
        m = state.m[g]
        current = m.gather(1, coords)
        if o.solver == "adam":
            mean = o.beta1 * state.mean[g].gather(1, coords) + (1 - o.beta1) * grad
            var = o.beta2 * state.var[g].gather(1, coords) + (1 - o.beta2) * grad * grad
            epoch = state.epoch[g].gather(1, coords).to(torch.float64)
            corr = torch.sqrt(1 - o.beta2 ** epoch) / (1 - o.beta1 ** epoch)
            new = current.to(torch.float64) - o.lr * corr * mean / (torch.sqrt(var) + o.adam_eps)
            state.mean[g] = state.mean[g].scatter(1, coords, mean.to(state.mean.dtype))
            state.var[g] = state.var[g].scatter(1, coords, var.to(state.var.dtype))
            state.epoch[g] = state.epoch[g].scatter(1, coords, state.epoch[g].gather(1, coords) + 1)
        else:
            hess = torch.where(hess <= 0, torch.ones_like(hess), hess).clamp_min(o.hessian_floor)
            new = current.to(torch.float64) - o.lr * grad / hess
        new = new.to(m.dtype)
        if not o.tanh and not state.space.reduced:  # keep x0 + m in the box
            x0_flat = s.x0[g].flatten(1).gather(1, coords)
            new = torch.minimum(torch.maximum(new, -x0_flat), 1 - x0_flat)
        state.m[g] = m.scatter(1, coords, new)
        return loss[:, 0]


def coordinate_losses(s: Session, m: Tensor, images: Tensor, coords: Tensor, *, w0: Tensor, const: Tensor,
                      h: float, confidence: float, space: AttackSpace, tanh: bool = True
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """ZOO's ``2k + 1`` queries per image: the objective at ``m`` and at ``m +- h e_i`` for its ``k`` coordinates.

    All images' rows go to the black box in one query (charged to their images).

    Args:
        s: the session. m: ``(b, size)`` the variables of ``images`` ``(b,)``. coords: ``(b, k)`` coordinates.
        w0: ``(b, *shape)`` the originals in the variable's space (``atanh(2 x0 - 1)``, or ``x0`` without tanh).
        const: ``(b,)`` the constants ``c``. h: the difference step. confidence: kappa.
        space: the attack space ``m`` lives in. tanh: the change of variables is on.

    Returns:
        ``(loss, margin, l2)``, each ``(b, 2k + 1)`` float64: column 0 is ``m``, columns ``1..k`` are
        ``m + h e_i``, columns ``k+1..2k`` are ``m - h e_i``; ``l2`` is each row's L2 distortion.
    """
    b, size = m.shape
    k = coords.shape[1]
    r = 2 * k + 1
    x0 = s.x0[images].flatten(1)
    if space.reduced:  # a coordinate moves a neighbourhood of pixels: map every row through the upsampling
        points = m.unsqueeze(1).repeat(1, r, 1)
        step = torch.full((b, k, 1), h, dtype=m.dtype, device=m.device)
        points[:, 1:k + 1].scatter_add_(2, coords.unsqueeze(2), step)
        points[:, k + 1:].scatter_add_(2, coords.unsqueeze(2), -step)
        base = w0.repeat_interleave(r, dim=0)
        delta = space.to_image(points.reshape(b * r, size))
        x = from_tanh_space(base + delta) if tanh else (base + delta).clamp(0, 1)
        diff = (x.flatten(1) - x0.repeat_interleave(r, dim=0)).to(torch.float64)
        sq = (diff ** 2).sum(dim=1).reshape(b, r)
    else:  # each row differs from the centre in one pixel: transform only those pixels
        w = w0.flatten(1)
        center = from_tanh_space(w + m) if tanh else (w + m).clamp(0, 1)
        picked = (w.gather(1, coords) + m.gather(1, coords)).repeat(1, 2)
        moved = picked + torch.cat([torch.full_like(coords, 1), torch.full_like(coords, -1)], dim=1).to(m.dtype) * h
        values = from_tanh_space(moved) if tanh else moved.clamp(0, 1)
        rows = center.unsqueeze(1).repeat(1, r, 1)
        both = coords.repeat(1, 2)
        rows[:, 1:].scatter_(2, both.unsqueeze(2), values.unsqueeze(2))
        x = rows.reshape(b * r, *s.shape)
        # ||x - x0||^2 of each row from the centre's, corrected at the one pixel that moved (float64).
        gap0 = (center - x0).to(torch.float64)
        sq_center = (gap0 ** 2).sum(dim=1, keepdim=True)
        x0_at = x0.gather(1, both).to(torch.float64)
        before = (gap0.gather(1, both)) ** 2
        after = (values.to(torch.float64) - x0_at) ** 2
        sq = torch.cat([sq_center, sq_center - before + after], dim=1)
    owners = images.repeat_interleave(r)
    margin = s.margins(s.query(x, owners), owners).to(torch.float64).reshape(b, r)
    loss, _ = cw_loss(margin, sq, const.reshape(-1, 1).to(torch.float64), confidence)
    return loss, margin, sq.clamp_min(0).sqrt()


def coordinate_derivatives(loss: Tensor, h: float) -> tuple[Tensor, Tensor]:
    """ZOO's eq. 6-7 from :func:`coordinate_losses`' columns: ``(g, h)``, each ``(b, k)``.

    ``g_i = (f(m + h e_i) - f(m - h e_i)) / 2h`` and ``h_i = (f(m + h e_i) - 2 f(m) + f(m - h e_i)) / h^2``.
    """
    k = (loss.shape[1] - 1) // 2
    plus, minus, center = loss[:, 1:k + 1], loss[:, k + 1:], loss[:, :1]
    return (plus - minus) / (2 * h), (plus - 2 * center + minus) / (h * h)


@dataclass(frozen=True)
class ZOONewtonOptions(ZOOOptions):
    """:class:`ZOOOptions` with ``solver="newton"``."""

    solver: Literal["adam", "newton"] = "newton"


class ZOONewton(ZOO):
    """ZOO with the ZOO-Newton coordinate solver (Algorithm 1); options in :class:`ZOONewtonOptions`."""

    name = "zoo-newton"
    Options = ZOONewtonOptions


register(ZOO, summary="ZOO-ADAM (Chen et al. 2017): coordinate-wise zeroth-order C&W-L2, Adam per coordinate",
         kind="score")
register(ZOONewton, summary="ZOO-Newton (Chen et al. 2017): coordinate-wise zeroth-order C&W-L2, Newton steps",
         kind="score")
