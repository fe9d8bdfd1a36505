"""Numba kernels: the activations of the incremental MLP engine, computed as torch computes them.

Each activation is a code (:mod:`.state`) and two parameters, so that one compiled kernel serves every
network. Compiled once per machine (``cache=True``), IEEE semantics (no fastmath).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from gradfree.engines.incremental.kernels.state import (
    ELU,
    GELU,
    GELU_TANH,
    HARDTANH,
    IDENTITY,
    LEAKY_RELU,
    RELU,
    SIGMOID,
    SILU,
    SOFTPLUS,
    TANH,
)


@njit(cache=True, error_model="numpy")
def act(code: int, p0: float, p1: float, z: float) -> float:
    """The activation ``code`` (with parameters ``p0, p1``) at ``z``, as torch computes it."""
    if code == IDENTITY:
        return z
    if code == RELU:
        return z if z > 0.0 else 0.0
    if code == LEAKY_RELU:
        return z if z > 0.0 else p0 * z
    if code == TANH:
        return math.tanh(z)
    if code == SIGMOID:
        return 1.0 / (1.0 + math.exp(-z))
    if code == GELU:
        return 0.5 * z * (1.0 + math.erf(z * 0.7071067811865476))
    if code == GELU_TANH:
        return 0.5 * z * (1.0 + math.tanh(0.7978845608028654 * (z + 0.044715 * z * z * z)))
    if code == SILU:
        return z / (1.0 + math.exp(-z))
    if code == ELU:
        return z if z > 0.0 else p0 * math.expm1(z)
    if code == SOFTPLUS:
        return z if z * p0 > p1 else math.log1p(math.exp(p0 * z)) / p0
    return min(max(z, p0), p1)  # HARDTANH


@njit(cache=True, error_model="numpy")
def unit_slope(code: int, p0: float, p1: float, zo: float, zn: float) -> float:
    """1 (or 0) when ``zo`` and ``zn`` lie on one piece of the activation where it is ``z`` (or constant),
    else -1: on such a piece the activation changes by exactly the pre-activation change (or not at all)."""
    if code == IDENTITY:
        return 1.0
    if code == RELU:
        if zo > 0.0 and zn > 0.0:
            return 1.0
        if zo <= 0.0 and zn <= 0.0:
            return 0.0
        return -1.0
    if code in (LEAKY_RELU, ELU):
        return 1.0 if zo > 0.0 and zn > 0.0 else -1.0
    if code == HARDTANH:
        if p0 < zo < p1 and p0 < zn < p1:
            return 1.0
        if (zo <= p0 and zn <= p0) or (zo >= p1 and zn >= p1):
            return 0.0
    return -1.0


@njit(cache=True, error_model="numpy")
def apply_activation(code: int, p0: float, p1: float, z: np.ndarray, a: np.ndarray) -> None:
    """``a = act(z)`` elementwise (flat arrays), with the engine's own formula."""
    for k in range(z.shape[0]):
        a[k] = act(code, p0, p1, z[k])
