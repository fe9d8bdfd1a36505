"""White-box SmoothGrad: the mean autograd gradient at noisy copies of the input (ZO-SmoothGrad's reference).

``(1/n) sum_i grad f(x + sigma u_i)``, ``u_i ~ N(0, I)``, with ``sigma`` a fraction ``noise`` of the input's
range (Smilkov et al. 2017, Sec. 3, Eq. 3). ``support="present"`` draws the noise only on coordinates that
differ from the baseline, as :func:`gradfree.explain.zo_smoothgrad.zo_smoothgrad` can. One "query" is one
forward and backward pass of one noisy input.

Reference: D. Smilkov, N. Thorat, B. Kim, F. Viégas, M. Wattenberg. "SmoothGrad: removing noise by adding
noise." 2017, Sec. 3.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.explain.base import (
    Explanation,
    Model,
    WhiteBoxProblem,
    check_count,
    check_positive,
    input_range,
    make_generator,
    on_device,
    register,
)


def smoothgrad(model: Model, x: Tensor, *, target: int | Tensor | None = None, queries: int = 1000,
               access: str = "logits", baseline: float | Tensor = 0.0, generator: torch.Generator | None = None,
               noise: float = 0.15, samples: int | None = None, times_input: bool = True, support: str = "all",
               batch: int = 256) -> Explanation:
    """Autograd SmoothGrad.

    Args:
        model, x, target, queries, access, baseline, generator: see :mod:`gradfree.explain.base`.
        noise: ``sigma`` as a fraction of each input's range.
        samples: noisy gradients averaged per input (default ``queries - 1``, at most ``queries - 1``).
        times_input: multiply the mean gradient by ``x - baseline``.
        support: ``"all"`` or ``"present"`` (noise only where ``x`` differs from the baseline).
        batch: noisy inputs per backward pass.
    """
    noise = check_positive("noise", noise)
    if support not in ("all", "present"):
        raise ConfigError(f"support must be all or present, got {support!r}")
    problem = WhiteBoxProblem(model, x, target=target, queries=queries, access=access, baseline=baseline)
    n_samples = check_count("samples", samples if samples is not None else queries - 1)
    if n_samples > queries - 1:
        raise ConfigError(f"smoothgrad: {n_samples} samples need {n_samples + 1} queries, the budget is {queries}")
    gen = on_device(make_generator(generator), problem.x.device)
    sigma = (noise * input_range(problem.x)).reshape(-1, *([1] * (problem.x.ndim - 1)))
    mask = (problem.x != problem.baseline).to(problem.x.dtype) if support == "present" else None
    total = torch.zeros_like(problem.x)
    for i in range(problem.x.shape[0]):
        done = 0
        while done < n_samples:
            m = min(batch, n_samples - done)
            u = torch.randn(m, *problem.x.shape[1:], generator=gen, device=problem.x.device, dtype=problem.x.dtype)
            if mask is not None:
                u = u * mask[i]
            grad = problem.gradient(problem.x[i] + sigma[i] * u, problem.targets[i].expand(m))
            total[i] += grad.sum(dim=0)
            done += m
        problem.charge(torch.full((n_samples,), i, dtype=torch.int64))
    maps = total / n_samples
    if times_input:
        maps = maps * (problem.x - problem.baseline)
    return problem.explanation(maps, "smoothgrad")


register("smoothgrad", smoothgrad, kind="white-box", summary="autograd SmoothGrad (Smilkov et al. 2017)",
               options=("noise", "samples", "times_input", "support", "batch"))
