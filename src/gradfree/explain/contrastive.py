"""Black-box contrastive explanations: pertinent positives and negatives by zeroth-order FISTA.

The contrastive explanation method (CEM; Dhurandhar et al. 2018, Sec. 3) explains a prediction ``t`` of an
input ``x`` by what must be **present** for it (a pertinent positive, PP: a minimal part ``delta`` of ``x``
that alone is still classified ``t``) and what must be **absent** (a pertinent negative, PN: a minimal addition
``delta`` that would change the class). Both solve an elastic-net regularised problem (Eqs. 1 and 3)::

    PN:  min_delta  c * max(Z(x + delta)_t - max_{i != t} Z(x + delta)_i, -kappa) + beta |delta|_1 + |delta|_2^2
    PP:  min_delta  c * max(max_{i != t} Z(delta)_i - Z(delta)_t, -kappa) + beta |delta|_1 + |delta|_2^2

with ``Z`` the logits (the probabilities under ``access="probabilities"``), ``delta`` confined to the features
that are absent (PN) or present (PP), by FISTA (Sec. 3.3, Algorithm 1; Beck & Teboulle 2009): a gradient
step on the smooth part, the elementwise shrinkage-thresholding ``S_beta`` (the authors' code thresholds by
``beta`` itself at every step, not by ``alpha beta``; so does this), the projection on the feasible box, and
momentum ``k / (k + 3)``. The
model-agnostic version (Dhurandhar et al. 2019, "MACEM", Sec. 4) replaces the gradient of the model's term by
a zeroth-order estimate; here it is the average of ``directions`` antithetic Gaussian pairs per iteration
(``2 * directions`` queries) plus one query to check the new iterate, and the budget decides the iterations.
The directions are drawn only on the coordinates the feasible box lets move (for a PP the features present,
for a PN on MNIST the black pixels): the projection would discard the rest, and every coordinate perturbed
adds to the estimate's variance.
The constant ``c`` is searched over ``search_steps`` rounds as in the paper (raised tenfold until a round
succeeds, then bisected). The optional autoencoder term (``gamma``) is left out: there is no autoencoder of
the data here.

"Absent" means equal to the baseline. In units of the data range ``r = hi - lo`` (so that the paper's
hyperparameters, set for pixels in ``[-0.5, 0.5]``, carry over):

* PP: the input ``b + r d`` with every ``d_j`` between 0 and ``(x_j - b_j) / r``: a part of each feature
  kept, the rest removed; the map is ``|r d|``, the amount kept;
* PN: the input ``x + r d`` with ``d_j`` moving feature ``j`` further from the baseline and staying in
  ``[lo, hi]`` (on MNIST with a black baseline: only adding ink); the map is ``r d``.

References:
    A. Dhurandhar, P.-Y. Chen, R. Luss, C.-C. Tu, P. Ting, K. Shanmugam, P. Das. "Explanations based on the
    Missing: Towards Contrastive Explanations with Pertinent Negatives." NeurIPS 2018, Sec. 3.
    A. Dhurandhar, T. Pedapati, A. Balakrishnan, P.-Y. Chen, K. Shanmugam, R. Puri. "Model Agnostic
    Contrastive Explanations for Structured Data." arXiv:1906.00117, 2019, Sec. 4.
    A. Beck, M. Teboulle. "A Fast Iterative Shrinkage-Thresholding Algorithm for Linear Inverse Problems."
    SIAM J. Imaging Sciences 2(1), 2009.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.explain.base import (
    BlackBoxProblem,
    Explanation,
    Model,
    check_count,
    check_positive,
    make_generator,
    on_device,
    register,
)

MODES: tuple[str, ...] = ("pp", "pn")


def contrastive(model: Model, x: Tensor, *, target: int | Tensor | None = None, queries: int = 1000,
                access: str = "logits", baseline: float | Tensor = 0.0, generator: torch.Generator | None = None,
                mode: str = "pp", kappa: float = 0.1, beta: float = 0.1, c: float = 10.0, search_steps: int = 3,
                directions: int = 10, smoothing: float = 0.01, lr: float = 0.01,
                bounds: tuple[float, float] | None = None) -> Explanation:
    """A pertinent positive (``mode="pp"``) or negative (``"pn"``) by zeroth-order FISTA (module docstring).

    Args:
        model, x, target, queries, access, baseline, generator: see :mod:`gradfree.explain.base`.
        mode: ``"pp"`` or ``"pn"``.
        kappa: the confidence margin of the hinge (paper: 0.1 on MNIST).
        beta: the L1 weight (paper: 0.1).
        c: the starting weight of the model's term (paper: 10).
        search_steps: rounds of the search over ``c``; the budget is split evenly between them.
        directions: antithetic Gaussian pairs per iteration (``2 * directions + 1`` queries an iteration).
        smoothing: the estimator's ``mu`` in units of the data range.
        lr: the starting step ``alpha``, decayed as ``lr * sqrt(1 - k / K)`` over a round's ``K`` iterations
            (the paper's polynomial decay).
        bounds: ``(lo, hi)`` the valid range of a feature (default: the batch's minimum and maximum, baseline
            included).

    Returns:
        An :class:`~gradfree.explain.base.Explanation`; extras ``pertinent`` ``(N, *shape)`` (the PP or PN
        input), ``found`` ``(N,)`` bool (a valid one was found: its hinge reached ``-kappa``, i.e. the PP is
        classified ``t`` by a margin of ``kappa``, the PN some other class; else ``pertinent`` is the last
        iterate),
        ``pertinent_class`` ``(N,)`` (the class of ``pertinent``) and ``c`` ``(N,)``.
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be pp (pertinent positive) or pn (pertinent negative), got {mode!r}")
    if isinstance(kappa, bool) or not isinstance(kappa, int | float) or not 0 <= kappa < math.inf:
        raise ConfigError(f"kappa must be a finite number >= 0, got {kappa!r}")
    beta, c = check_positive("beta", beta), check_positive("c", c)
    lr, smoothing = check_positive("lr", lr), check_positive("smoothing", smoothing)
    search_steps, directions = check_count("search_steps", search_steps), check_count("directions", directions)
    per_iteration = 2 * directions + 1
    name = f"contrastive ({mode})"
    problem = BlackBoxProblem.build(model, x, target=target, queries=queries, access=access, baseline=baseline,
                                    minimum=1 + search_steps * per_iteration, what=name)
    gen = on_device(make_generator(generator), problem.x.device)
    n, d = problem.num_inputs, problem.num_dims
    flat_x = problem.x.reshape(n, -1)
    flat_b = problem.baseline.reshape(n, -1)
    lo, hi = _bounds(bounds, flat_x, flat_b)
    r = hi - lo
    if mode == "pp":
        v = (flat_x - flat_b) / r
        low, high, origin = torch.minimum(v, torch.zeros_like(v)), torch.maximum(v, torch.zeros_like(v)), flat_b
    else:
        up = flat_b <= flat_x
        low = torch.where(up, torch.zeros_like(flat_x), (lo - flat_x) / r)
        high = torch.where(up, (hi - flat_x) / r, torch.zeros_like(flat_x))
        origin = flat_x
    movable = (high > low).to(flat_x.dtype)  # (N, D): coordinates the feasible box lets move
    owners_all = torch.arange(n)
    targets = problem.targets.to(flat_x.device)
    c_now = torch.full((n,), c, dtype=flat_x.dtype, device=flat_x.device)
    c_lo = torch.zeros_like(c_now)
    c_hi = torch.full_like(c_now, math.inf)
    best = torch.zeros_like(flat_x)
    best_cost = torch.full((n,), math.inf, dtype=flat_x.dtype, device=flat_x.device)
    last = torch.zeros_like(flat_x)
    best_class = torch.full((n,), -1, dtype=torch.int64, device=flat_x.device)
    last_class = best_class.clone()
    rounds_left = (queries - 1) // per_iteration

    def hinge(outputs: Tensor, owners: Tensor) -> Tensor:
        t = targets[owners]
        z_t = outputs.gather(1, t.reshape(-1, 1)).squeeze(1)
        others = outputs.scatter(1, t.reshape(-1, 1), -math.inf).amax(dim=1)
        margin = z_t - others if mode == "pn" else others - z_t
        return margin.clamp(min=-kappa)

    def inputs(s: Tensor) -> Tensor:
        return (origin.unsqueeze(1) + r * s).reshape(-1, *problem.x.shape[1:]) if s.ndim == 3 else \
            (origin + r * s).reshape(-1, *problem.x.shape[1:])

    for step in range(search_steps):
        iterations = rounds_left // (search_steps - step)
        rounds_left -= iterations
        delta = torch.zeros_like(flat_x)
        y = torch.zeros_like(flat_x)
        found_now = torch.zeros(n, dtype=torch.bool, device=flat_x.device)
        for k in range(iterations):
            u = torch.randn(n, directions, d, generator=gen, device=flat_x.device, dtype=flat_x.dtype)
            u = u * movable.unsqueeze(1)
            points = torch.stack([y.unsqueeze(1) + smoothing * u, y.unsqueeze(1) - smoothing * u], dim=2)
            owners = owners_all.repeat_interleave(2 * directions)
            losses = hinge(problem.outputs(inputs(points.reshape(n, 2 * directions, d)), owners),
                           owners.to(flat_x.device)).reshape(n, directions, 2)
            coef = c_now[:, None] * (losses[..., 0] - losses[..., 1]) / (2 * smoothing)
            grad = torch.einsum("nq,nqd->nd", coef, u) / directions + 2 * y
            alpha = lr * math.sqrt(1 - k / iterations)
            z = y - alpha * grad
            shrunk = z.sign() * (z.abs() - beta).clamp(min=0)
            new = torch.maximum(torch.minimum(shrunk, high), low)
            y = torch.maximum(torch.minimum(new + k / (k + 3) * (new - delta), high), low)
            delta = new
            out = problem.outputs(inputs(delta), owners_all)
            predicted = out.argmax(dim=1)
            valid = hinge(out, owners_all.to(flat_x.device)) <= -kappa  # the class changed (PN) or kept (PP) by kappa
            cost = beta * delta.abs().sum(dim=1) + delta.square().sum(dim=1)
            better = valid & (cost < best_cost)
            best = torch.where(better[:, None], delta, best)
            best_cost = torch.where(better, cost, best_cost)
            best_class = torch.where(better, predicted, best_class)
            last_class = predicted
            found_now |= valid
        last = delta
        c_hi = torch.where(found_now, torch.minimum(c_hi, c_now), c_hi)
        c_lo = torch.where(found_now, c_lo, torch.maximum(c_lo, c_now))
        c_now = torch.where(torch.isinf(c_hi), c_now * 10, (c_lo + c_hi) / 2)
    found = torch.isfinite(best_cost)
    chosen = torch.where(found[:, None], best, last)
    pertinent = (origin + r * chosen).reshape(problem.x.shape)
    classes = torch.where(found, best_class, last_class)
    maps = (r * chosen).abs() if mode == "pp" else r * chosen
    return problem.explanation(maps, "contrastive", pertinent=pertinent, found=found.cpu(),
                               pertinent_class=classes.cpu(), c=torch.where(torch.isinf(c_hi), c_lo, c_hi).cpu())


def _bounds(bounds: tuple[float, float] | None, x: Tensor, b: Tensor) -> tuple[float, float]:
    if bounds is None:
        lo, hi = float(torch.minimum(x.min(), b.min())), float(torch.maximum(x.max(), b.max()))
    else:
        if len(bounds) != 2:
            raise ConfigError(f"bounds must be (lo, hi), got {bounds!r}")
        lo, hi = float(bounds[0]), float(bounds[1])
        if float(x.min()) < lo or float(x.max()) > hi:
            raise ConfigError(f"inputs lie in [{float(x.min()):.4g}, {float(x.max()):.4g}], outside bounds {bounds}")
    if not hi > lo:
        raise ConfigError(f"the feature range is empty: lo={lo}, hi={hi}")
    return lo, hi


register("contrastive", contrastive, kind="zeroth-order",
               summary="pertinent positives / negatives by zeroth-order FISTA (CEM, Dhurandhar et al. 2018, 2019)",
               options=("mode", "kappa", "beta", "c", "search_steps", "directions", "smoothing", "lr", "bounds"))
