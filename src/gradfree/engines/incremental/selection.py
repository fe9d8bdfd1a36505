"""Which single-weight engine answers for a module, and the one evaluator kept between steps.

:func:`coordinate_evaluator` is what a search asks for: the fastest
:class:`~gradfree.objective.coordinates.CoordinateEvaluator` for a module on a batch. The numba engine
(:class:`~gradfree.engines.incremental.mlp.MLPCoordinateEvaluator`) takes plain MLPs on the CPU with a
:data:`~gradfree.objective.row_loss.RowLoss`; the torch engine
(:class:`~gradfree.engines.incremental.sequential.SequentialCoordinateEvaluator`) takes ``Sequential`` CNNs
and MLPs with any loss, on any device; anything else gets the reference
:class:`~gradfree.objective.coordinates.PopulationCoordinateEvaluator`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from gradfree.engines.incremental import caches
from gradfree.engines.incremental.mlp import MLPCoordinateEvaluator, mlp_layers
from gradfree.engines.incremental.sequential import SequentialCoordinateEvaluator, sequential_stages
from gradfree.objective.coordinates import CoordinateEvaluator, PopulationCoordinateEvaluator
from gradfree.objective.population import LossFn
from gradfree.objective.row_loss import row_loss_kind
from gradfree.params.flat import FlatParams

__all__ = ["clear_cache", "coordinate_evaluator", "incremental_evaluator", "warm_up"]


def coordinate_evaluator(flat: FlatParams, loss_fn: LossFn, x: Tensor, y: Tensor) -> CoordinateEvaluator:
    """The fastest available :class:`CoordinateEvaluator` for ``flat``'s module on the batch ``(x, y)``: an
    incremental engine (:func:`incremental_evaluator`) where one supports the module, parameters and loss,
    else the reference :class:`~gradfree.objective.coordinates.PopulationCoordinateEvaluator`."""
    fast = incremental_evaluator(flat, loss_fn, x, y)
    return fast if fast is not None else PopulationCoordinateEvaluator(flat, loss_fn, x, y)


def incremental_evaluator(flat: FlatParams, loss_fn: LossFn, x: Tensor, y: Tensor) -> CoordinateEvaluator | None:
    """An incremental :class:`~gradfree.objective.coordinates.CoordinateEvaluator` for ``flat`` on ``(x, y)``,
    or ``None`` when no engine supports the module, parameters and loss (the caller then uses the reference).

    The last evaluator is kept and returned again (its next :meth:`loss` charged again, as a new one's would
    be) while the module's weights, the batch and the loss are unchanged, so a search that asks for an
    evaluator every step on a full batch does not rebuild its caches; :func:`clear_cache` drops it.
    """
    for kept in _EVALUATORS:
        if kept.matches(flat, loss_fn, x, y):
            kept.restart()
            return kept
    evaluator = _build(flat, loss_fn, x, y)
    _EVALUATORS[:] = [] if evaluator is None else [evaluator]
    return evaluator


_EVALUATORS: list[Any] = []
"""The last evaluator built, reused while it :meth:`matches` (a search asks for one per step)."""


def clear_cache() -> None:
    """Forget the kept evaluator and input columns (they hold a model, a batch and their caches)."""
    _EVALUATORS.clear()
    caches.clear_inputs()


def _build(flat: FlatParams, loss_fn: LossFn, x: Tensor, y: Tensor) -> CoordinateEvaluator | None:
    """A new evaluator from the first engine that takes ``flat``'s module, parameters and loss, or ``None``."""
    module = flat.module
    if module is None or flat.dtype not in (torch.float32, torch.float64) or x.shape[0] == 0:
        return None
    spec = mlp_layers(module)
    if spec is not None and x.device.type == "cpu" and flat.device.type == "cpu":
        out_shape = (x.shape[0], spec[0][-1].out_features)
        # Parameters outside the MLP's layers, or numba not installed: fall through to the next engine.
        if row_loss_kind(loss_fn, out_shape, y) is not None:
            with contextlib.suppress(ValueError, ImportError):
                return MLPCoordinateEvaluator(flat, loss_fn, x, y)
    if sequential_stages(module) is not None:
        with contextlib.suppress(ValueError):  # a layer the torch engine cannot follow: use the reference
            return SequentialCoordinateEvaluator(flat, loss_fn, x, y)
    return None


def warm_up() -> bool:
    """Compile the numba engine's kernels (or load them from numba's cache) by using them once on a tiny MLP,
    so that a time-limited run does not spend its first step on it: about 0.5 s from the cache, and 30 s or
    more the first time after an install or an edit of the kernels. Returns whether the engine is there
    (``False`` without numba)."""
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):  # the layers' initialisation leaves the global RNG as it was
        model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    flat = FlatParams(model)
    x, y = torch.randn(8, 4, generator=g), torch.arange(8) % 2
    try:
        ev = MLPCoordinateEvaluator(flat, torch.nn.functional.cross_entropy, x, y)
    except ImportError:
        return False
    saved = flat.get()
    try:
        ev.loss()
        for index in range(flat.num_dims):  # every layer's tries and accepts, weights and biases
            values = saved[index] + torch.tensor([0.1, -0.1], dtype=saved.dtype)
            ev.try_values(index, values)
            ev.try_values(index, values[:1])
            ev.set_value(index, float(values[0]))
        ev.greedy_pass(torch.arange(flat.num_dims), torch.stack([saved + 0.1, saved - 0.1], 1))
    finally:
        flat.set_(saved)
    return True
