"""Zeroth-order integrated gradients: path attribution from zeroth-order gradients along the path.

Integrated gradients (Sundararajan et al. 2017, Sec. 3) attribute ``f(x) - f(b)`` along the straight path from
the baseline ``b``: ``IG_j = (x_j - b_j) * integral_0^1 df/dx_j(b + a (x - b)) da``, here by the midpoint rule
over ``steps`` points. Only the coordinates that differ from the baseline can get an attribution, so only
their partial derivatives are estimated. Two zeroth-order gradients, by ``gradient``:

* ``"gaussian"`` (default) — antithetic Gaussian pairs (orthogonal in blocks,
  :mod:`gradfree.explain.estimate`) with a small smoothing ``mu`` at every point, the queries spread evenly
  over the points; the estimates are unbiased for the smoothed gradient and their noise averages over the path
  as over more directions at one point;
* ``"groups"`` — at every point, central differences along each group's part of ``x - b``
  (:mod:`gradfree.explain.fd_saliency`'s groups; a grid as fine as ``queries / (2 steps)`` groups allow),
  which measure the integrand summed over the group, ``sum_{j in g} df/dx_j (x_j - b_j)``, up to ``O(h^2)``.

**Completeness** (Sec. 3, Proposition 1: ``sum_j IG_j = f(x) - f(b)``) holds for exact gradients up to the
quadrature error; a random estimate carries noise along ``x - b`` too, so the sum misses. Every explanation
reports the gap ``|sum_j IG_j - (f(x) - f(b))| / |f(x) - f(b)|`` (one more query per input, for ``f(b)``).
With ``complete=True`` (Gaussian gradients) the score is also queried at the ``steps - 1`` inner grid points
``a = k / steps`` of the path, and the component along ``v = x - b`` of the estimate at each midpoint is
replaced by the difference quotient across its interval, ``steps * (f(b + (k + 1) v / steps) -
f(b + k v / steps))``. Those quotients telescope to ``f(x) - f(b)``, so completeness then holds exactly (to
rounding), while the components orthogonal to ``v`` keep the estimate's noise.

Reference: M. Sundararajan, A. Taly, Q. Yan. "Axiomatic Attribution for Deep Networks." ICML 2017, Sec. 3.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.explain.base import (
    BlackBoxProblem,
    Explanation,
    Model,
    check_count,
    check_positive,
    input_range,
    make_generator,
    on_device,
    register,
)
from gradfree.explain.estimate import antithetic_gradient
from gradfree.explain.fd_saliency import group_directions
from gradfree.explain.grouping import Grouping, parse_grouping
from gradfree.explain.zo_smoothgrad import SubspaceScore

GRADIENTS: tuple[str, ...] = ("gaussian", "groups")


def zo_integrated_gradients(model: Model, x: Tensor, *, target: int | Tensor | None = None, queries: int = 1000,
                            access: str = "logits", baseline: float | Tensor = 0.0,
                            generator: torch.Generator | None = None, gradient: str = "gaussian",
                            steps: int | None = None, smoothing: float = 0.01, complete: bool = False,
                            grouping: str | Grouping = "grid", orthogonal: bool = True,
                            chunk_size: int = 2048) -> Explanation:
    """Integrated gradients from zeroth-order gradients at ``steps`` points of the path (module docstring).

    Args:
        model, x, target, queries, access, baseline, generator: see :mod:`gradfree.explain.base`.
        gradient: ``"gaussian"`` or ``"groups"``.
        steps: path points (default 8 for Gaussian gradients, 4 for groups; fewer when the budget cannot
            give each one pair).
        smoothing: the Gaussian estimator's ``mu`` as a fraction of each input's range, or the group
            difference step as a fraction of the way to the baseline.
        complete: (Gaussian) replace each estimate's component along ``x - b`` by the measured difference.
        grouping: (groups) the grouping, as for ``fd-saliency``.
        orthogonal: (Gaussian) directions orthogonal in blocks.
        chunk_size: at most this many rows per query call.

    Returns:
        An :class:`~gradfree.explain.base.Explanation`; extras ``completeness_gap`` ``(N,)``, ``delta``
        ``(N,)`` (``f(x) - f(b)``) and ``steps`` ``(N,)``.
    """
    if gradient not in GRADIENTS:
        raise ConfigError(f"gradient must be one of {', '.join(GRADIENTS)}, got {gradient!r}")
    if complete and gradient != "gaussian":
        raise ConfigError("complete=True corrects Gaussian estimates; group differences need no correction")
    steps = check_count("steps", steps if steps is not None else (8 if gradient == "gaussian" else 4))
    smoothing = check_positive("smoothing", smoothing)
    problem = BlackBoxProblem.build(model, x, target=target, queries=queries, access=access, baseline=baseline,
                                    minimum=4, what="zo-ig")
    n = problem.num_inputs
    f_b = problem.score(problem.baseline, torch.arange(n))
    if gradient == "gaussian":
        total, steps = _gaussian_path(problem, f_b, queries=queries, steps=steps, smoothing=smoothing,
                                      complete=complete, orthogonal=orthogonal, generator=generator,
                                      chunk_size=chunk_size)
        maps = (problem.x - problem.baseline).reshape(n, -1) * total
    else:
        maps, steps = _group_path(problem, queries=queries, steps=steps, step=smoothing,
                                  grouping=parse_grouping(grouping))
    delta = problem.clean - f_b
    gap = (maps.sum(dim=1) - delta).abs() / delta.abs().clamp(min=1e-12)
    return problem.explanation(maps, "zo-ig", completeness_gap=gap, delta=delta,
                               steps=torch.full((n,), steps, dtype=torch.int64))


def _gaussian_path(problem: BlackBoxProblem, f_b: Tensor, *, queries: int, steps: int, smoothing: float,
                   complete: bool, orthogonal: bool, generator: torch.Generator | None,
                   chunk_size: int) -> tuple[Tensor, int]:
    """``(N, D)`` the mean estimated gradient over the path's midpoints, and the steps taken."""
    # Each step needs one pair (2 queries), plus one grid point (1 query) when completeness is enforced.
    steps = min(steps, (queries - 2 + int(complete)) // (2 + int(complete)))
    pairs_total = (queries - 2 - (steps - 1 if complete else 0)) // 2
    if steps < 1 or pairs_total < steps:
        raise ConfigError(f"zo-ig needs at least 4 queries per input, got {queries}")
    per_step = [pairs_total // steps + (1 if s < pairs_total % steps else 0) for s in range(steps)]
    gen = on_device(make_generator(generator), problem.x.device)
    n = problem.num_inputs
    flat_x, flat_b = problem.x.reshape(n, -1), problem.baseline.reshape(n, -1)
    mu = smoothing * input_range(problem.x)
    alphas = (torch.arange(steps, dtype=flat_x.dtype, device=flat_x.device) + 0.5) / steps
    total = torch.zeros_like(flat_x)
    for i in range(n):
        index = torch.nonzero(flat_x[i] != flat_b[i]).flatten()
        if index.numel() == 0:
            continue
        v = (flat_x[i] - flat_b[i])[index]
        vv = float(v @ v)
        objective = SubspaceScore(problem, i, index)
        if complete:
            inner = flat_b[i] + (torch.arange(1, steps, dtype=v.dtype, device=v.device) / steps)[:, None] * \
                (flat_x[i] - flat_b[i])
            grid = torch.cat([f_b[i:i + 1], problem.score(inner.reshape(-1, *problem.x.shape[1:]),
                                                          torch.full((steps - 1,), i, dtype=torch.int64)),
                              problem.clean[i:i + 1]])
        for s in range(steps):
            point = flat_b[i, index] + alphas[s] * v
            objective.base = flat_b[i] + alphas[s] * (flat_x[i] - flat_b[i])  # the others are on the path too
            g = antithetic_gradient(objective, point, pairs=per_step[s], smoothing=float(mu[i]), generator=gen,
                                    orthogonal=orthogonal, chunk_size=chunk_size)
            if complete:
                slope = (grid[s + 1] - grid[s]) * steps
                g = g + (slope - g @ v) / vv * v
            total[i, index] += g / steps
    return total, steps


def _group_path(problem: BlackBoxProblem, *, queries: int, steps: int, step: float,
                grouping: Grouping) -> tuple[Tensor, int]:
    """``(N, D)`` integrated gradients from group differences at ``steps`` midpoints, and the steps taken."""
    steps = min(steps, (queries - 2) // 2)
    max_groups = (queries - 2) // (2 * steps)
    directions, _ = group_directions(problem, grouping, max_groups, times_input=True)
    n = problem.num_inputs
    flat_x, flat_b = problem.x.reshape(n, -1), problem.baseline.reshape(n, -1)
    alphas = ((torch.arange(steps, dtype=flat_x.dtype, device=flat_x.device) + 0.5) / steps)
    signs = torch.tensor([1.0, -1.0], dtype=flat_x.dtype, device=flat_x.device)
    k = [d.shape[0] for d in directions]

    def rows(i: int, start: int, stop: int) -> Tensor:
        # Row r: path point r // (2 k), group (r // 2) % k, sign r % 2.
        r = torch.arange(start, stop, device=flat_x.device)
        point = flat_b[i] + alphas[r // (2 * k[i])][:, None] * (flat_x[i] - flat_b[i])
        return (point + step * signs[r % 2][:, None] * directions[i][(r // 2) % k[i]]).reshape(
            -1, *problem.x.shape[1:])

    scores = problem.score_rows([steps * 2 * ki for ki in k], rows)
    maps = torch.zeros_like(flat_x)
    for i in range(n):
        if k[i] == 0:
            continue
        pair = scores[i].reshape(steps, k[i], 2)
        integrand = ((pair[..., 0] - pair[..., 1]) / (2 * step)).mean(dim=0)  # (k,) per group
        weights = directions[i].abs()
        weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=torch.finfo(weights.dtype).tiny)
        maps[i] = integrand.to(maps.dtype) @ weights
    return maps, steps


register("zo-ig", zo_integrated_gradients, kind="zeroth-order",
               summary="integrated gradients from zeroth-order gradients along the path (Sundararajan et al. "
                       "2017), completeness gap reported",
               options=("gradient", "steps", "smoothing", "complete", "grouping", "orthogonal", "chunk_size"))
