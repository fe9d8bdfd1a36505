"""Random-direction finite differences: the Gaussian, sphere and Rademacher (SPSA) estimators.

Each estimator draws ``q`` random directions ``u_i`` and differences the objective along them::

    forward:  g = (s / q) * sum_i (f(x + mu u_i) - f(x)) / mu * u_i                 (q + 1 evaluations)
    central:  g = (s / q) * sum_i (f(x + mu u_i) - f(x - mu u_i)) / (2 mu) * u_i    (2 q evaluations)

with ``s = 1`` for Gaussian and Rademacher directions and ``s = D`` for directions uniform on the unit sphere.
The three names differ only in the distribution of ``u``; everything else is :func:`directional_estimate`.
All evaluations of one estimate go to the objective in one batched call (or in calls of at most ``chunk_size``
rows), so a population evaluator can run them in parallel.

What each estimate is unbiased for (Liu et al. 2020, Sec. III):

* ``gaussian``: the gradient of the Gaussian smoothing ``f_mu(x) = E f(x + mu u)``, ``u ~ N(0, I)``
  (Nesterov & Spokoiny 2017); for a linear ``f`` with forward differences
  ``E||g - grad||^2 = (D + 1)||grad||^2 / q``.
* ``sphere``: the gradient of the ball smoothing ``E f(x + mu v)``, ``v`` uniform in the unit ball
  (Flaxman et al. 2005; Duchi et al. 2015), which is why the estimate is scaled by ``D``;
  variance ``(D - 1)||grad||^2 / q`` for a linear ``f``.
* ``rademacher``: ``u`` in ``{-1, +1}^D``; with central differences this is SPSA (Spall 1992) — there is no
  separate ``"spsa"`` name, ask for ``rademacher`` with ``difference="central"``; variance
  ``(D - 1)||grad||^2 / q`` for a linear ``f``.

References:
    Y. Nesterov, V. Spokoiny. "Random gradient-free minimization of convex functions." Foundations of
    Computational Mathematics 17, 2017.
    A. Flaxman, A. Kalai, H. B. McMahan. "Online convex optimization in the bandit setting: gradient descent
    without a gradient." SODA 2005.
    J. Duchi, M. Jordan, M. Wainwright, A. Wibisono. "Optimal rates for zero-order convex optimization: the
    power of two function evaluations." IEEE Trans. Information Theory 61(5), 2015.
    J. C. Spall. "Multivariate stochastic approximation using a simultaneous perturbation gradient
    approximation." IEEE Trans. Automatic Control 37(3), 1992.
    S. Liu, P.-Y. Chen, B. Kailkhura, G. Zhang, A. Hero, P. Varshney. "A Primer on Zeroth-Order Optimization
    in Signal Processing and Machine Learning." IEEE Signal Processing Magazine 37(5), 2020.
"""

from __future__ import annotations

import functools
from typing import Literal, cast

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.estimators.base import ESTIMATORS, Estimate, Estimator
from gradfree.objective.vector import VectorObjective

Distribution = Literal["gaussian", "sphere", "rademacher"]
Difference = Literal["forward", "central"]

DISTRIBUTIONS: tuple[str, ...] = ("gaussian", "sphere", "rademacher")
DIFFERENCES: tuple[str, ...] = ("forward", "central")


def check_point(x: Tensor) -> None:
    """Raise :class:`ConfigError` unless ``x`` is a 1-D floating tensor (the flat parameter vector)."""
    if not isinstance(x, Tensor):
        raise ConfigError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 1 or not x.is_floating_point():
        raise ConfigError(
            f"x must be a 1-D floating tensor (a flat parameter vector), got shape {tuple(x.shape)} "
            f"and dtype {x.dtype}; flatten it first (e.g. gradfree.params)"
        )


def check_smoothing_and_difference(smoothing: float, difference: str) -> None:
    """Raise :class:`ConfigError` unless ``smoothing > 0`` and ``difference`` is forward or central."""
    if (
        isinstance(smoothing, bool)
        or not isinstance(smoothing, int | float)
        or not 0 < smoothing < float("inf")
    ):
        raise ConfigError(f"smoothing (mu) must be a finite number > 0, got {smoothing!r}")
    if difference not in DIFFERENCES:
        raise ConfigError(f"difference must be one of {', '.join(DIFFERENCES)}, got {difference!r}")


def evaluate_rows(objective: VectorObjective, points: Tensor) -> Tensor:
    """Losses of ``points`` ``(P, D)`` as ``(P,)`` in the points' dtype; a wrong shape is a ConfigError."""
    losses = objective(points)
    if not isinstance(losses, Tensor) or losses.shape != (points.shape[0],):
        shape = tuple(losses.shape) if isinstance(losses, Tensor) else type(losses).__name__
        raise ConfigError(
            f"the objective must return one loss per row: expected shape ({points.shape[0]},), got {shape}"
        )
    return losses.to(dtype=points.dtype, device=points.device)


