"""The vector objective: losses of a batch of points, ``(P, D) -> (P,)``, one evaluation per row.

Every estimator (:mod:`gradfree.estimators`) and every strategy's evaluation speaks this one shape, whatever
the points are: flat parameter vectors of a model (:mod:`gradfree.objective.parameters`,
:mod:`gradfree.objective.closure`) or flattened inputs of a black-box model
(:mod:`gradfree.objective.input_space`).
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor


class VectorObjective(Protocol):
    """Losses ``(P,)`` of the points ``(P, D)``; each row costs one evaluation (or one query)."""

    def __call__(self, points: Tensor, /) -> Tensor: ...
