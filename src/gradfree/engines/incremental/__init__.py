"""Incremental single-weight engines: recompute only what a change of one weight touches.

* :mod:`~gradfree.engines.incremental.selection` — which engine answers for a module
  (:func:`coordinate_evaluator`, with the reference fallback), and the evaluator kept between steps;
* :mod:`~gradfree.engines.incremental.mlp` — the numba engine for plain MLPs with a row loss on the CPU;
* :mod:`~gradfree.engines.incremental.caches` — that engine's float64 state: built, refreshed, and the
  batch's input by feature;
* :mod:`~gradfree.engines.incremental.sequential` — the torch engine for ``Sequential`` CNNs and MLPs, any
  loss, any device;
* :mod:`~gradfree.engines.incremental.kernels` — the numba kernels, over the named tuples of
  :mod:`~gradfree.engines.incremental.kernels.state`.

Importing this package imports no numba: the kernels load when the MLP engine is first built.
"""

from __future__ import annotations

from gradfree.engines.incremental.selection import clear_cache, coordinate_evaluator, incremental_evaluator

__all__ = ["clear_cache", "coordinate_evaluator", "incremental_evaluator"]
