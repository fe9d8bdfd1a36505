"""RISE: randomized input sampling for explanation (Petsiuk et al. 2018).

RISE (Sec. 3) probes the model with the input under random smooth masks ``M_i`` in ``[0, 1]`` and weights each
mask by the score it leaves: ``S = (1 / (N E[M])) sum_i f(x . M_i + b . (1 - M_i)) M_i``, the expected score
given that a pixel is kept (Eq. 6, with the masked-out part set to the baseline rather than to zero). The map
returned is centred: ``(1 / (N p)) sum_i (f_i - mean f) M_i``. Subtracting the mean score is a control
variate — it removes the part of the estimate that only says how often each pixel happened to be kept — and
makes the map signed (above zero: keeping the pixel raises the score above its average over the masks), while
its expectation differs from RISE's only by ``E f``, the same for every pixel, so the pixels' order is RISE's.
Masks (Sec. 3.2): a binary ``cells x cells`` grid, each cell kept with probability ``p``, upsampled
bilinearly to ``(cells + 1) * ceil(H / cells)`` and cropped at a uniformly random shift of up to one cell —
smooth masks whose edges fall anywhere. One mask is one query; all of an input's masks go to the model in
batched queries.

Reference: V. Petsiuk, A. Das, K. Saenko. "RISE: Randomized Input Sampling for Explanation of Black-box
Models." BMVC 2018, Sec. 3.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.explain.base import BlackBoxProblem, Explanation, Model, check_count, make_generator, register


def rise_masks(count: int, h: int, w: int, *, cells: int, p: float, generator: torch.Generator,
               device: torch.device | str = "cpu") -> Tensor:
    """``(count, H, W)`` RISE masks (Petsiuk et al. 2018, Sec. 3.2) drawn from ``generator`` (on the CPU)."""
    cell_h, cell_w = math.ceil(h / cells), math.ceil(w / cells)
    grid = (torch.rand(count, 1, cells, cells, generator=generator) < p).to(torch.float32)
    up = F.interpolate(grid, size=((cells + 1) * cell_h, (cells + 1) * cell_w), mode="bilinear",
                       align_corners=False)
    dy = torch.randint(0, cell_h, (count,), generator=generator)
    dx = torch.randint(0, cell_w, (count,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])  # (count, H)
    cols = (dx[:, None] + torch.arange(w)[None, :])  # (count, W)
    masks = up[:, 0][torch.arange(count)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return masks.to(device)


def rise(model: Model, x: Tensor, *, target: int | Tensor | None = None, queries: int = 1000,
         access: str = "logits", baseline: float | Tensor = 0.0, generator: torch.Generator | None = None,
         cells: int = 7, p: float = 0.5, masks_per_call: int = 512) -> Explanation:
    """RISE with ``queries - 1`` masks per input (see the module docstring).

    Args:
        model, x, target, queries, access, baseline, generator: see :mod:`gradfree.explain.base`.
        cells: the side of the coarse binary grid (the paper: 7 for 224x224 images).
        p: the probability that a cell is kept.
        masks_per_call: masks drawn and queried at a time (memory; does not change the result).
    """
    if x.ndim != 4:
        raise ConfigError(f"RISE masks images (N, C, H, W), got shape {tuple(x.shape)}")
    cells = check_count("cells", cells)
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p < 1:
        raise ConfigError(f"p must lie in (0, 1), got {p!r}")
    problem = BlackBoxProblem.build(model, x, target=target, queries=queries, access=access, baseline=baseline,
                                    minimum=2, what="rise")
    gen = make_generator(generator)
    _, c, h, w = problem.x.shape
    count = queries - 1
    saliency = torch.zeros(problem.num_inputs, h, w, dtype=problem.x.dtype, device=problem.x.device)
    coverage = torch.zeros_like(saliency)
    for i in range(problem.num_inputs):
        total = 0.0
        done = 0
        while done < count:
            m = min(masks_per_call, count - done)
            masks = rise_masks(m, h, w, cells=cells, p=p, generator=gen, device=problem.x.device).to(problem.x.dtype)
            keep = masks.unsqueeze(1)
            points = problem.x[i] * keep + problem.baseline[i] * (1 - keep)
            scores = problem.score(points, torch.full((m,), i, dtype=torch.int64)).to(masks.dtype)
            saliency[i] += torch.einsum("m,mhw->hw", scores, masks)
            coverage[i] += masks.sum(dim=0)
            total += float(scores.sum())
            done += m
        saliency[i] -= total / count * coverage[i]  # sum_i (f_i - mean f) M_i
    saliency /= count * p
    maps = saliency.unsqueeze(1).expand(-1, c, -1, -1) / c  # a pixel's channels share its saliency
    return problem.explanation(maps, "rise")


register("rise", rise, kind="black-box", summary="randomized input sampling (RISE, Petsiuk et al. 2018)",
               options=("cells", "p", "masks_per_call"))
