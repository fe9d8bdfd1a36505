"""Finite-difference saliency: the gradient of the class score from coordinate differences over groups.

Gradient saliency (Simonyan et al. 2014, Sec. 3.1) is the gradient of the class score with respect to the
input. A black box gives it by finite differences, one coordinate at a time (ZOO's coordinate estimate, Chen
et al. 2017, Sec. III-A), at two queries per coordinate for central differences: 1,568 queries for a 28x28
image, 6,144 for a 3x32x32 one. Perturbing a *group* of coordinates together costs the same two queries and
measures the sum of the group's partial derivatives, so a budget of ``Q`` queries buys ``(Q - 1) // 2`` groups
(:mod:`gradfree.explain.grouping`: grid cells, patches, SLIC superpixels, or every coordinate for the exact
finite-difference gradient).

Two directions are differenced, by ``times_input``:

* ``False`` — the group's indicator ``1_g``, step ``h = step * (max x - min x)``: the difference quotient is
  ``sum_{j in g} df/dx_j``, spread evenly over the group's elements. With ``coordinates`` grouping this is the
  finite-difference gradient itself, equal to autograd's up to ``O(h^2)``;
* ``True`` (default) — the group's part of ``x - baseline``, ``d_g = (x - b) * 1_g``, step ``h = step``
  (a fraction of the way to the baseline): the quotient is ``sum_{j in g} df/dx_j (x_j - b_j)``, the
  first-order change of the score when the group is removed — gradient times input (Shrikumar et al. 2017),
  the quantity deletion and insertion measure. It is spread over the group in proportion to
  ``|x_j - b_j|``, so with one coordinate per group it is exactly gradient times input. A group that equals
  the baseline has nothing to remove: it gets zero and costs no query, and without a grid size the grid is
  made as fine as the budget pays for among the groups that remain.

References:
    K. Simonyan, A. Vedaldi, A. Zisserman. "Deep Inside Convolutional Networks: Visualising Image
    Classification Models and Saliency Maps." ICLR workshop 2014, Sec. 3.1.
    P.-Y. Chen, H. Zhang, Y. Sharma, J. Yi, C.-J. Hsieh. "ZOO." AISec 2017, Sec. III-A.
    A. Shrikumar, P. Greenside, A. Kundaje. "Learning Important Features Through Propagating Activation
    Differences." ICML 2017 (gradient times input).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.explain.base import BlackBoxProblem, Explanation, Model, check_positive, input_range, register
from gradfree.explain.grouping import Grouping, Segments, parse_grouping, segment


def fd_saliency(model: Model, x: Tensor, *, target: int | Tensor | None = None, queries: int = 1000,
                access: str = "logits", baseline: float | Tensor = 0.0, generator: torch.Generator | None = None,
                grouping: str | Grouping = "grid", step: float = 0.1, difference: str = "central",
                times_input: bool = True) -> Explanation:
    """Finite-difference saliency over groups of coordinates (see the module docstring).

    Args:
        model, x, target, queries, access, baseline: see :mod:`gradfree.explain.base`.
        generator: unused (the method is deterministic); accepted for the shared signature.
        grouping: ``"grid"`` (as fine as the budget allows), ``"grid:K"``, ``"patches:P"``, ``"slic[:K]"``,
            ``"pixels"`` or ``"coordinates"``.
        step: the difference step, a fraction of each input's range (``times_input=False``) or of the way to
            the baseline (``times_input=True``).
        difference: ``"central"`` (two queries per group, error ``O(h^2)``) or ``"forward"`` (one query per
            group after ``f(x)``, error ``O(h)``).
        times_input: difference along ``(x - baseline)`` on each group (gradient times input) rather than
            along the group's indicator (the gradient).

    Returns:
        An :class:`~gradfree.explain.base.Explanation`; extras ``groups`` ``(N,)``: the groups queried.
    """
    del generator
    if difference not in ("central", "forward"):
        raise ConfigError(f"difference must be central or forward, got {difference!r}")
    step = check_positive("step", step)
    per_group = 2 if difference == "central" else 1
    problem = BlackBoxProblem.build(model, x, target=target, queries=queries, access=access, baseline=baseline,
                                    minimum=1 + per_group, what="fd-saliency")
    max_groups = (queries - 1) // per_group
    directions, segments = group_directions(problem, parse_grouping(grouping), max_groups, times_input=times_input)
    scale = step * input_range(problem.x) if not times_input else torch.full((problem.num_inputs,), step)
    maps = torch.zeros(problem.num_inputs, problem.num_dims, dtype=problem.x.dtype, device=problem.x.device)
    groups = torch.zeros(problem.num_inputs, dtype=torch.int64)
    flat = problem.x.reshape(problem.num_inputs, -1)
    signs = torch.tensor([1.0, -1.0] if per_group == 2 else [-1.0], dtype=flat.dtype, device=flat.device)

    def rows(i: int, start: int, stop: int) -> Tensor:
        d = directions[i]
        first, last = start // per_group, (stop + per_group - 1) // per_group
        pts = flat[i] + float(scale[i]) * (signs[:, None, None] * d[first:last]).transpose(0, 1).reshape(-1, d.shape[1])
        return pts[start - first * per_group: stop - first * per_group].reshape(-1, *problem.x.shape[1:])

    counts = [directions[i].shape[0] * per_group for i in range(problem.num_inputs)]
    scores = problem.score_rows(counts, rows)
    for i in range(problem.num_inputs):
        k = directions[i].shape[0]
        if k == 0:
            continue
        h = float(scale[i])
        if per_group == 2:
            pair = scores[i].reshape(k, 2)
            quotient = (pair[:, 0] - pair[:, 1]) / (2 * h)
        else:  # forward difference toward the baseline (or down the indicator): (f(x) - f(x - h d)) / h
            quotient = (problem.clean[i] - scores[i]) / h
        maps[i] = spread_over_groups(quotient.to(maps.dtype), directions[i])
        groups[i] = k
    del segments
    return problem.explanation(maps, "fd-saliency", groups=groups)


def group_directions(problem: BlackBoxProblem, grouping: Grouping, max_groups: int, *,
                     times_input: bool) -> tuple[list[Tensor], Segments | None]:
    """Per input, the ``(k_i, D)`` directions to difference along: each group's indicator, or with
    ``times_input`` its part of ``x - baseline`` (groups that would not move are dropped; a ``grid`` without
    a size is made as fine as ``max_groups`` moving groups allow)."""
    n = problem.num_inputs
    flat = problem.x.reshape(n, -1)
    delta = (problem.x - problem.baseline).reshape(n, -1)
    if times_input and grouping.kind == "grid" and grouping.size is None and problem.x.ndim == 4:
        return [_finest_grid(problem.x[i:i + 1], delta[i], max_groups) for i in range(n)], None
    segments = segment(problem.x, grouping, max_groups=max_groups)
    out = []
    for i in range(n):
        one_hot = segments.one_hot(i).to(flat.dtype)
        d = one_hot * delta[i] if times_input else one_hot
        out.append(d[d.abs().sum(dim=1) > 0])
    return out, segments


def spread_over_groups(values: Tensor, directions: Tensor) -> Tensor:
    """``(D,)`` each group's value ``values (k,)`` spread over its coordinates in proportion to
    ``|directions (k, D)|``."""
    weights = directions.abs()
    weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=torch.finfo(weights.dtype).tiny)
    return values.to(weights.dtype) @ weights


def _finest_grid(image: Tensor, delta: Tensor, max_groups: int) -> Tensor:
    """The directions of the finest grid whose cells that differ from the baseline fit in ``max_groups``."""
    h, w = image.shape[2], image.shape[3]
    best = None
    lo, hi = 1, h * w
    while lo <= hi:  # cells that move grow with the grid: bisect on the requested cell count
        mid = (lo + hi) // 2
        one_hot = segment(image, Grouping("grid", mid)).one_hot(0).to(delta.dtype)
        d = one_hot * delta
        d = d[d.abs().sum(dim=1) > 0]
        if d.shape[0] <= max_groups:
            best, lo = d, mid + 1
        else:
            hi = mid - 1
    assert best is not None  # one cell always fits
    return best


register("fd-saliency", fd_saliency, kind="zeroth-order",
               summary="finite-difference saliency over groups (grid, patches, SLIC, coordinates)",
               options=("grouping", "step", "difference", "times_input"))
