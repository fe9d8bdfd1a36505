"""What KernelSHAP and LIME share: coalitions of groups queried in batches, and a weighted linear fit.

Both explain a score by a linear model over binary *interpretable features* ``z`` in ``{0, 1}^M`` (a group of
the input present or replaced by the baseline; :mod:`gradfree.explain.grouping`), fit to the box's scores of
sampled coalitions (Ribeiro et al. 2016, Sec. 3.3; Lundberg & Lee 2017, Sec. 2 and 4.1). They differ in how
coalitions are drawn and weighted, and KernelSHAP's fit is constrained to add up to ``f(x) - f(b)``.

A coefficient is the effect of its whole group; the map spreads it evenly over the group's elements, so a
map summed over a group gives the coefficient back.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfree.explain.base import BlackBoxProblem
from gradfree.explain.grouping import Segments


def coalition_scores(problem: BlackBoxProblem, segments: Segments, coalitions: list[Tensor]) -> list[Tensor]:
    """``(n_i,)`` target scores of the coalitions ``(n_i, M_i)`` of every input (one query per row).

    A coalition's input keeps the groups whose ``z`` is 1 and sets the others to the baseline."""
    flat_labels = segments.labels.reshape(problem.num_inputs, -1)

    def rows(i: int, start: int, stop: int) -> Tensor:
        keep = coalitions[i][start:stop].to(device=flat_labels.device, dtype=problem.x.dtype)[:, flat_labels[i]]
        keep = keep.reshape(-1, *problem.x.shape[1:])
        return problem.x[i] * keep + problem.baseline[i] * (1 - keep)

    return problem.score_rows([int(z.shape[0]) for z in coalitions], rows)


def weighted_linear_fit(z: Tensor, y: Tensor, weights: Tensor, *, ridge: float = 0.0) -> tuple[Tensor, Tensor]:
    """Weighted ridge regression with an unpenalised intercept: ``(coef (M,), intercept ())``.

    Minimises ``sum_s w_s (y_s - a - z_s . coef)^2 + ridge |coef|^2`` (scikit-learn's ``Ridge`` with
    ``sample_weight``; ``ridge=0`` is ``LinearRegression``, solved by least squares, minimum norm when the
    samples do not determine every coefficient).
    """
    z, y, w = z.cpu().to(torch.float64), y.cpu().to(torch.float64), weights.cpu().to(torch.float64)
    w = w / w.sum()
    z_mean, y_mean = w @ z, w @ y
    zc, yc = z - z_mean, y - y_mean
    root = w.sqrt()[:, None]
    a, rhs = root * zc, root.squeeze(1) * yc
    if ridge > 0:
        m = z.shape[1]
        a = torch.cat([a, (ridge / float(weights.sum())) ** 0.5 * torch.eye(m, dtype=a.dtype)])
        rhs = torch.cat([rhs, torch.zeros(m, dtype=rhs.dtype)])
    coef = torch.linalg.lstsq(a, rhs.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    return coef, y_mean - z_mean @ coef


def constrained_linear_fit(z: Tensor, y: Tensor, *, offset: Tensor, total: Tensor) -> Tensor:
    """``coef (M,)`` minimising ``sum_s (y_s - offset - z_s . coef)^2`` subject to ``sum(coef) = total``.

    KernelSHAP's regression (Lundberg & Lee 2017, Theorem 2) once the coalitions are drawn in proportion to
    the Shapley kernel: the empty and full coalitions' infinite weights become the intercept ``f(b)`` and
    the constraint ``sum(phi) = f(x) - f(b)``. Solved through its KKT system by least squares.
    """
    z, y = z.cpu().to(torch.float64), y.cpu().to(torch.float64)
    m = z.shape[1]
    kkt = torch.zeros(m + 1, m + 1, dtype=torch.float64)
    kkt[:m, :m] = 2 * z.T @ z
    kkt[:m, m] = 1
    kkt[m, :m] = 1
    rhs = torch.cat([2 * z.T @ (y - float(offset)), torch.tensor([float(total)], dtype=torch.float64)])
    return torch.linalg.lstsq(kkt, rhs.unsqueeze(1), driver="gelsd").solution.squeeze(1)[:m]


def spread(segments: Segments, i: int, coef: Tensor) -> Tensor:
    """``(D,)`` each element's share of its group's coefficient (the coefficient over the group's size)."""
    labels = segments.labels[i].reshape(-1)
    sizes = segments.sizes(i).to(torch.float64)
    return (coef.to(torch.float64) / sizes)[labels.cpu()].to(labels.device)
