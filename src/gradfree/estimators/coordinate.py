"""Coordinate-wise finite differences over a chosen (or sampled) set of coordinates.

For a set ``S`` of ``k`` coordinates the estimate holds, for each ``i`` in ``S``::

    forward:  g_i = (f(x + mu e_i) - f(x)) / mu                  (k + 1 evaluations)
    central:  g_i = (f(x + mu e_i) - f(x - mu e_i)) / (2 mu)     (2 k evaluations, exact for a quadratic)

and zero elsewhere. Coordinate-descent methods such as ZOO (Chen et al. 2017) use these raw partials; with
``unbiased=True`` the estimate is scaled by ``D / k``, which makes it unbiased for the (finite-difference)
gradient when ``S`` is sampled uniformly (Lian et al. 2016).

References:
    P.-Y. Chen, H. Zhang, Y. Sharma, J. Yi, C.-J. Hsieh. "ZOO: Zeroth Order Optimization Based Black-box
    Attacks to Deep Neural Networks without Training Substitute Models." AISec 2017.
    X. Lian, H. Zhang, C.-J. Hsieh, Y. Huang, J. Liu. "A Comprehensive Linear Speedup Analysis for
    Asynchronous Stochastic Parallel Optimization from Zeroth-Order to First-Order." NeurIPS 2016.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.estimators.base import ESTIMATORS, Estimate, Estimator
from gradfree.estimators.directional import (
    Difference,
    Differences,
    check_point,
    check_smoothing_and_difference,
    evaluate_rows,
)
from gradfree.objective.vector import VectorObjective


def _select(
    d: int,
    coordinates: Tensor | None,
    num_coordinates: int | None,
    generator: torch.Generator,
    device: torch.device,
) -> Tensor:
    if coordinates is not None and num_coordinates is not None:
        raise ConfigError("give either coordinates or num_coordinates, not both")
    if coordinates is not None:
        if not isinstance(coordinates, Tensor) or coordinates.dim() != 1 or coordinates.dtype != torch.int64:
            raise ConfigError("coordinates must be a 1-D int64 tensor of indices into x")
        if coordinates.numel() == 0:
            raise ConfigError("coordinates is empty: give at least one index")
        if int(coordinates.min()) < 0 or int(coordinates.max()) >= d:
            raise ConfigError(
                f"coordinates must lie in [0, {d}), got range [{int(coordinates.min())}, "
                f"{int(coordinates.max())}]"
            )
        if torch.unique(coordinates).numel() != coordinates.numel():
            raise ConfigError("coordinates contains repeated indices; each coordinate may appear once")
        return coordinates.to(device)
    if num_coordinates is None:
        return torch.arange(d, device=device)
    if (
        isinstance(num_coordinates, bool)
        or not isinstance(num_coordinates, int)
        or not 1 <= num_coordinates <= d
    ):
        raise ConfigError(
            f"num_coordinates must be an integer in [1, {d}] (D = {d}), got {num_coordinates!r}"
        )
    # Distinct indices, uniformly at random (as ZOO does); randperm runs on the generator's device.
    perm = torch.randperm(d, generator=generator, device=generator.device)
    return perm[:num_coordinates].to(device)


def coordinate(
    objective: VectorObjective,
    x: Tensor,
    *,
    generator: torch.Generator,
    coordinates: Tensor | None = None,
    num_coordinates: int | None = None,
    smoothing: float = 1e-3,
    difference: Difference = "forward",
    unbiased: bool = False,
    chunk_size: int | None = None,
) -> Estimate:
    """Coordinate-wise finite-difference estimate over a set of coordinates, zeros elsewhere.

    Args:
        objective: losses of a batch of points, ``(P, D) -> (P,)``.
        x: the current point.
        generator: the only source of randomness (used only to sample ``num_coordinates`` indices).
        coordinates: the int64 indices to difference along; exclusive with ``num_coordinates``.
        num_coordinates: when ``coordinates`` is None, sample this many distinct indices uniformly with
            ``generator``. If both are None every coordinate is used (``D + 1`` or ``2 D`` evaluations).
        smoothing: ``mu > 0``, the finite-difference step.
        difference: ``"forward"`` (``f(x)`` and ``f(x + mu e_i)``: ``k + 1`` evaluations) or ``"central"``
            (``f(x +- mu e_i)``: ``2 k`` evaluations, exact for quadratics).
        unbiased: scale by ``D / k`` (``k`` the kept coordinates) so that a uniformly sampled set gives an
            unbiased estimate of the full finite-difference gradient (Lian et al. 2016). Off by default
            because coordinate methods such as ZOO (Chen et al. 2017) update with the raw partials.
        chunk_size: at most this many rows per objective call (at least 2); ``None`` puts every row in one
            call. Bounds the memory for the ``k x D`` perturbed points; does not change the estimate.

    Returns:
        An :class:`Estimate` whose ``coordinates`` are the indices that entered ``grad``. A coordinate whose
        perturbed loss (either one, for central differences) is
        NaN/inf is left at zero; ``rejected`` counts the non-finite perturbed evaluations. If ``f(x)`` is
        non-finite (forward) or no coordinate is kept, ``grad`` is zeros and ``used`` is 0 (``loss`` stays
        ``f(x)`` when that is known).

    Shapes:
        x: ``(D,)``; coordinates: ``(k,)``; grad: ``(D,)``; loss: ``()``.

    Raises:
        ConfigError: for a bad argument or an objective that does not return ``(P,)`` losses.

    References:
        Chen et al. 2017 (ZOO, AISec), Sec. III-A; Lian et al. 2016 (NeurIPS).
    """
    check_point(x)
    check_smoothing_and_difference(smoothing, difference)
    forward = difference == "forward"
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 2
    ):
        raise ConfigError(f"chunk_size must be an integer >= 2, got {chunk_size!r}")
    d = x.shape[0]
    index = _select(d, coordinates, num_coordinates, generator, x.device)
    k = index.numel()
    rows_per_coord = 1 if forward else 2

    with torch.no_grad():
        x = x.detach()
        grad = torch.zeros_like(x)
        differences = Differences(x, smoothing=smoothing, forward=forward)
        start = 0
        kept: list[Tensor] = []
        while start < k:
            with_center = forward and start == 0
            rows = chunk_size if chunk_size is not None else k * rows_per_coord + 1
            stop = min(k, start + (rows - int(with_center)) // rows_per_coord)
            idx = index[start:stop]
            n = idx.numel()
            if forward:
                points = x.repeat(n, 1)
                points[torch.arange(n, device=x.device), idx] += smoothing
                if with_center:
                    points = torch.cat([x.unsqueeze(0), points])
            else:  # rows x + mu e_i, x - mu e_i, ...
                points = x.repeat(2 * n, 1)
                step = torch.tensor([smoothing, -smoothing], dtype=x.dtype, device=x.device).repeat(n)
                points[torch.arange(2 * n, device=x.device), idx.repeat_interleave(2)] += step
            losses = evaluate_rows(objective, points)
            del points
            grad[idx], ok = differences.add(losses, with_center=with_center)
            kept.append(idx[ok])
            start = stop

        if unbiased and differences.kept:
            grad *= d / differences.kept
        return differences.estimate(grad, coordinates=torch.cat(kept) if kept else index[:0])


# The concrete keyword options do not fit the protocol's ``**hyper: object`` for mypy, hence the cast.
ESTIMATORS.add(
    "coordinate",
    cast(Estimator, coordinate),
    summary="coordinate-wise finite differences over chosen or sampled coordinates (ZOO, Chen et al. 2017)",
    kind="coordinate",
    options=("coordinates", "num_coordinates", "smoothing", "difference", "unbiased", "chunk_size"),
)
