"""ZO-SmoothGrad: SmoothGrad without a gradient, from antithetic Gaussian queries.

SmoothGrad (Smilkov et al. 2017, Sec. 3) averages gradients at noisy copies of the input,
``E_u grad f(x + sigma u)``, ``u ~ N(0, I)``: the gradient of the *smoothed* score
``f_sigma(x) = E f(x + sigma u)``. By Stein's identity that gradient is also
``E[(f(x + sigma u) - f(x - sigma u)) u] / (2 sigma)`` (Nesterov & Spokoiny 2017, Sec. 2), which needs only
scores. So the Gaussian-smoothing estimator *is* SmoothGrad when its smoothing equals SmoothGrad's noise:
its expectation is exactly white-box SmoothGrad's, and both converge to ``grad f_sigma`` as samples grow (the
tests check it against autograd). Each direction is queried as an antithetic pair ``x +- sigma u`` (central
differences), which cancels ``f(x)`` and the even part of the score; all pairs of one input go to the model
in one batched query (split only to bound memory). The directions are orthogonal in blocks
(:mod:`gradfree.explain.estimate`; still each ``N(0, I)``, so the expectation is unchanged) unless
``orthogonal=False``, which gives the independent directions of
:func:`gradfree.estimators.directional.directional_estimate`.

``noise`` is SmoothGrad's noise level, a fraction of each input's range (the paper finds 10-20% best). With
``support="present"`` the noise is drawn only on the coordinates that differ from the baseline: the variance
of the estimate grows with the number of coordinates perturbed, and a ``times_input`` map is zero elsewhere
anyway (the smoothing is then over those coordinates only; :func:`gradfree.explain.smoothgrad.smoothgrad`
takes the same option).

References:
    D. Smilkov, N. Thorat, B. Kim, F. Viégas, M. Wattenberg. "SmoothGrad: removing noise by adding noise."
    ICML workshop on visualization for deep learning, 2017, Sec. 3.
    Y. Nesterov, V. Spokoiny. "Random gradient-free minimization of convex functions." Foundations of
    Computational Mathematics 17, 2017, Sec. 2 (Gaussian smoothing and its gradient).
"""

from __future__ import annotations

from typing import Literal, overload

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.explain.base import (
    BlackBoxProblem,
    Explanation,
    Model,
    check_positive,
    input_range,
    make_generator,
    on_device,
    register,
)
from gradfree.explain.estimate import antithetic_gradient

SUPPORTS: tuple[str, ...] = ("all", "present")


class SubspaceScore:
    """One input's target score as a vector objective over a subset of its coordinates.

    ``points (P, k)`` are the values of the coordinates ``index`` (all of them when ``None``); the others take
    their values in ``base`` (``(D,)``, the input itself by default; a caller may move it). Every row is one
    query charged to ``owner``.
    """

    def __init__(self, problem: BlackBoxProblem, owner: int, index: Tensor | None, base: Tensor | None = None) -> None:
        self.problem, self.owner, self.index = problem, owner, index
        self.base = problem.x[owner].reshape(-1) if base is None else base

    def __call__(self, points: Tensor) -> Tensor:
        if self.index is None:
            full = points
        else:
            full = self.base.expand(points.shape[0], -1).clone()
            full[:, self.index] = points
        owners = torch.full((points.shape[0],), self.owner, dtype=torch.int64)
        return self.problem.score(full.reshape(-1, *self.problem.x.shape[1:]), owners)


@overload
def support_index(problem: BlackBoxProblem, i: int, support: Literal["present"]) -> Tensor: ...


@overload
def support_index(problem: BlackBoxProblem, i: int, support: str) -> Tensor | None: ...


def support_index(problem: BlackBoxProblem, i: int, support: str) -> Tensor | None:
    """The coordinates of input ``i`` to perturb: ``None`` for all, else those that differ from the baseline."""
    if support not in SUPPORTS:
        raise ConfigError(f"support must be one of {', '.join(SUPPORTS)}, got {support!r}")
    if support == "all":
        return None
    return torch.nonzero((problem.x[i] - problem.baseline[i]).reshape(-1)).flatten()


def zo_smoothgrad(model: Model, x: Tensor, *, target: int | Tensor | None = None, queries: int = 1000,
                  access: str = "logits", baseline: float | Tensor = 0.0, generator: torch.Generator | None = None,
                  noise: float = 0.15, times_input: bool = True, support: str = "all", orthogonal: bool = True,
                  chunk_size: int = 2048) -> Explanation:
    """ZO-SmoothGrad: ``(queries - 1) // 2`` antithetic Gaussian pairs per input (see the module docstring).

    Args:
        model, x, target, queries, access, baseline, generator: see :mod:`gradfree.explain.base`.
        noise: SmoothGrad's ``sigma`` as a fraction of each input's range (``max x - min x``).
        times_input: return ``estimate * (x - baseline)`` (gradient times input) rather than the estimate.
        support: ``"all"`` coordinates perturbed (SmoothGrad exactly) or only those ``"present"``.
        orthogonal: directions orthogonal in blocks (else independent).
        chunk_size: at most this many rows per query call (memory); does not change the result.

    Returns:
        An :class:`~gradfree.explain.base.Explanation`.
    """
    noise = check_positive("noise", noise)
    problem = BlackBoxProblem.build(model, x, target=target, queries=queries, access=access, baseline=baseline,
                                    minimum=3, what="zo-smoothgrad")
    gen = on_device(make_generator(generator), problem.x.device)
    sigma = noise * input_range(problem.x)
    pairs = (queries - 1) // 2
    maps = torch.zeros(problem.num_inputs, problem.num_dims, dtype=problem.x.dtype, device=problem.x.device)
    for i in range(problem.num_inputs):
        index = support_index(problem, i, support)
        objective = SubspaceScore(problem, i, index)
        start = objective.base if index is None else objective.base[index]
        if start.numel() == 0:
            continue
        grad = antithetic_gradient(objective, start, pairs=pairs, smoothing=float(sigma[i]), generator=gen,
                                   orthogonal=orthogonal, chunk_size=chunk_size)
        if index is None:
            maps[i] = grad
        else:
            maps[i, index] = grad
    if times_input:
        maps = maps * (problem.x - problem.baseline).reshape(problem.num_inputs, -1)
    return problem.explanation(maps, "zo-smoothgrad")


register("zo-smoothgrad", zo_smoothgrad, kind="zeroth-order",
               summary="SmoothGrad from antithetic Gaussian queries (Stein's identity; Smilkov et al. 2017)",
               options=("noise", "times_input", "support", "orthogonal", "chunk_size"))