class Differences:
    """Turns batches of perturbed losses into difference quotients and, at the end, an :class:`Estimate`.

    Shared by the directional and the coordinate estimators: it owns the NaN policy (a direction or
    coordinate with a non-finite perturbed loss is dropped and its non-finite evaluations counted), the
    evaluation count, and what ``loss`` reports (``f(x)`` for forward differences, the mean of the finite
    perturbed losses for central ones).

    Args:
        x: the current point (sets dtype and device).
        smoothing: the perturbation size ``mu``.
        forward: forward differences (rows ``x + mu u``, plus ``f(x)`` in the first batch) or central
            (rows ``x + mu u, x - mu u`` interleaved).
    """

    def __init__(self, x: Tensor, *, smoothing: float, forward: bool) -> None:
        self.smoothing, self.forward = smoothing, forward
        self.center = x.new_tensor(float("nan"))
        self.evaluations = self.rejected = self.kept = 0
        self._finite_sum = x.new_zeros(())
        self._finite_count = 0

    def add(self, losses: Tensor, *, with_center: bool) -> tuple[Tensor, Tensor]:
        """Account for one batch of losses; returns the quotients and which of them are usable."""
        self.evaluations += losses.shape[0]
        if with_center:
            self.center, losses = losses[0], losses[1:]
        if self.forward:
            ok = torch.isfinite(losses)
            coef = (losses - self.center) / self.smoothing
            self.rejected += int((~ok).sum())
        else:
            pair = losses.reshape(-1, 2)
            finite = torch.isfinite(pair)
            ok = finite.all(dim=1)
            coef = (pair[:, 0] - pair[:, 1]) / (2 * self.smoothing)
            self.rejected += int((~finite).sum())
            self._finite_sum += torch.where(finite, pair, 0).sum()
            self._finite_count += int(finite.sum())
        self.kept += int(ok.sum())
        return torch.where(ok, coef, 0), ok

    def estimate(self, grad: Tensor, coordinates: Tensor | None = None) -> Estimate:
        """The finished estimate with ``grad`` (already scaled); zeros when nothing usable was seen.

        ``coordinates``: the kept coordinates of a coordinate-wise estimate (see :class:`Estimate`)."""
        if self.forward:
            loss = self.center
            failed = self.kept == 0 or not bool(torch.isfinite(self.center))
        else:
            loss = self._finite_sum / self._finite_count if self._finite_count else self.center
            failed = self.kept == 0
        if failed:  # no usable direction: zero step, but keep f(x) when it is known (the centre may be fine)
            empty = None if coordinates is None else coordinates[:0]
            return Estimate(torch.zeros_like(grad), loss, self.evaluations, self.rejected, used=0,
                            coordinates=empty)
        return Estimate(grad, loss, self.evaluations, self.rejected, used=self.kept, coordinates=coordinates)


def _directions(distribution: str, count: int, x: Tensor, generator: torch.Generator) -> Tensor:
    """``count`` directions ``(count, D)`` in ``x``'s dtype and device."""
    u = torch.empty(count, x.shape[0], dtype=x.dtype, device=x.device)
    # Filled one row at a time, so the random stream does not depend on how directions are grouped into
    # chunks (torch's CPU normal sampler fills blocks of 16 values, so randn(a, D) then randn(b, D) need not
    # equal randn(a + b, D)).
    for row in u.unbind(0):
        if distribution == "rademacher":
            row.random_(0, 2, generator=generator)
        else:
            row.normal_(generator=generator)
    if distribution == "rademacher":
        u.mul_(2).sub_(1)
    elif distribution == "sphere":
        u /= torch.linalg.vector_norm(u, dim=1, keepdim=True)
    return u


