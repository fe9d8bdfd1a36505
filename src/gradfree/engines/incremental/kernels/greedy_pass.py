"""Numba kernel: a greedy coordinate pass of the incremental MLP engine in one call.

A search that tries a few values for each of thousands of weights in turn, keeping the best (RSO), spends a
fifth of its time crossing from Python into the kernels when it makes one call per try and one per accept (a
try of a 784-32-10 MLP on 5,000 rows takes about 29 us in compiled code, and the Python and dispatch around
it about 7 us). :func:`greedy_pass` runs the whole loop inside compiled code: for each coordinate, score its candidates
(:func:`~gradfree.engines.incremental.kernels.softmax.try_values`), compare them with the current value, and
accept the best (:func:`~gradfree.engines.incremental.kernels.softmax.apply_rank1` or
:func:`~gradfree.engines.incremental.kernels.rows.apply_weight`), as the per-call path would.

**Deferred shared moves.** A change ``delta`` of an input-layer weight ``W_0[j, i]`` moves unit ``j`` by
``delta * beta_i`` in every row where feature ``i`` has its background value (for standardised images, most
rows), so an accept rewrites the softmax of nearly every row, and costs about twice a try. RSO visits the
weights of one unit in a row (storage order: 784 in a row on the MDP task). While the pass stays on one unit
of the last hidden layer (input-layer weights and biases), an accept updates only the rows with their own
input (by ``delta * (x - beta_i)``) and adds ``delta * beta_i`` to the unit's pending shift ``S``; the
following tries score their candidates with ``S`` added to every row
(:func:`~gradfree.engines.incremental.kernels.softmax.try_rank1`'s ``shift``), from the caches as they are. The
caches catch up — one update of every row by ``S``, as a bias change would make — when the pass leaves the
unit, before an accept that reaches ``max_accepts``, at the end, and whenever ``|S| max|w|`` exceeds
``SMALL / 2`` (so that the tries stay on their float32 fast path). Until then the summed row loss the caches
hold is carried by the changes each accept made to its rows (summed again over every row when they catch
up). The summed loss carried from one coordinate to the next is then the accepted candidate's scored loss,
not a re-summation of the row losses, and the tries' float32 fast path sees moves that include ``S`` (its
error is about 1e-8 of a row's change, :mod:`~gradfree.engines.incremental.kernels.softmax`). So where it
defers, the pass equals the per-call path to rounding (up to 4e-11 of the loss in the tests), not bit for
bit; elsewhere it is the same arithmetic. The choices are the same unless two scores lie within that
rounding of each other.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from gradfree.engines.incremental.kernels.rows import apply_weight, row_sum
from gradfree.engines.incremental.kernels.softmax import SMALL, apply_rank1, rank1_update, try_rank1, try_values
from gradfree.engines.incremental.kernels.state import Inputs, Net, Outputs, Workspace


@njit(cache=True, error_model="numpy")
def _deltas(values: np.ndarray, round32: bool, current: float, deltas: np.ndarray, finite: np.ndarray) -> None:
    """Each candidate's change from ``current`` (0 for a non-finite one), rounded as
    :func:`~gradfree.engines.incremental.kernels.softmax.try_values` rounds it."""
    for k in range(values.shape[0]):
        v = float(np.float32(values[k])) if round32 else float(values[k])
        finite[k] = math.isfinite(v)
        deltas[k] = v - current if finite[k] else 0.0


@njit(cache=True, error_model="numpy")
def _wmax(net: Net, layer: int, j: int) -> float:
    """``max_c |W_{layer + 1}[c, j]|``: how far a move of unit ``j`` of ``layer`` moves a logit, per unit."""
    nin, off = net.widths[layer + 1], net.w_off[layer + 1]
    wmax = 0.0
    for q in range(net.widths[layer + 2]):
        wmax = max(wmax, abs(net.weights[off + q * nin + j]))
    return wmax


@njit(cache=True, error_model="numpy")
def _catch_up(layer: int, j: int, shift: float, net: Net, outs: Outputs, inp: Inputs, work: Workspace) -> float:
    """Move unit ``j`` of ``layer`` by ``shift`` in every row of the caches; returns the summed row loss."""
    if shift != 0.0:
        rank1_update(layer, j, -1, shift, False, net, outs, inp, work)
    return row_sum(outs.lrow)


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
    to :func:`apply_rank1` (the last hidden layer under cross-entropy; -1 for none). Shared moves of a unit are
    deferred while the pass stays on it (module docstring); the caches are caught up before it returns.

    Returns:
        ``(next coordinate, changes made, summed row loss now)``.
    """
    weights, beta = net.weights, inp.beta
    n, kk = cands.shape[0], cands.shape[1]
    accepts = 0
    deltas, raw, finite = np.empty(kk), np.empty(kk), np.empty(kk, dtype=np.bool_)
    pending, shift = -1, 0.0  # the unit whose shared move the caches lack (-1: none), and that move
    stored = total  # the summed row loss the caches hold; ``total`` is the weights' own
    for t in range(start, n):
        layer, j, i, pos = layers[t], js[t], iis[t], poss[t]
        deferrable = layer == rank1_layer and (i < 0 or layer == 0)  # a unit's shared move: not a hidden input
        if pending >= 0 and not (deferrable and j == pending):
            total = stored = _catch_up(rank1_layer, pending, shift, net, outs, inp, work)
            pending, shift = -1, 0.0
        if deferrable:
            _deltas(cands[t], round32, weights[pos], deltas, finite)
            try_rank1(layer, j, i, deltas, raw, net, outs, inp, work, shift)
            for k in range(kk):
                if not finite[k]:
                    losses[t, k] = np.nan
                elif pending >= 0 and deltas[k] == 0.0:
                    losses[t, k] = total / norm  # the current value: the loss as it is
                else:
                    losses[t, k] = (stored + raw[k]) / norm
        else:
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
        accepts += 1
        if deferrable:
            stays = t + 1 < n and layers[t + 1] == layer and js[t + 1] == j and accepts < max_accepts
            if stays or pending >= 0:
                delta = deltas[choice]
                if pending < 0 or delta != 0.0:
                    total = stored + raw[choice]
                changed = rank1_update(layer, j, i, delta, True, net, outs, inp, work)
                weights[pos] = cands[t, choice]
                shift += delta * (1.0 if i < 0 else beta[i])
                pending = j
                # the rows it changed carry the summed loss the caches hold, without a sum over every row
                stored = stored + changed if math.isfinite(changed) else row_sum(outs.lrow)
                if not stays or abs(shift) * _wmax(net, layer, j) > 0.5 * SMALL:
                    total = stored = _catch_up(layer, j, shift, net, outs, inp, work)
                    pending, shift = -1, 0.0
            else:
                apply_rank1(layer, j, i, cands[t, choice], net, outs, inp, work)
                total = stored = row_sum(outs.lrow)
        elif layer == rank1_layer:
            apply_rank1(layer, j, i, cands[t, choice], net, outs, inp, work)
            total = stored = row_sum(outs.lrow)
        else:
            apply_weight(layer, j, i, cands[t, choice], net, outs, inp, work.scratch[0])
            total = stored = row_sum(outs.lrow)
        if accepts >= max_accepts:
            return t + 1, accepts, total  # nothing is pending: the last accept did not stay
    if pending >= 0:
        total = _catch_up(rank1_layer, pending, shift, net, outs, inp, work)
    return n, accepts, total
