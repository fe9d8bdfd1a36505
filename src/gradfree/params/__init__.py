"""Flat views of module parameters (one vector of ``D`` numbers over many tensors)."""

from __future__ import annotations

from gradfree.params.flat import FlatParams, Slot

__all__ = ["FlatParams", "Slot"]
