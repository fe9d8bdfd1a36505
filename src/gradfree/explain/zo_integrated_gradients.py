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
  which measure the integrand summed over the group, ``sum_{j in g} df/dx_j (x_j - b_j)``, up to ``O(h^2)``;
* ``"masks"`` — the path in the groups' masks: the score as a function of one weight per group,
  ``F(m) = f(b + sum_g m_g d_g)`` with ``d_g`` the group's part of ``x - b``, runs from ``m = 0`` (the
  baseline) to ``m = 1`` (the input) along ``m = a 1``, and ``dF/dm_g = sum_{j in g} df/dx_j (x_j - b_j)`` is
  the group's integrand, so integrating it gives the groups' integrated gradients. Its gradients are the
  Gaussian ones above, with noise on the masks (``smoothing`` in mask units: 0.25 moves each group a quarter
  of the way to the baseline and back), in a few dozen or hundred dimensions instead of every pixel. A
  default grid has at most as many cells as a point has pairs (56 cells for 61 pairs at 1,000 queries,
  8 points and ``complete``), so the orthogonal directions span the space.

**Completeness** (Sec. 3, Proposition 1: ``sum_j IG_j = f(x) - f(b)``) holds for exact gradients up to the
quadrature error; a random estimate carries noise along ``x - b`` too, so the sum misses. Every explanation
reports the gap ``|sum_j IG_j - (f(x) - f(b))| / |f(x) - f(b)|`` (one more query per input, for ``f(b)``).
With ``complete=True`` (Gaussian and mask gradients) the score is also queried at the ``steps - 1`` inner grid points
``a = k / steps`` of the path, and the component along ``v = x - b`` of the estimate at each midpoint is
replaced by the difference quotient across its interval, ``steps * (f(b + (k + 1) v / steps) -
f(b + k v / steps))``. Those quotients telescope to ``f(x) - f(b)``, so completeness then holds exactly (to
rounding), while the components orthogonal to ``v`` keep the estimate's noise.

**Two path starts** (``blur``, images only): a weight ``w`` gives the share ``w`` of the queries and steps to
a second path, from the input blurred (a Gaussian of ``blur_sigma`` times the image side), and the maps are
``(1 - w) IG_b + w IG_blur`` — the expectation over a two-point distribution of baselines, as expected
gradients average over baselines (Erion et al. 2021), with the blurred start of blur integrated gradients (Xu
et al. 2020); their sum is ``f(x) - ((1 - w) f(b) + w f(blur))``. The two starts ask different questions:
from the baseline, which pixels the score needs at all (what deletion to the baseline measures); from the
blurred input, which pixels' detail it needs (what insertion into a blurred copy measures — at the same
blur of 0.1 by default, the start of this project's insertion metric). Measured on the seed-0 CIFAR-10 CNN's
first 100 correct test images, 1,000 queries, masks, ``complete``, one seed: deletion / insertion AUC
0.0585 / 0.615 from the baseline alone, 0.0650 / 0.722 with ``blur = 0.25`` (6 + 2 steps), 0.0634 / 0.682
with 0.2, 0.0696 / 0.766 with 0.25 but one step on the blurred path; on the same images RISE 0.1015 / 0.702,
LIME 0.0693 / 0.578, KernelSHAP 0.0860 / 0.602 (seed 0).

References:
    M. Sundararajan, A. Taly, Q. Yan. "Axiomatic Attribution for Deep Networks." ICML 2017, Sec. 3.
    G. Erion, J. D. Janizek, P. Sturmfels, S. M. Lundberg, S.-I. Lee. "Improving performance of deep learning
    models with axiomatic attribution priors and expected gradients." Nature Machine Intelligence 2021.
    S. Xu, S. Venugopalan, M. Sundararajan. "Attribution in Scale and Space." CVPR 2020.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

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
from gradfree.explain.blur import BLUR, blurred
from gradfree.explain.estimate import antithetic_gradient
from gradfree.explain.fd_saliency import group_directions, spread_over_groups
from gradfree.explain.grouping import Grouping, parse_grouping
from gradfree.explain.zo_smoothgrad import SubspaceScore, support_index
from gradfree.objective.vector import VectorObjective

