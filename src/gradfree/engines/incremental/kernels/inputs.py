"""Numba kernels: the network input as the incremental MLP engine reads it, by feature.

:func:`input_csc` builds :class:`~.state.Inputs` once per batch; :func:`input_column` gives the input a
weight column multiplies (a network-input feature, a hidden unit's activations, or 1 for a bias).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from gradfree.engines.incremental.kernels.state import Inputs, Net


@njit(cache=True, error_model="numpy")
def input_csc(xt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fields ``(colptr, rows, vals, beta)`` of the :class:`~.state.Inputs` of features ``xt (F, N)`` (one
    row per feature): ``beta[f]`` is the most common of 0, the feature's minimum and its maximum (ties keep
    the earlier, in that order) and the listed entries are the rows where the feature differs from it, in row
    order. Two passes over the input, in place of whole-array torch reductions along the slow axis."""
    nf, n = xt.shape
    beta = np.zeros(nf)
    counts = np.zeros(nf + 1, dtype=np.int64)
    for f in range(nf):
        if n == 0:
            continue
        row = xt[f]
        mn, mx = row[0], row[0]
        for r in range(1, n):
            mn = min(mn, row[r])
            mx = max(mx, row[r])
        c0 = cmin = cmax = 0
        for r in range(n):
            v = row[r]
            c0 += v == 0.0
            cmin += v == mn
            cmax += v == mx
        b, best = 0.0, c0
        if cmin > best:
            b, best = mn, cmin
        if cmax > best:
            b, best = mx, cmax
        beta[f] = b
        counts[f + 1] = n - best
    colptr = np.cumsum(counts)
    rows = np.empty(colptr[nf], dtype=np.int32)
    vals = np.empty(colptr[nf])
    for f in range(nf):
        k, row, b = colptr[f], xt[f], beta[f]
        for r in range(n):
            if row[r] != b:
                rows[k] = r
                vals[k] = row[r]
                k += 1
    return colptr, rows, vals, beta


@njit(cache=True, error_model="numpy")
def input_column(layer: int, i: int, n: int, net: Net, inp: Inputs, xcol: np.ndarray) -> float:
    """The input of weight ``W_layer[:, i]`` (``i < 0``: a bias) per row, into ``xcol (N,)``; returns the
    largest ``|input|``."""
    at, h_off = net.at, net.h_off
    colptr, rows, vals, beta = inp.colptr, inp.rows, inp.vals, inp.beta
    if i < 0:
        for r in range(n):
            xcol[r] = 1.0
        return 1.0
    if layer == 0:
        b = beta[i]
        for r in range(n):
            xcol[r] = b
        big = abs(b)
        for q in range(colptr[i], colptr[i + 1]):
            xcol[rows[q]] = vals[q]
            big = max(big, abs(vals[q]))
        return big
    big = 0.0
    base = h_off[layer - 1] + i * n
    for r in range(n):
        xcol[r] = at[base + r]
        big = max(big, abs(xcol[r]))
    return big
