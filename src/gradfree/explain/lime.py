"""LIME: a locally weighted linear surrogate over superpixels (Ribeiro et al. 2016, Sec. 3.3-3.4).

LIME samples coalitions ``z`` of an input's groups uniformly (each group kept with probability 1/2, as its
image explainer does), queries the box on them (removed groups take the baseline), weights each sample by
its proximity to the input, ``pi(z) = exp(-d(z)^2 / (2 w^2))``, and fits a weighted ridge regression; the
coefficients are the explanation. The distance is, by ``distance``:

* ``"interpretable"`` (default, LIME's image explainer): the cosine distance between ``z`` and the all-ones
  coalition, kernel width ``w = 0.25`` and ridge 1 (``lime_image`` and scikit-learn's ``Ridge`` defaults);
* ``"input"`` (captum's ``Lime``): the cosine distance between the flattened input and the perturbed input,
  with captum's width ``w = 1``; with ``ridge=0`` this is captum's estimator with ``SkLearnLinearRegression``.

The input's own query (``z = 1``, weight 1) is one of the samples, as in LIME; the other ``queries - 1``
are drawn, batched. Without a size, the grouping gets about one group per ten queries (4 to 256).

Reference: M. T. Ribeiro, S. Singh, C. Guestrin. "'Why Should I Trust You?': Explaining the Predictions of
Any Classifier." KDD 2016, Sec. 3.3-3.4.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.explain.base import BlackBoxProblem, Explanation, Model, check_positive, make_generator, register
from gradfree.explain.grouping import Grouping, parse_grouping, segment
from gradfree.explain.kernel_shap import default_groups
from gradfree.explain.surrogate import coalition_scores, spread, weighted_linear_fit

DISTANCES: tuple[str, ...] = ("interpretable", "input")


def lime_weights(z: Tensor, *, distance: str, kernel_width: float, x: Tensor | None = None,
                 points: Tensor | None = None) -> Tensor:
    """``(n,)`` proximity weights of coalitions ``z`` ``(n, M)``: ``exp(-d^2 / (2 w^2))`` with ``d`` the
    cosine distance of ``z`` to all-ones, or of ``points`` ``(n, D)`` to ``x`` ``(D,)`` (``"input"``)."""
    if distance == "interpretable":
        zf = z.to(torch.float64)
        cos = zf.sum(dim=1) / (zf.norm(dim=1).clamp(min=1e-12) * z.shape[1] ** 0.5)
    else:
        assert x is not None and points is not None
        xf, pf = x.reshape(1, -1).to(torch.float64), points.reshape(points.shape[0], -1).to(torch.float64)
        cos = torch.nn.functional.cosine_similarity(pf, xf, dim=1)
    d = 1 - cos
    return torch.exp(-d.square() / (2 * kernel_width**2))


def lime(model: Model, x: Tensor, *, target: int | Tensor | None = None, queries: int = 1000,
         access: str = "logits", baseline: float | Tensor = 0.0, generator: torch.Generator | None = None,
         grouping: str | Grouping = "slic", distance: str = "interpretable", kernel_width: float | None = None,
         ridge: float | None = None) -> Explanation:
    """LIME over groups with ``queries - 1`` sampled coalitions and the input itself (module docstring).

    Args:
        model, x, target, queries, access, baseline, generator: see :mod:`gradfree.explain.base`.
        grouping: ``"slic"`` (default), ``"grid"``...; without a size, about one group per ten queries.
        distance: ``"interpretable"`` (LIME) or ``"input"`` (captum).
        kernel_width: ``w`` (default 0.25 for ``"interpretable"``, 1 for ``"input"``).
        ridge: the ridge penalty (default 1 for ``"interpretable"``, 0 for ``"input"``).

    Returns:
        An :class:`~gradfree.explain.base.Explanation`; extras ``labels`` (the groups), ``values``
        (``(N, M)`` coefficients) and ``intercept`` ``(N,)``.
    """
    if distance not in DISTANCES:
        raise ConfigError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
    width = check_positive("kernel_width", kernel_width if kernel_width is not None else
                           (0.25 if distance == "interpretable" else 1.0))
    penalty = ridge if ridge is not None else (1.0 if distance == "interpretable" else 0.0)
    if isinstance(penalty, bool) or not isinstance(penalty, int | float) or penalty < 0:
        raise ConfigError(f"ridge must be a number >= 0, got {ridge!r}")
    problem = BlackBoxProblem.build(model, x, target=target, queries=queries, access=access, baseline=baseline,
                                    minimum=2, what="lime")
    gen = make_generator(generator)
    g = parse_grouping(grouping)
    if g.size is None and g.kind in ("grid", "slic"):
        g = Grouping(g.kind, default_groups(queries))
    segments = segment(problem.x, g)
    n = problem.num_inputs
    coalitions = [torch.rand(queries - 1, int(segments.counts[i]), generator=gen) < 0.5 for i in range(n)]
    scores = coalition_scores(problem, segments, coalitions)
    maps = torch.zeros(n, problem.num_dims, dtype=problem.x.dtype, device=problem.x.device)
    values = torch.zeros(n, int(segments.counts.max()), dtype=torch.float64)
    intercepts = torch.zeros(n, dtype=torch.float64)
    flat_labels = segments.labels.reshape(n, -1)
    for i in range(n):
        m = int(segments.counts[i])
        z = torch.cat([torch.ones(1, m, dtype=torch.bool), coalitions[i]])
        y = torch.cat([problem.clean[i:i + 1], scores[i]])
        if distance == "input":
            keep = z.to(problem.x.dtype).to(problem.x.device)[:, flat_labels[i]]
            points = problem.x[i].reshape(1, -1) * keep + problem.baseline[i].reshape(1, -1) * (1 - keep)
            w = lime_weights(z, distance=distance, kernel_width=width, x=problem.x[i].cpu(), points=points.cpu())
        else:
            w = lime_weights(z, distance=distance, kernel_width=width)
        coef, intercept = weighted_linear_fit(z, y, w, ridge=float(penalty))
        values[i, :m] = coef
        intercepts[i] = intercept
        maps[i] = spread(segments, i, coef).to(maps.dtype)
    return problem.explanation(maps, "lime", labels=segments.labels.cpu(), values=values, intercept=intercepts)


register("lime", lime, kind="black-box",
               summary="LIME, weighted ridge surrogate over superpixels (Ribeiro et al. 2016)",
               options=("grouping", "distance", "kernel_width", "ridge"))