GRADIENTS: tuple[str, ...] = ("gaussian", "groups", "masks")
SMOOTHING = {"gaussian": 0.01, "groups": 0.01, "masks": 0.25}
"""Each gradient's default ``smoothing``: of the input's range, of the way to the baseline, in mask units."""


def zo_integrated_gradients(model: Model, x: Tensor, *, target: int | Tensor | None = None, queries: int = 1000,
                            access: str = "logits", baseline: float | Tensor = 0.0,
                            generator: torch.Generator | None = None, gradient: str = "gaussian",
                            steps: int | None = None, smoothing: float | None = None, complete: bool = False,
                            grouping: str | Grouping = "grid", orthogonal: bool = True, blur: float = 0.0,
                            blur_sigma: float = BLUR, chunk_size: int = 2048) -> Explanation:
    """Integrated gradients from zeroth-order gradients at ``steps`` points of the path (module docstring).

    Args:
        model, x, target, queries, access, baseline, generator: see :mod:`gradfree.explain.base`.
        gradient: ``"gaussian"``, ``"groups"`` or ``"masks"``.
        steps: path points (default 8 for Gaussian and mask gradients, 4 for groups; fewer when the budget
            cannot give each one pair).
        smoothing: the Gaussian estimator's ``mu`` as a fraction of each input's range (default 0.01), the
            group difference step as a fraction of the way to the baseline (0.01), or the masks' noise (0.25).
        complete: (Gaussian, masks) replace each estimate's component along the path by the measured
            difference.
        grouping: (groups, masks) the grouping, as for ``fd-saliency``.
        orthogonal: (Gaussian, masks) directions orthogonal in blocks.
        blur: the weight, and share of the queries and steps, of a second path that starts at the input
            blurred (images only; module docstring); 0 (default) for the baseline's path alone.
        blur_sigma: that blur's standard deviation as a fraction of the image side.
        chunk_size: at most this many rows per query call.

    Returns:
        An :class:`~gradfree.explain.base.Explanation`; extras ``completeness_gap`` ``(N,)``, ``delta``
        ``(N,)`` (``f(x)`` minus the starts' weighted scores) and ``steps`` ``(N,)`` (of all paths).
    """
    if gradient not in GRADIENTS:
        raise ConfigError(f"gradient must be one of {', '.join(GRADIENTS)}, got {gradient!r}")
    if complete and gradient == "groups":
        raise ConfigError("complete=True corrects Gaussian estimates; group differences need no correction")
    steps = check_count("steps", steps if steps is not None else (4 if gradient == "groups" else 8))
    smoothing = check_positive("smoothing", smoothing if smoothing is not None else SMOOTHING[gradient])
    if not 0.0 <= blur < 1.0:
        raise ConfigError(f"blur is the blurred path's weight, in [0, 1), got {blur}")
    problem = BlackBoxProblem.build(model, x, target=target, queries=queries, access=access, baseline=baseline,
                                    minimum=4 if blur == 0 else 8, what="zo-ig")
    paths = [(1.0 - blur, problem)]
    if blur > 0:
        paths.append((blur, problem.with_baseline(blurred(problem.x, blur_sigma))))
    n = problem.num_inputs
    maps = torch.zeros(n, problem.num_dims, dtype=problem.x.dtype, device=problem.x.device)
    start_score = torch.zeros(n, dtype=problem.clean.dtype, device=problem.clean.device)
    steps_run, left = 0, queries
    for j, (weight, path) in enumerate(paths):
        share = left if j == len(paths) - 1 else round(queries * weight)  # the last path takes what is left
        if share < 4:
            raise ConfigError(f"zo-ig with blur={blur} leaves a path {share} of the {queries} queries per input; "
                              f"each path needs at least 4: raise queries or move blur away from 0 and 1")
        path_steps = max(1, round(steps * weight))
        path_maps, path_steps, f_b = _path_attribution(path, gradient, queries=share, steps=path_steps,
                                                       smoothing=smoothing, complete=complete, grouping=grouping,
                                                       orthogonal=orthogonal, generator=generator,
                                                       chunk_size=chunk_size)
        maps += weight * path_maps
        start_score += weight * f_b
        steps_run += path_steps
        left -= share
    delta = problem.clean - start_score
    gap = (maps.sum(dim=1) - delta).abs() / delta.abs().clamp(min=1e-12)
    return problem.explanation(maps, "zo-ig", completeness_gap=gap, delta=delta,
                               steps=torch.full((n,), steps_run, dtype=torch.int64))


