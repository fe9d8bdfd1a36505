"""Helpers for strategies that wrap an external optimizer library (the nevergrad and pycma adapters).

The wrapped object is checkpointed as pickled bytes inside a ``uint8`` tensor, so a strategy's
``state_dict()`` stays loadable with ``torch.load(weights_only=True)``; the libraries get finite losses only,
and every call into them runs inside :func:`numpy_global_rng_kept` (pycma's two-point step-size adaptation,
also used by nevergrad's CMA variants, draws from numpy's global RNG in a consistency check).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor


def finite_losses(losses: Tensor) -> list[float]:
    """Losses as floats with ``+inf`` (the base class's stand-in for NaN/inf) replaced by a finite penalty.

    The penalty, ``worst finite + 1 + |worst finite|`` (1 when none is finite), keeps non-finite members tied
    and last, as in every strategy, without feeding inf into a library's arithmetic.
    """
    values = [float(v) for v in losses.tolist()]
    finite = [v for v in values if math.isfinite(v)]
    worst = max(finite) if finite else 0.0
    penalty = worst + 1.0 + abs(worst)
    return [v if math.isfinite(v) else penalty for v in values]


def to_blob(obj: Any) -> Tensor:
    """``pickle.dumps(obj)`` as a ``uint8`` tensor (loadable with ``torch.load(weights_only=True)``)."""
    return torch.frombuffer(bytearray(pickle.dumps(obj)), dtype=torch.uint8).clone()


def from_blob(blob: Tensor) -> Any:
    """Inverse of :func:`to_blob`. Unpickling runs the wrapped library's code: trusted checkpoints only."""
    return pickle.loads(blob.cpu().numpy().tobytes())


@contextmanager
def numpy_global_rng_kept() -> Iterator[None]:
    """Restore numpy's global RNG state on exit, so a wrapped library cannot consume or reseed it."""
    import numpy as np

    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)