def directional_estimate(
    objective: VectorObjective,
    x: Tensor,
    *,
    generator: torch.Generator,
    distribution: Distribution,
    num_directions: int = 1,
    smoothing: float = 1e-3,
    difference: Difference = "forward",
    antithetic: bool = False,
    chunk_size: int | None = None,
) -> Estimate:
    """Random-direction finite-difference gradient estimate (the core of the registered estimators).

    Args:
        objective: losses of a batch of points, ``(P, D) -> (P,)``.
        x: the current point.
        generator: the only source of randomness; directions are drawn from it one at a time, in order.
        distribution: ``"gaussian"`` (``u ~ N(0, I)``), ``"sphere"`` (uniform on the unit sphere, estimate
            scaled by ``D``) or ``"rademacher"`` (``u`` in ``{-1, +1}^D``).
        num_directions: ``q >= 1``, the number of directions averaged.
        smoothing: ``mu > 0``, the finite-difference step.
        difference: ``"forward"`` (``f(x)`` and ``f(x + mu u_i)``: ``q + 1`` evaluations) or ``"central"``
            (``f(x +- mu u_i)``: ``2 q`` evaluations, second-order accurate).
        antithetic: directions come in mirrored pairs ``u, -u`` (``q`` must be even). With forward differences
            the estimate equals the central-difference estimate over the ``q / 2`` distinct directions, for
            ``q + 1`` evaluations instead of ``q`` — the extra one is ``f(x)``, which is then returned as
            ``loss``. Not allowed with central differences, where each mirrored pair would repeat the same two
            evaluations.
        chunk_size: at most this many rows per objective call (and so at most about ``chunk_size x D``
            perturbed points in memory at once); ``None`` puts every row in one call. Chunking does not change
            the estimate: directions are drawn in the same order either way.

    Returns:
        An :class:`Estimate`. A direction whose perturbed loss (either one, for central differences) is
        NaN/inf is left out and ``grad`` averages over the kept directions; ``rejected`` counts the non-finite
        perturbed evaluations. If ``f(x)`` is non-finite (forward) or no direction is kept, ``grad`` is zeros
        and ``used`` is 0 (``loss`` stays ``f(x)`` when that is known) — the caller decides what to do.

    Shapes:
        x: ``(D,)``; grad: ``(D,)``; loss: ``()``.

    Raises:
        ConfigError: for a bad argument or an objective that does not return ``(P,)`` losses.

    References:
        Nesterov & Spokoiny 2017 (Gaussian smoothing); Flaxman et al. 2005 and Duchi et al. 2015 (sphere);
        Spall 1992 (SPSA); Liu et al. 2020, Sec. III (survey and variances).
    """
    check_point(x)
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}")
    if isinstance(num_directions, bool) or not isinstance(num_directions, int) or num_directions < 1:
        raise ConfigError(f"num_directions (q) must be an integer >= 1, got {num_directions!r}")
    check_smoothing_and_difference(smoothing, difference)
    if antithetic and num_directions % 2:
        raise ConfigError(
            f"antithetic directions come in pairs: num_directions must be even, got {num_directions}"
        )
    if antithetic and difference == "central":
        raise ConfigError(
            "antithetic=True with central differences evaluates every point twice; use central differences "
            "with half the directions (or antithetic forward differences)"
        )
    forward = difference == "forward"
    rows_per_draw = (2 if antithetic else 1) * (1 if forward else 2)
    min_chunk = rows_per_draw + (1 if forward else 0)
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < min_chunk
    ):
        raise ConfigError(
            f"chunk_size must be an integer >= {min_chunk} for {difference} differences"
            f"{' with antithetic pairs' if antithetic else ''}, got {chunk_size!r}"
        )

    with torch.no_grad():
        return _estimate(
            objective,
            x.detach(),
            generator=generator,
            distribution=distribution,
            num_draws=num_directions // 2 if antithetic else num_directions,
            smoothing=float(smoothing),
            forward=forward,
            antithetic=antithetic,
            rows_per_draw=rows_per_draw,
            chunk_size=chunk_size,
        )


def _estimate(
    objective: VectorObjective,
    x: Tensor,
    *,
    generator: torch.Generator,
    distribution: str,
    num_draws: int,
    smoothing: float,
    forward: bool,
    antithetic: bool,
    rows_per_draw: int,
    chunk_size: int | None,
) -> Estimate:
    d = x.shape[0]
    grad = torch.zeros_like(x)
    differences = Differences(x, smoothing=smoothing, forward=forward)
    remaining = num_draws
    first = True
    while remaining > 0:
        rows = chunk_size if chunk_size is not None else (num_draws * rows_per_draw + 1)
        with_center = forward and first
        draws = min(remaining, (rows - int(with_center)) // rows_per_draw)
        remaining -= draws
        u = _directions(distribution, draws, x, generator)
        if antithetic:  # rows u_1, -u_1, u_2, -u_2, ...
            u = torch.stack([u, -u], dim=1).reshape(-1, d)
        if forward:
            points = x + smoothing * u
            if with_center:
                points = torch.cat([x.unsqueeze(0), points])
        else:  # rows x + mu u_1, x - mu u_1, x + mu u_2, ...
            step = smoothing * u
            points = torch.stack([x + step, x - step], dim=1).reshape(-1, d)
        losses = evaluate_rows(objective, points)
        del points
        coef, _ = differences.add(losses, with_center=with_center)
        grad += coef @ u
        first = False

    scale = d if distribution == "sphere" else 1
    return differences.estimate(grad * (scale / max(differences.kept, 1)))


DIRECTIONAL_OPTIONS = ("num_directions", "smoothing", "difference", "antithetic", "chunk_size")
"""The options every directional estimator takes (see :func:`directional_estimate`)."""

# The three variants differ only in the distribution of u: partials of directional_estimate. What each one
# is unbiased for, and its variance, is in the module docstring.
ESTIMATORS.add(
    "gaussian",
    cast(Estimator, functools.partial(directional_estimate, distribution="gaussian")),
    summary="random Gaussian directions (Nesterov & Spokoiny 2017)",
    kind="directional",
    options=DIRECTIONAL_OPTIONS,
)
ESTIMATORS.add(
    "sphere",
    cast(Estimator, functools.partial(directional_estimate, distribution="sphere")),
    summary="random unit-sphere directions, scaled by D (Flaxman et al. 2005)",
    kind="directional",
    options=DIRECTIONAL_OPTIONS,
)
ESTIMATORS.add(
    "rademacher",
    cast(Estimator, functools.partial(directional_estimate, distribution="rademacher")),
    summary="random +-1 directions; SPSA with difference='central' (Spall 1992)",
    kind="directional",
    options=DIRECTIONAL_OPTIONS,
)
