"""Flat views of module parameters and batched (population) evaluation."""

from __future__ import annotations

from gradfree.params.flat import FlatParams, Slot
from gradfree.params.population import PopulationLoss

__all__ = ["FlatParams", "PopulationLoss", "Slot"]
