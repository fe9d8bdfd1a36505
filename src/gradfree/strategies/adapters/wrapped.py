"""Helpers for strategies that wrap an external optimizer library (the nevergrad and pycma adapters).

The wrapped object is checkpointed as pickled bytes inside a ``uint8`` tensor, so a strategy's
``state_dict()`` stays loadable with ``torch.load(weights_only=True)``. Those bytes are the library's own
objects and only exist as a pickle; unpickling runs code, so :func:`from_blob` refuses unless the caller
said it trusts the checkpoint (:func:`pickled_state_allowed`, ``--trust-checkpoint``). The libraries get
finite losses only,
and every call into them runs inside :func:`numpy_global_rng_kept` (pycma's two-point step-size adaptation,
also used by nevergrad's CMA variants, draws from numpy's global RNG in a consistency check).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import Tensor

from gradfree.errors import UnsafeFileError


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


_TRUSTED: ContextVar[bool] = ContextVar("gradfree_pickled_state_allowed", default=False)


@contextmanager
def pickled_state_allowed(allowed: bool = True) -> Iterator[None]:
    """Within the block, :func:`from_blob` may unpickle (when ``allowed``): for checkpoints the user trusts."""
    token = _TRUSTED.set(allowed)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def from_blob(blob: Tensor, *, what: str = "a wrapped optimizer") -> Any:
    """Inverse of :func:`to_blob`, inside :func:`pickled_state_allowed` only.

    Raises:
        UnsafeFileError: outside it: unpickling runs the wrapped library's code, so it needs the user's trust.
    """
    if not _TRUSTED.get():
        raise UnsafeFileError(f"this state holds {what} as a pickle; unpickling runs code, so it is loaded only for "
                              "a checkpoint you trust: pass --trust-checkpoint (TrainConfig(trust_checkpoint=True), or "
                              "load_state_dict inside gradfree.strategies.adapters.wrapped.pickled_state_allowed())")
    return pickle.loads(blob.cpu().numpy().tobytes())  # the user said they trust this checkpoint


@contextmanager
def numpy_global_rng_kept() -> Iterator[None]:
    """Restore numpy's global RNG state on exit, so a wrapped library cannot consume or reseed it."""
    import numpy as np

    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)
