"""White-box gradient saliency: the gradient of the class score by autograd (the reference for FD saliency).

Simonyan et al. 2014 (Sec. 3.1) rank pixels by the magnitude of ``d score / d x``; here the map is the signed
gradient, or gradient times ``x - baseline`` with ``times_input`` (Shrikumar et al. 2017), as for the
zeroth-order methods it is the reference of. One "query" is one forward and backward pass of one input.

References:
    K. Simonyan, A. Vedaldi, A. Zisserman. "Deep Inside Convolutional Networks: Visualising Image
    Classification Models and Saliency Maps." ICLR workshop 2014, Sec. 3.1.
    A. Shrikumar, P. Greenside, A. Kundaje. "Learning Important Features Through Propagating Activation
    Differences." ICML 2017.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfree.explain.base import Explanation, Model, WhiteBoxProblem, register


def gradient(model: Model, x: Tensor, *, target: int | Tensor | None = None, queries: int = 1000,
             access: str = "logits", baseline: float | Tensor = 0.0, generator: torch.Generator | None = None,
             times_input: bool = True) -> Explanation:
    """Autograd gradient saliency (two queries per input: the prediction and one gradient).

    Args:
        model, x, target, queries, access, baseline: see :mod:`gradfree.explain.base` (``queries >= 2``).
        generator: unused (deterministic).
        times_input: multiply the gradient by ``x - baseline``.
    """
    del generator
    problem = WhiteBoxProblem(model, x, target=target, queries=queries, access=access, baseline=baseline)
    grad = problem.gradient(problem.x, problem.targets)
    problem.charge(torch.arange(problem.x.shape[0]))
    maps = grad * (problem.x - problem.baseline) if times_input else grad
    return problem.explanation(maps, "gradient")


register("gradient", gradient, kind="white-box", summary="autograd gradient saliency (Simonyan et al. 2014)",
               options=("times_input",))
