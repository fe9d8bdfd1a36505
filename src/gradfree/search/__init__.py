"""One-solution search methods (RSO, per-parameter grid search, (1+1) local search, hybrids)."""

from __future__ import annotations

from gradfree.search.grid import GridSearch
from gradfree.search.hybrid import Hybrid
from gradfree.search.one_plus_one import OnePlusOne
from gradfree.search.rso import RSO

__all__ = ["RSO", "GridSearch", "Hybrid", "OnePlusOne"]
