"""Numba kernel: a greedy coordinate pass of the incremental MLP engine in one call.

A search that tries a few values for each of thousands of weights in turn, keeping the best (RSO), spends as
much time crossing from Python into the kernels as in them when it makes one call per try and one per accept
(a try of a 784-32-10 MLP on 5,000 rows takes about 100 us; the Python and dispatch around it 15-40 us).
:func:`greedy_pass` runs the whole loop inside compiled code: for each coordinate, score its candidates
(:func:`~gradfree.engines.incremental.kernels.softmax.try_values`), compare them with the current value, and
accept the best (:func:`~gradfree.engines.incremental.kernels.softmax.apply_rank1` or
:func:`~gradfree.engines.incremental.kernels.rows.apply_weight`), exactly as the per-call path would.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from gradfree.engines.incremental.kernels.rows import apply_weight, row_sum
from gradfree.engines.incremental.kernels.softmax import apply_rank1, try_values
from gradfree.engines.incremental.kernels.state import Inputs, Net, Outputs, Workspace


@njit(cache=True, error_model="numpy")
def greedy_pass(start: int, layers: np.ndarray, js: np.ndarray, iis: np.ndarray, poss: np.ndarray,
                cands: np.ndarray, keep_current: bool, half_l2: float, round32: bool, total: float,
                norm: float, losses: np.ndarray, choices: np.ndarray, max_accepts: int, rank1_layer: int,
                net: Net, outs: Outputs, inp: Inputs, work: Workspace) -> tuple[int, int, float]:
    """Coordinates ``start, start + 1, ...`` in turn: score ``cands[t]`` (``K`` values, already rounded to the
    module's dtype) into ``losses[t]`` (mean row losses), and set the coordinate to the candidate with the
    lowest ``loss + half_l2 * value**2`` when it beats the current value's score (``keep_current``; else the
    best finite candidate is always taken). Ties keep the earlier (the current value first); NaN never wins.

    ``choices[t]`` gets the column taken, or -1. The pass stops after ``max_accepts`` changes (the caller
    refreshes its caches there) or at the end. Coordinate ``t`` is ``W_layers[t][js[t], iis[t]]``
    (``iis[t] < 0``: bias ``js[t]``) at ``net.weights[poss[t]]``; ``rank1_layer`` is the layer whose changes go
    to :func:`apply_rank1` (the last hidden layer under cross-entropy; -1 for none).

    Returns:
        ``(next coordinate, changes made, summed row loss now)``.
    """
    weights, lrow = net.weights, outs.lrow
    n, kk = cands.shape[0], cands.shape[1]
    accepts = 0
    for t in range(start, n):
        layer, j, i, pos = layers[t], js[t], iis[t], poss[t]
        try_values(layer, j, i, pos, cands[t], round32, total, norm, losses[t], net, outs, inp, work)
        best = math.inf
        if keep_current:
            cur = weights[pos]
            best = total / norm + half_l2 * cur * cur
        choice = -1
        for k in range(kk):
            v = cands[t, k]
            score = losses[t, k] + half_l2 * v * v
            if score < best:
                best, choice = score, k
        choices[t] = choice
        if choice < 0:
            continue
        if layer == rank1_layer:
            apply_rank1(layer, j, i, cands[t, choice], net, outs, inp, work)
        else:
            apply_weight(layer, j, i, cands[t, choice], net, outs, inp, work.scratch[0])
        total = row_sum(lrow)
        accepts += 1
        if accepts >= max_accepts:
            return t + 1, accepts, total
    return n, accepts, total
