"""The shared call shape of zeroth-order gradient estimators.

An estimator is a pure function::

    estimate = estimator(objective, x, *, generator, **hyper)

where ``objective`` is a :class:`~gradfree.objective.vector.VectorObjective`: it maps a batch of points ``(P, D)``
(flat parameter vectors, or flattened inputs of a black-box model) to their losses ``(P,)`` (one evaluation per
row), ``x`` is the current point ``(D,)`` and ``generator`` is the only source of randomness. It returns an
:class:`Estimate` with the gradient guess and the exact number of objective evaluations it spent. Estimators
never touch a model: :mod:`gradfree.objective` turns a module and a closure, or a black box and an input, into
an objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from gradfree.objective.vector import VectorObjective
from gradfree.registry import Registry


@dataclass(frozen=True)
class Estimate:
    """A zeroth-order gradient guess.

    Attributes:
        grad: the estimate, shape ``(D,)``, same dtype/device as ``x``.
        loss: the objective at ``x`` when the scheme evaluated it (forward differences); otherwise the mean of
            the finite perturbed losses, a second-order accurate stand-in (central differences). NaN when no
            evaluation was finite.
        evaluations: objective evaluations spent (rows passed to the objective), rejected ones included.
        rejected: perturbed evaluations whose loss was NaN/inf; their directions were left out of ``grad``.
        used: directions (or coordinates) that entered ``grad``; 0 means the estimate carries no
            information (``grad`` is zero) and an optimizer should skip its update.
        coordinates: for a coordinate-wise estimate, the int64 indices whose partials entered ``grad``
            (``grad`` is zero elsewhere by construction, not by measurement): an update with per-coordinate
            state, such as ZOO's coordinate Adam, must move only those. ``None`` for directional estimates,
            which touch every coordinate.
    """

    grad: Tensor
    loss: Tensor
    evaluations: int
    rejected: int = 0
    used: int = 0
    coordinates: Tensor | None = None


class Estimator(Protocol):
    """Call shape every registered estimator follows."""

    def __call__(
        self, objective: VectorObjective, x: Tensor, *, generator: torch.Generator, **hyper: object
    ) -> Estimate: ...


ESTIMATORS: Registry[Estimator] = Registry("estimator")
