"""Occlusion: slide a window over the image, replace it by the baseline, attribute the score's drop.

Zeiler & Fergus (2014, Sec. 4.2) occlude square patches of the input and watch the class score. Each window
``w`` costs one query; the attribution of a pixel is the mean score drop ``f(x) - f(x with w occluded)``
over the windows that cover it — exactly captum's ``Occlusion`` (windows at strides from the top-left corner,
``ceil((H - window) / stride) + 1`` per side, the last ones clipped at the border; every channel occluded
together), which the tests check element for element.

Without a ``window``, the budget picks it: the smallest stride ``s`` whose windows of side
``max(3, 2 s)`` fit in ``queries - 1`` (windows overlap by half, the usual setting; 3x3 windows at stride 1
use 676 queries on a 28x28 image, 900 on a 32x32 one). Budget beyond the finest such grid is left unspent.

Reference: M. D. Zeiler, R. Fergus. "Visualizing and Understanding Convolutional Networks." ECCV 2014,
Sec. 4.2.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.explain.base import BlackBoxProblem, Explanation, Model, check_count, register


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Top-left offsets along one side, as captum places them (the last window may overhang and is clipped)."""
    return [k * stride for k in range(math.ceil((size - window) / stride) + 1)]


def choose_window(h: int, w: int, budget: int) -> tuple[int, int]:
    """``(window, stride)`` for ``budget`` windows: the smallest stride whose ``max(3, 2 stride)`` windows fit."""
    for stride in range(1, max(h, w) + 1):
        window = min(max(3, 2 * stride), h, w)
        if len(window_starts(h, window, stride)) * len(window_starts(w, window, stride)) <= budget:
            return window, stride
    return min(h, w), max(h, w)


def occlusion(model: Model, x: Tensor, *, target: int | Tensor | None = None, queries: int = 1000,
              access: str = "logits", baseline: float | Tensor = 0.0, generator: torch.Generator | None = None,
              window: int | None = None, stride: int | None = None) -> Explanation:
    """Occlusion with square windows over images ``(C, H, W)`` (see the module docstring).

    Args:
        model, x, target, queries, access, baseline: see :mod:`gradfree.explain.base`.
        generator: unused (deterministic).
        window, stride: the window side and the stride (default: chosen from the budget; ``stride`` defaults
            to ``window // 2`` when only the window is given).

    Returns:
        An :class:`~gradfree.explain.base.Explanation`; extras ``windows`` ``(N,)``.
    """
    del generator
    if x.ndim != 4:
        raise ConfigError(f"occlusion slides windows over images (N, C, H, W), got shape {tuple(x.shape)}")
    problem = BlackBoxProblem.build(model, x, target=target, queries=queries, access=access, baseline=baseline,
                                    minimum=2, what="occlusion")
    _, c, h, w = problem.x.shape
    if window is None:
        if stride is not None:
            raise ConfigError("give a window with the stride (or neither)")
        window, stride = choose_window(h, w, queries - 1)
    window = check_count("window", window)
    stride = check_count("stride", stride if stride is not None else max(1, window // 2))
    if window > min(h, w):
        raise ConfigError(f"a {window}-pixel window does not fit a {h}x{w} image")
    masks = _masks(h, w, window, stride, problem.x.device)
    if masks.shape[0] > queries - 1:
        raise ConfigError(f"{masks.shape[0]} windows of side {window} at stride {stride} need "
                          f"{masks.shape[0] + 1} queries; the budget is {queries}")
    cover = masks.sum(dim=0)
    keep = (1 - masks).unsqueeze(1).to(problem.x.dtype)  # (W, 1, H, W)

    def rows(i: int, start: int, stop: int) -> Tensor:
        return problem.x[i] * keep[start:stop] + problem.baseline[i] * (1 - keep[start:stop])

    scores = problem.score_rows([masks.shape[0]] * problem.num_inputs, rows)
    drops = torch.stack([problem.clean[i] - scores[i] for i in range(problem.num_inputs)])  # (N, W)
    heat = torch.einsum("nw,whv->nhv", drops.to(masks.dtype), masks) / cover
    maps = heat.unsqueeze(1).expand(-1, c, -1, -1)
    return problem.explanation(maps, "occlusion", windows=torch.full((problem.num_inputs,), masks.shape[0]))


def _masks(h: int, w: int, window: int, stride: int, device: torch.device) -> Tensor:
    """``(W, H, W)`` float, one occluded window per row."""
    out = []
    for top in window_starts(h, window, stride):
        for left in window_starts(w, window, stride):
            m = torch.zeros(h, w, device=device)
            m[top:top + window, left:left + window] = 1
            out.append(m)
    return torch.stack(out)


register("occlusion", occlusion, kind="black-box",
               summary="sliding-window occlusion, equal to captum's Occlusion (Zeiler & Fergus 2014)",
               options=("window", "stride"))
