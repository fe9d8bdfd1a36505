"""Zeroth-order gradient estimators (pure functions over tensors), registered in :data:`ESTIMATORS`."""

from __future__ import annotations

from gradfree.estimators import coordinate, directional  # noqa: F401  (registers the estimators)
from gradfree.estimators.base import ESTIMATORS, Estimate, Estimator

__all__ = ["ESTIMATORS", "Estimate", "Estimator"]
