"""Models built from spec strings, registered in :data:`MODELS`."""

from __future__ import annotations

from gradfree.models.mlp import mlp
from gradfree.models.registry import MODELS, build_model

__all__ = ["MODELS", "build_model", "mlp"]