def _path_attribution(problem: BlackBoxProblem, gradient: str, *, queries: int, steps: int, smoothing: float,
                      complete: bool, grouping: str | Grouping, orthogonal: bool,
                      generator: torch.Generator | None, chunk_size: int) -> tuple[Tensor, int, Tensor]:
    """``(maps (N, D), steps taken, f(b) (N,))`` of the path from ``problem``'s baseline, in ``queries`` per
    input (``f(x)``, already known, counted among them)."""
    n = problem.num_inputs
    f_b = problem.score(problem.baseline, torch.arange(n))
    gaussian: dict[str, Any] = {"queries": queries, "steps": steps, "complete": complete, "orthogonal": orthogonal,
                                "generator": generator, "chunk_size": chunk_size}
    maps = torch.zeros(n, problem.num_dims, dtype=problem.x.dtype, device=problem.x.device)
    if gradient == "gaussian":
        index = [support_index(problem, i, "present") for i in range(n)]  # only these can get an attribution
        total, steps = _gaussian_path(problem, f_b, _pixel_spaces(problem, index, smoothing), **gaussian)
        for i, t in enumerate(total):
            if t is not None:
                maps[i, index[i]] = t
        maps *= (problem.x - problem.baseline).reshape(n, -1)
    elif gradient == "masks":
        steps, pairs = _path_pairs(queries, steps, complete)
        directions, _ = group_directions(problem, parse_grouping(grouping), pairs // steps, times_input=True)
        total, steps = _gaussian_path(problem, f_b, _mask_spaces(problem, directions, smoothing), **gaussian)
        for i, t in enumerate(total):
            if t is not None:
                maps[i] = spread_over_groups(t, directions[i])
    else:
        maps, steps = _group_path(problem, queries=queries, steps=steps, step=smoothing,
                                  grouping=parse_grouping(grouping))
    return maps, steps, f_b


class _PathSpace(NamedTuple):
    """One input's path in the variables a Gaussian estimate perturbs: the score of rows of the variables at
    path position ``a`` (``objective(a)``), the variables at the baseline (``start``), the step from there to
    the input (``v``) and the estimator's smoothing in the variables' units (``mu``)."""

    objective: Callable[[float], VectorObjective]
    start: Tensor
    v: Tensor
    mu: float


def _pixel_spaces(problem: BlackBoxProblem, indices: list[Tensor], smoothing: float) -> list[_PathSpace | None]:
    """The straight path in the coordinates ``indices[i]`` (those that differ from the baseline); noise
    ``smoothing`` of the range."""
    n = problem.num_inputs
    flat_x, flat_b = problem.x.reshape(n, -1), problem.baseline.reshape(n, -1)
    mu = smoothing * input_range(problem.x)
    spaces: list[_PathSpace | None] = []
    for i, index in enumerate(indices):
        if index.numel() == 0:
            spaces.append(None)
            continue
        objective = SubspaceScore(problem, i, index)

        def at(a: float, objective: SubspaceScore = objective, i: int = i) -> VectorObjective:
            objective.base = flat_b[i] + a * (flat_x[i] - flat_b[i])  # the others are on the path too
            return objective

        spaces.append(_PathSpace(at, flat_b[i, index], (flat_x[i] - flat_b[i])[index], float(mu[i])))
    return spaces


def _mask_spaces(problem: BlackBoxProblem, directions: list[Tensor], smoothing: float) -> list[_PathSpace | None]:
    """The path ``m = a 1`` in the masks of the groups ``directions[i]`` ``(k, D)``; noise ``smoothing``."""
    spaces: list[_PathSpace | None] = []
    for i, d in enumerate(directions):
        if d.shape[0] == 0:
            spaces.append(None)
            continue
        ones = torch.ones(d.shape[0], dtype=d.dtype, device=d.device)
        spaces.append(_PathSpace(_constant(MaskScore(problem, i, d)), torch.zeros_like(ones), ones, smoothing))
    return spaces


def _constant(objective: VectorObjective) -> Callable[[float], VectorObjective]:
    """The same objective at every path position (the masks' objective does not move with the path)."""

    def at(a: float) -> VectorObjective:
        del a
        return objective

    return at


class MaskScore:
    """One input's target score as a function of one weight per group: ``m (P, k) -> f(b + m @ directions)``,
    every row one query charged to ``owner``."""

    def __init__(self, problem: BlackBoxProblem, owner: int, directions: Tensor) -> None:
        self.problem, self.owner, self.directions = problem, owner, directions
        self.base = problem.baseline[owner].reshape(-1)

    def __call__(self, points: Tensor) -> Tensor:
        full = self.base + points.to(self.directions.dtype) @ self.directions
        owners = torch.full((points.shape[0],), self.owner, dtype=torch.int64)
        return self.problem.score(full.reshape(-1, *self.problem.x.shape[1:]), owners)


def _path_pairs(queries: int, steps: int, complete: bool) -> tuple[int, int]:
    """``(steps, pairs in all)`` a Gaussian path can have: each step needs one pair (2 queries), plus one grid
    point (1 query) when completeness is enforced; ``f(x)`` and ``f(b)`` take one query each."""
    steps = min(steps, (queries - 2 + int(complete)) // (2 + int(complete)))
    pairs_total = (queries - 2 - (steps - 1 if complete else 0)) // 2
    if steps < 1 or pairs_total < steps:
        raise ConfigError(f"zo-ig needs at least 4 queries per input, got {queries}")
    return steps, pairs_total


def _gaussian_path(problem: BlackBoxProblem, f_b: Tensor, spaces: list[_PathSpace | None], *, queries: int,
                   steps: int, complete: bool, orthogonal: bool, generator: torch.Generator | None,
                   chunk_size: int) -> tuple[list[Tensor | None], int]:
    """Per input, the mean estimated gradient over the path's midpoints in its space's variables (``None``
    where nothing differs from the baseline; the smoothing is each space's ``mu``), and the steps taken."""
    steps, pairs_total = _path_pairs(queries, steps, complete)
    per_step = [pairs_total // steps + (1 if s < pairs_total % steps else 0) for s in range(steps)]
    gen = on_device(make_generator(generator), problem.x.device)
    n = problem.num_inputs
    flat_x, flat_b = problem.x.reshape(n, -1), problem.baseline.reshape(n, -1)
    totals: list[Tensor | None] = []
    for i, space in enumerate(spaces):
        if space is None:
            totals.append(None)
            continue
        v = space.v
        vv = float(v @ v)
        if complete:
            inner = flat_b[i] + (torch.arange(1, steps, dtype=flat_x.dtype, device=flat_x.device) / steps)[:, None] * \
                (flat_x[i] - flat_b[i])
            grid = torch.cat([f_b[i:i + 1], problem.score(inner.reshape(-1, *problem.x.shape[1:]),
                                                          torch.full((steps - 1,), i, dtype=torch.int64)),
                              problem.clean[i:i + 1]])
        total = torch.zeros_like(v)
        for s in range(steps):
            a = (s + 0.5) / steps
            g = antithetic_gradient(space.objective(a), space.start + a * v, pairs=per_step[s], smoothing=space.mu,
                                    generator=gen, orthogonal=orthogonal, chunk_size=chunk_size)
            if complete:
                slope = (grid[s + 1] - grid[s]) * steps
                g = g + (slope - g @ v) / vv * v
            total += g / steps
        totals.append(total)
    return totals, steps


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
        maps[i] = spread_over_groups(integrand, directions[i]).to(maps.dtype)
    return maps, steps


register("zo-ig", zo_integrated_gradients, kind="zeroth-order",
               summary="integrated gradients from zeroth-order gradients along the path, in pixels or in "
                       "superpixel masks (Sundararajan et al. 2017), completeness gap reported",
               options=("gradient", "steps", "smoothing", "complete", "grouping", "orthogonal", "blur", "blur_sigma",
                        "chunk_size"))
