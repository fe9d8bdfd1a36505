"""KernelSHAP: Shapley values of groups by a weighted linear regression (Lundberg & Lee 2017, Sec. 4.1).

The Shapley values of the ``M`` groups of an input (:mod:`gradfree.explain.grouping`; a removed group takes
the baseline) solve a linear regression over coalitions ``z`` in ``{0, 1}^M`` weighted by the Shapley kernel
``pi(z) = (M - 1) / (C(M, |z|) |z| (M - |z|))`` (Theorem 2), whose infinite weights on the empty and the full
coalition fix the intercept at ``f(b)`` and the sum at ``f(x) - f(b)`` (local accuracy). Coalitions are drawn
in proportion to the kernel — a size ``k`` with probability proportional to ``(M - 1) / (k (M - k))``, then a
uniform subset of that size, as captum's ``KernelShap`` does — so the regression is unweighted, and
constrained exactly rather than by a large weight. They come in complementary pairs ``z, 1 - z`` (paired
sampling: the pair's errors cancel to first order; Covert & Lee 2021, Sec. 4), which halves the variance of
the estimate at equal queries. ``f(x)`` is the input's first query, ``f(b)`` one more, and the other
``queries - 2`` are coalitions, batched.

Without a size, the grouping gets about one group per ten queries (between 4 and 256): the regression needs
several samples per coefficient.

References:
    S. M. Lundberg, S.-I. Lee. "A Unified Approach to Interpreting Model Predictions." NeurIPS 2017,
    Sec. 4.1 (Theorem 2).
    I. Covert, S.-I. Lee. "Improving KernelSHAP: Practical Shapley Value Estimation via Linear Regression."
    AISTATS 2021, Sec. 4 (paired sampling).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfree.explain.base import BlackBoxProblem, Explanation, Model, make_generator, register
from gradfree.explain.grouping import Grouping, parse_grouping, segment
from gradfree.explain.surrogate import coalition_scores, constrained_linear_fit, spread


def default_groups(queries: int) -> int:
    """Groups a surrogate method uses without a grouping size: about one per ten queries, 4 to 256."""
    return max(4, min(256, queries // 10))


def shapley_coalitions(count: int, m: int, *, generator: torch.Generator, paired: bool = True) -> Tensor:
    """``(count, m)`` bool coalitions drawn in proportion to the Shapley kernel (sizes 1 .. m - 1)."""
    if m < 2:
        return torch.ones(count, m, dtype=torch.bool)
    k = torch.arange(1, m, dtype=torch.float64)
    size_weights = (m - 1) / (k * (m - k))
    draws = (count + 1) // 2 if paired else count
    sizes = torch.multinomial(size_weights, draws, replacement=True, generator=generator) + 1
    order = torch.rand(draws, m, generator=generator).argsort(dim=1)
    z = order < sizes[:, None]  # the first `size` positions of a random permutation: a uniform subset
    if paired:
        z = torch.stack([z, ~z], dim=1).reshape(-1, m)
    return z[:count]


def kernel_shap(model: Model, x: Tensor, *, target: int | Tensor | None = None, queries: int = 1000,
                access: str = "logits", baseline: float | Tensor = 0.0, generator: torch.Generator | None = None,
                grouping: str | Grouping = "slic", paired: bool = True) -> Explanation:
    """KernelSHAP over groups with ``queries - 2`` coalitions per input (see the module docstring).

    Args:
        model, x, target, queries, access, baseline, generator: see :mod:`gradfree.explain.base`.
        grouping: ``"slic"`` (default), ``"grid"``, ``"patches:P"``...; without a size,
            :func:`default_groups` of the budget.
        paired: draw coalitions in complementary pairs.

    Returns:
        An :class:`~gradfree.explain.base.Explanation`; the map of a group's elements adds up to its Shapley
        value; extras ``labels`` ``(N, *shape)`` (the groups) and ``values`` (``(N, M)`` Shapley values, zero
        padded where an input has fewer groups).
    """
    problem = BlackBoxProblem.build(model, x, target=target, queries=queries, access=access, baseline=baseline,
                                    minimum=3, what="kernel-shap")
    gen = make_generator(generator)
    g = parse_grouping(grouping)
    if g.size is None and g.kind in ("grid", "slic"):
        g = Grouping(g.kind, default_groups(queries))
    segments = segment(problem.x, g)
    n = problem.num_inputs
    f_b = problem.score(problem.baseline, torch.arange(n))
    coalitions = [shapley_coalitions(queries - 2, int(segments.counts[i]), generator=gen, paired=paired)
                  for i in range(n)]
    scores = coalition_scores(problem, segments, coalitions)
    maps = torch.zeros(n, problem.num_dims, dtype=problem.x.dtype, device=problem.x.device)
    values = torch.zeros(n, int(segments.counts.max()), dtype=torch.float64)
    for i in range(n):
        phi = constrained_linear_fit(coalitions[i].to(torch.float64), scores[i], offset=f_b[i],
                                     total=problem.clean[i] - f_b[i])
        values[i, :phi.numel()] = phi
        maps[i] = spread(segments, i, phi).to(maps.dtype)
    return problem.explanation(maps, "kernel-shap", labels=segments.labels.cpu(), values=values)


register("kernel-shap", kernel_shap, kind="black-box",
               summary="KernelSHAP over superpixels, paired kernel sampling (Lundberg & Lee 2017)",
               options=("grouping", "paired"))


def exact_shapley(score: Tensor, m: int) -> Tensor:
    """``(M,)`` exact Shapley values from the scores ``(2^M,)`` of every coalition (index bit ``j``: group
    ``j`` present), by enumeration; the reference the tests check KernelSHAP against."""
    import math

    index = torch.arange(2**m)
    z = ((index[:, None] >> torch.arange(m)) & 1).bool()
    sizes = z.sum(dim=1)
    phi = torch.zeros(m, dtype=torch.float64)
    for j in range(m):
        without = ~z[:, j]
        s = sizes[without]
        weight = torch.tensor([math.factorial(int(k)) * math.factorial(m - int(k) - 1) / math.factorial(m)
                               for k in s], dtype=torch.float64)
        phi[j] = (weight * (score[index[without] | (1 << j)] - score[index[without]]).to(torch.float64)).sum()
    return phi

