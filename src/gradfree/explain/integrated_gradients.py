"""White-box integrated gradients by autograd (the reference of ZO integrated gradients).

``IG_j(x) = (x_j - b_j) * integral_0^1 df/dx_j(b + a (x - b)) da`` (Sundararajan et al. 2017, Sec. 3, Eq. 1),
approximated by the midpoint rule with ``steps`` points (Sec. 3, "Computing integrated gradients"). Its
completeness gap ``|sum_j IG_j - (f(x) - f(b))| / |f(x) - f(b)|`` (Sec. 3, Proposition 1) is reported; the
paper suggests steps between 20 and 300 bring it within 5%. One "query" is one forward and backward pass.

Reference: M. Sundararajan, A. Taly, Q. Yan. "Axiomatic Attribution for Deep Networks." ICML 2017, Sec. 3.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.explain.base import Explanation, Model, WhiteBoxProblem, check_count, register
from gradfree.objective.input_space import evaluation_mode


def integrated_gradients(model: Model, x: Tensor, *, target: int | Tensor | None = None, queries: int = 1000,
                         access: str = "logits", baseline: float | Tensor = 0.0,
                         generator: torch.Generator | None = None, steps: int = 64, batch: int = 256) -> Explanation:
    """Autograd integrated gradients along the straight path from the baseline, midpoint rule.

    Args:
        model, x, target, queries, access, baseline: see :mod:`gradfree.explain.base`.
        generator: unused (deterministic).
        steps: path points (at most ``queries - 2``: the prediction and ``f(baseline)`` take one each).
        batch: path points per backward pass.

    Returns:
        An :class:`~gradfree.explain.base.Explanation`; extras ``completeness_gap`` ``(N,)`` and ``delta``
        ``(N,)`` (``f(x) - f(baseline)``).
    """
    del generator
    problem = WhiteBoxProblem(model, x, target=target, queries=queries, access=access, baseline=baseline)
    steps = check_count("steps", steps)
    if steps > queries - 2:
        raise ConfigError(f"integrated-gradients: {steps} steps need {steps + 2} queries, the budget is {queries}")
    maps, delta, gap = _integrate(problem, steps, batch)
    return problem.explanation(maps, "integrated-gradients", completeness_gap=gap, delta=delta)


def _integrate(problem: WhiteBoxProblem, steps: int, batch: int) -> tuple[Tensor, Tensor, Tensor]:
    x, b = problem.x, problem.baseline
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps
    total = torch.zeros_like(x)
    for i in range(x.shape[0]):
        for chunk in alphas.split(batch):
            shape = (-1, *([1] * (x.ndim - 1)))
            points = b[i] + chunk.reshape(shape) * (x[i] - b[i])
            total[i] += problem.gradient(points, problem.targets[i].expand(chunk.numel())).sum(dim=0)
        problem.charge(torch.full((steps + 1,), i, dtype=torch.int64))  # the path and f(baseline)
    maps = (x - b) * total / steps
    with torch.no_grad(), evaluation_mode(problem.model):
        ends = problem.model(torch.cat([x, b]))
        if problem.access == "probabilities":
            ends = ends.softmax(dim=1)
    t = problem.targets.to(ends.device).repeat(2).reshape(-1, 1)
    f_x, f_b = ends.gather(1, t).squeeze(1).chunk(2)
    delta = f_x - f_b
    gap = (maps.reshape(x.shape[0], -1).sum(dim=1) - delta).abs() / delta.abs().clamp(min=1e-12)
    return maps, delta, gap


register("integrated-gradients", integrated_gradients, kind="white-box",
               summary="autograd integrated gradients, midpoint rule (Sundararajan et al. 2017)",
               options=("steps", "batch"))
