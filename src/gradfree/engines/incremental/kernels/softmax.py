"""Numba kernels: the cross-entropy fast paths of the incremental MLP engine.

For a weight of the last hidden layer (``W_l[j, i]`` with ``l = L - 2``) a changed unit ``j`` changes the
logits of row ``r`` by ``da_r * w`` with ``w = W_{L-1}[:, j]``, and its cross-entropy by
``log(s_r) - da_r * w[y_r]`` where ``s_r = sum_c p_rc exp(da_r * w_c)`` and ``p`` is the cached softmax
(its log-sum-exp moves by ``log s_r``). For a weight of the output layer only logit ``j`` moves, by ``dz_r``, and
``s_r = 1 + p_rj (exp(dz_r) - 1)``. What makes these fast (see :mod:`gradfree.engines.incremental.kernels.state`
for the caches):

* **Background rows.** Rows where feature ``i`` of the network input has its common value ``beta_i`` all
  move by the same ``cb = delta * beta_i``; where the unit is on the linear piece of its activation before
  and after (ReLU active), they share ``exp(cb * w)``: their ``s`` is one SIMD pass over the softmax (for one or
  two candidates and ten classes, each row's sums are kept in registers across the classes, and its loss
  changes and whether it lies near the kink are computed in the same pass). Only rows within ``|cb|`` of the
  kink can cross it; they are found by a branch-free screen of the pre-activations.
* **Other changed rows** (the input's non-background entries, rows crossing a ReLU kink) are gathered and
  their exponentials computed by Taylor polynomials in loops the compiler vectorises (``math.exp`` is a
  scalar library call), of the lowest degree exact to double precision for the arguments at hand. For RSO's
  two candidates each such row's softmax is gathered once for both.
* **Small steps read a float32 copy of the softmax.** With ``|da * w_c| <= 0.1``, ``s = 1 + sum_c p_c
  (exp(da w_c) - 1)`` lies in ``[0.9, 1.11]`` and float32 ``p`` changes it by at most ``6e-8 * 0.11``, so a
  row's loss is exact to about 1e-8 of its change, while the pass reads half the memory. Larger steps use
  the float64 softmax; steps with an exponent beyond ``BIG`` recompute the row from its logits.
* **Logs.** For a ReLU unit with one or two candidates (RSO's case) the background rows' ``log s_r`` are
  polynomials (``2 atanh``, to ``u^7`` when ``|cb| max|w| <= 0.01`` and to ``u^15`` otherwise), masked and
  summed in four fixed lanes, so that the loop vectorises; elsewhere the logs of many rows are taken as one
  log of the product of their ``s``.
* **Accepts** keep the loops over all rows free of anything that stops the compiler vectorising them: the
  logits are updated in a loop of their own (beside the float64 softmax in the same loop, it was not
  vectorised), and divisions carry no zero check (:mod:`gradfree.engines.incremental.kernels`).

:func:`try_values` is the entry point of every try (it dispatches to :func:`try_output`, :func:`try_rank1` or
the general :func:`~gradfree.engines.incremental.kernels.rows.try_rows`); :func:`apply_rank1` accepts a
last-hidden-layer value.

Shapes: ``deltas, out (K,)``; ``net``, ``outs``, ``inp``, ``work``: the :class:`~.state.Net`,
:class:`~.state.Outputs`, :class:`~.state.Inputs` and :class:`~.state.Workspace` (for at least ``K``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from gradfree.engines.incremental.kernels.activations import act, unit_slope
from gradfree.engines.incremental.kernels.inputs import input_column
from gradfree.engines.incremental.kernels.rows import log_product, row_loss, row_stats, try_rows
from gradfree.engines.incremental.kernels.state import BIG, CROSS_ENTROPY, RELU, Inputs, Net, Outputs, Workspace

SMALL = 0.1
"""Largest ``|exponent|`` for which the float32 softmax copy and the expm1 polynomials are used."""


@njit(cache=True, error_model="numpy", inline="always")
def _expm1_6(t: float) -> float:
    """``exp(t) - 1`` for ``|t| <= 0.02``, absolute error under 3e-16 (Taylor to degree 7, Horner)."""
    s = t * (1.0 / 5040.0) + (1.0 / 720.0)
    s = s * t + (1.0 / 120.0)
    s = s * t + (1.0 / 24.0)
    s = s * t + (1.0 / 6.0)
    s = s * t + 0.5
    s = s * t + 1.0
    return s * t


@njit(cache=True, error_model="numpy", inline="always")
def _expm1_9(t: float) -> float:
    """``exp(t) - 1`` for ``|t| <= 0.1``, absolute error under 3e-16 (Taylor to degree 10)."""
    s = t * (1.0 / 3628800.0) + (1.0 / 362880.0)
    s = s * t + (1.0 / 40320.0)
    s = s * t + (1.0 / 5040.0)
    s = s * t + (1.0 / 720.0)
    s = s * t + (1.0 / 120.0)
    s = s * t + (1.0 / 24.0)
    s = s * t + (1.0 / 6.0)
    s = s * t + 0.5
    s = s * t + 1.0
    return s * t


@njit(cache=True, error_model="numpy")
def _add_weighted_expm1(s: np.ndarray, g: np.ndarray, x: np.ndarray, scale: float, tmax: float,
                        count: int) -> None:
    """``s[:count] += g[:count] * expm1(scale * x[:count])`` given ``|scale * x| <= tmax <= SMALL``."""
    if tmax <= 0.02:
        for idx in range(count):
            s[idx] += g[idx] * _expm1_6(x[idx] * scale)
    else:
        for idx in range(count):
            s[idx] += g[idx] * _expm1_9(x[idx] * scale)


@njit(cache=True, error_model="numpy", inline="always")
def _exp14(t: float) -> float:
    """``exp(t)`` for ``|t| <= 0.5``, relative error about 1e-16 (Taylor to degree 14, Horner)."""
    s = t * (1.0 / 87178291200.0) + (1.0 / 6227020800.0)
    s = s * t + (1.0 / 479001600.0)
    s = s * t + (1.0 / 39916800.0)
    s = s * t + (1.0 / 3628800.0)
    s = s * t + (1.0 / 362880.0)
    s = s * t + (1.0 / 40320.0)
    s = s * t + (1.0 / 5040.0)
    s = s * t + (1.0 / 720.0)
    s = s * t + (1.0 / 120.0)
    s = s * t + (1.0 / 24.0)
    s = s * t + (1.0 / 6.0)
    s = s * t + 0.5
    s = s * t + 1.0
    return s * t + 1.0


@njit(cache=True, error_model="numpy", inline="always")
def _two_atanh(u: float) -> float:
    """``2 atanh(u)`` for ``|u| <= 0.057``, relative error about 1e-16 (its series to ``u^15``)."""
    u2 = u * u
    a = u2 * (1.0 / 15.0) + (1.0 / 13.0)
    a = a * u2 + (1.0 / 11.0)
    a = a * u2 + (1.0 / 9.0)
    a = a * u2 + (1.0 / 7.0)
    a = a * u2 + (1.0 / 5.0)
    a = a * u2 + (1.0 / 3.0)
    a = a * u2 + 1.0
    return 2.0 * u * a


@njit(cache=True, error_model="numpy", inline="always")
def _log_near1(s: float) -> float:
    """``log(s)`` for ``|s - 1| <= 0.12``: :func:`_two_atanh` of ``u = (s - 1) / (s + 1)``, ``|u| <= 0.057``."""
    return _two_atanh((s - 1.0) / (s + 1.0))


@njit(cache=True, error_model="numpy")
def _rank1_exact(o: np.ndarray, r: int, da: float, w: np.ndarray, y: np.ndarray, t: np.ndarray,
                 lrow: np.ndarray, orow: np.ndarray) -> float:
    """Loss change of row ``r`` when its logits move by ``da * w``, from the logits (any step size)."""
    for q in range(o.shape[0]):
        orow[q] = o[q, r] + da * w[q]
    return row_loss(orow, r, y, t, CROSS_ENTROPY) - lrow[r]


@njit(cache=True, error_model="numpy")
def _relu_background_pair(n: int, mark: np.ndarray, ztj: np.ndarray, w: np.ndarray, y: np.ndarray, cb0: float,
                          cb1: float, fast0: bool, fast1: bool, s0: np.ndarray, s1: np.ndarray,
                          gathered: np.ndarray, da_k: np.ndarray, m0: int, m1: int) -> tuple[float, float, int, int]:
    """The background rows of :func:`try_rank1` for two candidates and a ReLU unit, with the same arithmetic
    as its general loop: rows active before and after join the log-product (the fast path) or, like rows
    crossing the kink, the gathered rows ``gathered[k]`` with their own change ``da_k[k]``.

    Returns:
        each candidate's summed loss change of the product rows, and its number of gathered rows (``m0``,
        ``m1`` on entry: those gathered before).
    """
    pr0 = pr1 = 1.0
    ys0 = ys1 = tot0 = tot1 = 0.0
    n0 = n1 = 0
    for r in range(n):
        if mark[r] != 0:
            continue
        zo = ztj[r]
        wy = w[y[r]]
        if cb0 != 0.0:
            zn = zo + cb0
            if zo > 0.0 and zn > 0.0 and fast0:
                pr0 *= 1.0 + s0[r]
                ys0 += wy
                n0 += 1
                if n0 == 16:
                    tot0 += math.log(pr0)
                    pr0, n0 = 1.0, 0
            elif zo > 0.0 or zn > 0.0:  # active on one side at least: a large step, or crossing the kink
                da = cb0 if zo > 0.0 and zn > 0.0 else (zn if zn > 0.0 else 0.0) - (zo if zo > 0.0 else 0.0)
                if da != 0.0:
                    gathered[0, m0] = r
                    da_k[0, m0] = da
                    m0 += 1
        if cb1 != 0.0:
            zn = zo + cb1
            if zo > 0.0 and zn > 0.0 and fast1:
                pr1 *= 1.0 + s1[r]
                ys1 += wy
                n1 += 1
                if n1 == 16:
                    tot1 += math.log(pr1)
                    pr1, n1 = 1.0, 0
            elif zo > 0.0 or zn > 0.0:
                da = cb1 if zo > 0.0 and zn > 0.0 else (zn if zn > 0.0 else 0.0) - (zo if zo > 0.0 else 0.0)
                if da != 0.0:
                    gathered[1, m1] = r
                    da_k[1, m1] = da
                    m1 += 1
    return tot0 + math.log(pr0) - cb0 * ys0, tot1 + math.log(pr1) - cb1 * ys1, m0, m1


@njit(cache=True, error_model="numpy", inline="always")
def _log1p_tiny(s: float) -> float:
    """``log(1 + s)`` for ``|s| <= 0.01005``: ``2 atanh(u)``, ``u = s / (2 + s)``, ``|u| <= 0.00503``, by its series
    to ``u^7`` (the first term left out is below ``u^9 / 9``, 1e-19 of ``u``)."""
    u = s / (2.0 + s)
    u2 = u * u
    a = u2 * (1.0 / 7.0) + (1.0 / 5.0)
    a = a * u2 + (1.0 / 3.0)
    a = a * u2 + 1.0
    return 2.0 * u * a


@njit(cache=True, error_model="numpy", inline="always")
def _log1p_small(s: float) -> float:
    """``log(1 + s)`` for ``|s| <= 0.12``: :func:`_log_near1` without rounding ``1 + s`` first."""
    return _two_atanh(s / (2.0 + s))


@njit(cache=True, error_model="numpy")
def _sum4(a: np.ndarray, count: int) -> float:
    """``sum(a[:count])`` in four interleaved partial sums (a fixed order the compiler can vectorise)."""
    a0 = a1 = a2 = a3 = 0.0
    stop = count - count % 4
    for r in range(0, stop, 4):
        a0 += a[r]
        a1 += a[r + 1]
        a2 += a[r + 2]
        a3 += a[r + 3]
    for r in range(stop, count):
        a0 += a[r]
    return (a0 + a1) + (a2 + a3)


@njit(cache=True, error_model="numpy")
def _dot4(a: np.ndarray, b: np.ndarray, count: int) -> float:
    """``sum(a[:count] * b[:count])`` in four interleaved partial sums (as :func:`_sum4`)."""
    a0 = a1 = a2 = a3 = 0.0
    stop = count - count % 4
    for r in range(0, stop, 4):
        a0 += a[r] * b[r]
        a1 += a[r + 1] * b[r + 1]
        a2 += a[r + 2] * b[r + 2]
        a3 += a[r + 3] * b[r + 3]
    for r in range(stop, count):
        a0 += a[r] * b[r]
    return (a0 + a1) + (a2 + a3)


@njit(cache=True, error_model="numpy", inline="always")
def _relu_own_moves(zo: float, zs: float, dz0: float, dz1: float) -> tuple[float, float]:
    """A ReLU unit's change of activation in a row at pre-activation ``zo`` when it moves to ``zs + dz0`` and
    to ``zs + dz1`` (one row of :func:`_relu_own_pair` and :func:`_relu_own_union`)."""
    ao = zo if zo > 0.0 else 0.0
    z0 = zs + dz0
    z1 = zs + dz1
    return (z0 if z0 > 0.0 else 0.0) - ao, (z1 if z1 > 0.0 else 0.0) - ao


@njit(cache=True, error_model="numpy")
def _relu_own_pair(rows: np.ndarray, vals: np.ndarray, ztj: np.ndarray, shift: float, d0: float, d1: float,
                   two: bool, mark: np.ndarray, gathered: np.ndarray, da_k: np.ndarray) -> tuple[int, int]:
    """Step 1 of :func:`try_rank1` for one or (``two``) two candidates and a ReLU unit: mark the rows with their
    own input and gather, per candidate, those whose activation changes (pre-activations moved by ``shift``
    and ``d * input``). Returns the counts (0 for a second candidate that is not there)."""
    m0 = m1 = 0
    second = 1 if two else 0  # one candidate: da_k may have one row only (the second is never written)
    g0, g1, e0, e1 = gathered[0], gathered[second], da_k[0], da_k[second]
    for idx in range(rows.shape[0]):
        r = rows[idx]
        xin = vals[idx]
        mark[r] = 1
        zo = ztj[r]
        da0, da1 = _relu_own_moves(zo, zo + shift, d0 * xin, d1 * xin)
        g0[m0] = r  # written always, kept by the count (see _relu_own_union)
        e0[m0] = da0
        m0 += da0 != 0.0
        if two:
            g1[m1] = r
            e1[m1] = da1
            m1 += da1 != 0.0
    return m0, m1


@njit(cache=True, error_model="numpy")
def _relu_own_union(rows: np.ndarray, vals: np.ndarray, ztj: np.ndarray, shift: float, d0: float, d1: float,
                    mark: np.ndarray, union: np.ndarray, e0: np.ndarray, e1: np.ndarray) -> int:
    """:func:`_relu_own_pair` for two candidates, gathering the rows where either candidate changes the
    activation once, into ``union``, with each candidate's change in ``e0``/``e1`` (0 where it does not change
    the row); returns their count. Step 3 of :func:`try_rank1` then gathers each row's softmax once for both."""
    m = 0
    for idx in range(rows.shape[0]):
        r = rows[idx]
        xin = vals[idx]
        mark[r] = 1
        zo = ztj[r]
        da0, da1 = _relu_own_moves(zo, zo + shift, d0 * xin, d1 * xin)
        # Written always and kept by the count: about half the rows change, a branch on it is mispredicted
        # as often as not (6.3 -> 2.3 us a try on the MDP rows). The slot after the last kept row is scratch.
        union[m] = r
        e0[m] = da0
        e1[m] = da1
        m += (da0 != 0.0) | (da1 != 0.0)
    return m


@njit(cache=True, error_model="numpy")
def _log_product_small(s: np.ndarray, count: int) -> float:
    """``sum(log(s[:count]))`` for ``s`` in ``[e^-0.12, e^0.12]``, as logs of products in four interleaved lanes
    (one multiply a row, and the lanes independent, where one running product waits on each multiply): each
    lane multiplies 64 entries before its log, whose product stays in ``[e^-8, e^8]``."""
    total = 0.0
    q0 = q1 = q2 = q3 = 1.0
    stop = count - count % 4
    for first in range(0, stop, 256):
        for idx in range(first, min(stop, first + 256), 4):
            q0 *= s[idx]
            q1 *= s[idx + 1]
            q2 *= s[idx + 2]
            q3 *= s[idx + 3]
        total += math.log((q0 * q1) * (q2 * q3))  # four products in [e^-8, e^8]
        q0 = q1 = q2 = q3 = 1.0
    for idx in range(stop, count):
        q0 *= s[idx]
    return total + math.log(q0)


@njit(cache=True, error_model="numpy")
def _relu_shared_logs(n: int, mark: np.ndarray, ztj: np.ndarray, wy: np.ndarray, cb: float, wmax: float,
                      sk: np.ndarray, terms: np.ndarray) -> float:
    """The summed loss change of the background rows of a ReLU unit that stay active under the shared move
    ``cb`` (``log s_r - cb w[y_r]``, with ``s_r = 1 + sk[r]``, ``|cb| wmax <= SMALL``), branch-free so that it
    vectorises; ``wy[r]`` is ``w[y_r]`` and ``terms`` scratch. RSO's steps are mostly small enough for a
    shorter log series."""
    tiny = abs(cb) * wmax <= 0.01  # |s| <= 0.01005, |u| <= 0.00503: the series to u^7 is exact to 1e-19
    for r in range(n):  # the compiler takes the loop-invariant choice of series out of the loop
        zo = ztj[r]
        zn = zo + cb
        on = (mark[r] == 0) & (zo > 0.0) & (zn > 0.0)
        v = (_log1p_tiny(sk[r]) if tiny else _log1p_small(sk[r])) - cb * wy[r]
        terms[r] = v if on else 0.0
    return _sum4(terms, n)


CROSS_CHUNK = 16
"""Rows per chunk of :func:`_relu_crossing_pair`'s branch-free screen."""


@njit(cache=True, error_model="numpy")
def _relu_crossing_pair(n: int, mark: np.ndarray, ztj: np.ndarray, cb0: float, cb1: float, two: bool,
                        gathered: np.ndarray, da_k: np.ndarray, m0: int, m1: int) -> tuple[int, int]:
    """The background rows of a ReLU unit that cross the kink under the shared moves ``cb0`` (and with ``two``,
    ``cb1``): gathered per candidate after the ``m0``, ``m1`` rows gathered before, with their activation change.
    Returns the counts.

    Few rows cross (those within ``|cb|`` of the kink), so each chunk of :data:`CROSS_CHUNK` rows is first
    screened for pre-activations in that window by a loop without branches, which vectorises, and only a chunk
    with one is gone through row by row (the rows are gathered in the same order as one pass over all rows
    would)."""
    cb_other = cb1 if two else cb0
    lo, hi = min(0.0, -cb0, -cb_other), max(0.0, -cb0, -cb_other)
    for first in range(0, n, CROSS_CHUNK):
        last = min(n, first + CROSS_CHUNK)
        hits = 0
        for r in range(first, last):  # a row crosses only if lo < z <= hi (and it is a background row)
            zo = ztj[r]
            hits += (zo > lo) & (zo <= hi)
        if hits == 0:
            continue
        for r in range(first, last):
            if mark[r] != 0:
                continue
            zo = ztj[r]
            ao = zo if zo > 0.0 else 0.0
            z0 = zo + cb0
            z1 = zo + cb1
            if (zo > 0.0) != (z0 > 0.0):
                gathered[0, m0] = r
                da_k[0, m0] = (z0 if z0 > 0.0 else 0.0) - ao
                m0 += 1
            if two and (zo > 0.0) != (z1 > 0.0):
                gathered[1, m1] = r
                da_k[1, m1] = (z1 if z1 > 0.0 else 0.0) - ao
                m1 += 1
    return m0, m1


@njit(cache=True, error_model="numpy")
def _stream_pair10(p32: np.ndarray, u0: np.ndarray, u1: np.ndarray, s0: np.ndarray, s1: np.ndarray) -> None:
    """``s_k[r] = sum_c p32[c, r] u_k[c]`` for two candidates and ten classes, the classes summed in a register
    in the order of the general loop (so the same sums, bit for bit): one read of each class and one write of
    each sum per row, where the general loop reads and writes the sums once per class."""
    cols, x, z = _ten(p32), _ten(u0), _ten(u1)
    for r in range(s0.shape[0]):
        s0[r] = _dot10(cols, r, x)
        s1[r] = _dot10(cols, r, z)


@njit(cache=True, error_model="numpy")
def _class_weights(w: np.ndarray, y: np.ndarray, work: Workspace) -> np.ndarray:
    """``w[y_r]`` for every row (``w = W[:, j]``: the output weights of a unit), from the workspace
    (:attr:`~.state.Workspace.wy`) when it was filled for these weights, else filled there (a gather the
    compiler cannot vectorise, about 2 us for 5,000 rows; RSO tries a unit's weights in a row)."""
    key = work.wy_key
    same = True
    for q in range(w.shape[0]):
        same = same and key[q] == w[q]  # NaN (nothing kept yet) differs from everything
    if not same:
        for r in range(y.shape[0]):
            work.wy[r] = w[y[r]]
        for q in range(w.shape[0]):
            key[q] = w[q]
    return work.wy


@njit(cache=True, error_model="numpy", inline="always")
def _ten(a: np.ndarray) -> tuple:
    """``(a[0], ..., a[9])``: ten classes' arrays (or values) as a tuple, so that a loop over rows reads them
    from registers."""
    return a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]


@njit(cache=True, error_model="numpy", inline="always")
def _dot10(cols: tuple, r: int, u: tuple) -> float:
    """``sum_c cols[c][r] * u[c]`` over ten classes, summed from 0.0 in class order (the order of the general
    loop, which accumulates class by class)."""
    s = 0.0 + float(cols[0][r]) * u[0]
    s = s + float(cols[1][r]) * u[1]
    s = s + float(cols[2][r]) * u[2]
    s = s + float(cols[3][r]) * u[3]
    s = s + float(cols[4][r]) * u[4]
    s = s + float(cols[5][r]) * u[5]
    s = s + float(cols[6][r]) * u[6]
    s = s + float(cols[7][r]) * u[7]
    s = s + float(cols[8][r]) * u[8]
    return s + float(cols[9][r]) * u[9]


@njit(cache=True, error_model="numpy", inline="always")
def _gather_flagged(n: int, flags: np.ndarray, mark: np.ndarray, ztj: np.ndarray, cb0: float, cb1: float,
                    two: bool, union: bool, gathered: np.ndarray, da_k: np.ndarray, m0: int,
                    m1: int) -> tuple[int, int]:
    """The flagged background rows (``flags[r] != 0``: within the kink's window) that cross it, gathered as
    :func:`_relu_crossing_pair` gathers them, the flags read eight at a time (the padding after row ``n`` stays
    0). With ``union`` (two candidates) a row crossing for either is gathered once, as in
    :func:`_relu_background_pair10`; without ``two`` only the first candidate is."""
    words = flags.view(np.uint64)
    for q in range(words.shape[0]):
        if words[q] == 0:
            continue
        for r in range(8 * q, min(n, 8 * q + 8)):
            if flags[r] == 0 or mark[r] != 0:
                continue
            zo = ztj[r]
            ao = zo if zo > 0.0 else 0.0
            z0 = zo + cb0
            z1 = zo + cb1
            cross0, cross1 = (zo > 0.0) != (z0 > 0.0), two and (zo > 0.0) != (z1 > 0.0)
            da0 = (z0 if z0 > 0.0 else 0.0) - ao if cross0 else 0.0
            da1 = (z1 if z1 > 0.0 else 0.0) - ao if cross1 else 0.0
            if union:
                if cross0 or cross1:
                    gathered[0, m0] = r
                    da_k[0, m0] = da0
                    da_k[1, m0] = da1
                    m0 += 1
                continue
            if cross0:
                gathered[0, m0] = r
                da_k[0, m0] = da0
                m0 += 1
            if cross1:
                gathered[1, m1] = r
                da_k[1, m1] = da1
                m1 += 1
    return m0, m1


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _relu_background_pair10(n: int, p32: np.ndarray, u0: np.ndarray, u1: np.ndarray, mark: np.ndarray,
                            ztj: np.ndarray, wy: np.ndarray, cb0: float, cb1: float, wmax: float, t0: np.ndarray,
                            t1: np.ndarray, flags: np.ndarray, gathered: np.ndarray, da_k: np.ndarray, m0: int,
                            m1: int, union: bool) -> tuple[float, float, int, int]:
    """The background rows of :func:`try_rank1` for two candidates, ten classes and a ReLU unit, in one pass
    over the rows: each row's sums ``s_k`` (as :func:`_stream_pair10`), its loss change where it stays active
    (as :func:`_relu_shared_logs`, into ``t0``/``t1``) and whether it lies in the window of the kink (into
    ``flags``), so that the softmax, the pre-activations and the sums are read once; then the flagged rows are
    found eight at a time and those that cross gathered as :func:`_relu_crossing_pair` gathers them
    (``wy[r]`` is ``w[y_r]``: a gather inside the loop would stop the compiler vectorising it).

    The fused passes are the kernels compiled with ``fastmath={"contract"}``: a multiply and the add after it
    may become one fused multiply-add, rounded once instead of twice (no reordering, no other fast-math
    licence): the pass's cost is its vector instructions, and on the MDP task's rows it took 13.8 us down to
    12.7. The sums then differ from those three loops' in the last bits (1e-15 relative, and closer to exact),
    the same on every machine with FMA.

    With ``union`` a row that crosses for either candidate is gathered once, into ``gathered[0]`` after the
    ``m0`` there, with both changes in ``da_k[0]`` and ``da_k[1]`` (0 for a candidate under which it does not
    cross), as :func:`_relu_own_union` gathers; the second count is then ``m1``.

    Returns:
        each candidate's summed loss change of the rows that stay active, and its number of gathered rows
        (``m0``, ``m1`` on entry: those gathered before).
    """
    tiny0, tiny1 = abs(cb0) * wmax <= 0.01, abs(cb1) * wmax <= 0.01  # as _relu_shared_logs chooses
    lo, hi = min(0.0, -cb0, -cb1), max(0.0, -cb0, -cb1)
    cols, x, z = _ten(p32), _ten(u0), _ten(u1)
    hits = 0
    for r in range(n):
        s0 = _dot10(cols, r, x)
        s1 = _dot10(cols, r, z)
        zo = ztj[r]
        bg = mark[r] == 0
        l0 = (_log1p_tiny(s0) if tiny0 else _log1p_small(s0)) - cb0 * wy[r]
        l1 = (_log1p_tiny(s1) if tiny1 else _log1p_small(s1)) - cb1 * wy[r]
        t0[r] = l0 if bg & (zo > 0.0) & (zo + cb0 > 0.0) else 0.0
        t1[r] = l1 if bg & (zo > 0.0) & (zo + cb1 > 0.0) else 0.0
        near = (zo > lo) & (zo <= hi)  # a row crosses only if lo < z <= hi (and it is a background row)
        flags[r] = near
        hits += near
    if hits:
        m0, m1 = _gather_flagged(n, flags, mark, ztj, cb0, cb1, True, union, gathered, da_k, m0, m1)
    return _sum4(t0, n), _sum4(t1, n), m0, m1


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _relu_background_one10(n: int, p32: np.ndarray, u0: np.ndarray, mark: np.ndarray, ztj: np.ndarray,
                           wy: np.ndarray, cb0: float, wmax: float, t0: np.ndarray, flags: np.ndarray,
                           gathered: np.ndarray, da_k: np.ndarray, m0: int) -> tuple[float, int]:
    """:func:`_relu_background_pair10` for one candidate: its summed loss change of the background rows that
    stay active, and its number of gathered rows (``m0`` on entry). A kernel of its own: making the second
    candidate optional by a flag of the two-candidate pass, tested per row, stopped the compiler vectorising
    the loop (2.5x slower)."""
    tiny0 = abs(cb0) * wmax <= 0.01
    lo, hi = min(0.0, -cb0), max(0.0, -cb0)
    cols, x = _ten(p32), _ten(u0)
    hits = 0
    for r in range(n):
        s0 = _dot10(cols, r, x)
        zo = ztj[r]
        l0 = (_log1p_tiny(s0) if tiny0 else _log1p_small(s0)) - cb0 * wy[r]
        t0[r] = l0 if (mark[r] == 0) & (zo > 0.0) & (zo + cb0 > 0.0) else 0.0
        near = (zo > lo) & (zo <= hi)
        flags[r] = near
        hits += near
    if hits:
        m0, _ = _gather_flagged(n, flags, mark, ztj, cb0, cb0, False, False, gathered, da_k, m0, 0)
    return _sum4(t0, n), m0


@njit(cache=True, error_model="numpy")
def _union_small(mu: int, rows: np.ndarray, d0: np.ndarray, d1: np.ndarray, w: np.ndarray, wmax: float,
                 y: np.ndarray, p32: np.ndarray, g: np.ndarray, s0: np.ndarray, s1: np.ndarray, total: np.ndarray,
                 out: np.ndarray) -> bool:
    """Step 3 of :func:`try_rank1` for the ``mu`` rows gathered once for two candidates (``rows``, changes
    ``d0``, ``d1``) when both candidates' changes are small (``|d| wmax <= SMALL``; else it returns False and
    does nothing): the softmax of each row is gathered once for both (a row a candidate does not change has
    ``s = 1`` exactly, and adds nothing), and the logs and sums run in four lanes."""
    dmax0 = dmax1 = 0.0
    for idx in range(mu):
        dmax0 = max(dmax0, abs(d0[idx]))
        dmax1 = max(dmax1, abs(d1[idx]))
    if dmax0 * wmax > SMALL or dmax1 * wmax > SMALL:
        return False
    wy = s0  # free until the sums: the output weight of each row's class
    for idx in range(mu):
        wy[idx] = w[y[rows[idx]]]
    ys0 = _dot4(d0, wy, mu)
    ys1 = _dot4(d1, wy, mu)
    for idx in range(mu):
        s0[idx] = 0.0
        s1[idx] = 0.0
    for q in range(w.shape[0]):
        pq, gq = p32[q], g[q]
        for idx in range(mu):
            gq[idx] = pq[rows[idx]]
    for q in range(w.shape[0]):
        _add_weighted_expm1(s0, g[q], d0, w[q], dmax0 * abs(w[q]), mu)
        _add_weighted_expm1(s1, g[q], d1, w[q], dmax1 * abs(w[q]), mu)
    for idx in range(mu):
        s0[idx] += 1.0
        s1[idx] += 1.0
    out[0] = total[0] + _log_product_small(s0, mu) - ys0
    out[1] = total[1] + _log_product_small(s1, mu) - ys1
    return True


@njit(cache=True, error_model="numpy")
def _split_union(mu: int, gathered: np.ndarray, da_k: np.ndarray, first: bool = False) -> int:
    """The rows of ``gathered[0][:mu]`` that the second (``first``: the first) candidate changes, moved with their
    change to that candidate's ``gathered[k]``/``da_k[k]`` (in place: the second must be split first, since the
    first overwrites the union); returns their count."""
    k = 0 if first else 1
    m = 0
    for idx in range(mu):
        d = da_k[k, idx]
        if d != 0.0:
            gathered[k, m] = gathered[0, idx]
            da_k[k, m] = d
            m += 1
    return m


@njit(cache=True, error_model="numpy")
def try_rank1(layer: int, j: int, i: int, deltas: np.ndarray, out: np.ndarray, net: Net, outs: Outputs,
              inp: Inputs, work: Workspace, shift: float = 0.0) -> None:
    """Change of the summed cross-entropy, ``out[k]``, when ``W_layer[j, i]`` (``i < 0``: bias ``j``) of the
    last hidden layer changes by ``deltas[k]``; the caches are only read. The passes over rows serve all
    candidates at once (RSO tries two).

    ``shift`` moves unit ``j``'s pre-activation in every row on top of the change (0 unless the caches lag the
    weights by such a move, see :func:`rank1_update`; only where the input is not a hidden layer): ``out[k]``
    is then the change from what the caches hold.
    """
    widths, weights, w_off, zt, at, h_off = net.widths, net.weights, net.w_off, net.zt, net.at, net.h_off
    o, p, p32, lrow, y, t = outs.o, outs.p, outs.p32, outs.lrow, outs.y, outs.t
    colptr, rows, vals, beta = inp.colptr, inp.rows, inp.vals, inp.beta
    scratch, mark, gathered = work.scratch, work.mark, work.gathered
    c, n = o.shape[0], o.shape[1]
    kk = deltas.shape[0]
    code, p0, p1 = net.act_code[layer], net.act_par[layer, 0], net.act_par[layer, 1]
    nin = widths[layer + 1]
    w = np.empty(c)
    wmax = 0.0
    for q in range(c):
        w[q] = weights[w_off[layer + 1] + q * nin + j]
        wmax = max(wmax, abs(w[q]))
    base = h_off[layer] + j * n
    ztj = zt[base : base + n]
    g, e = scratch[:c], scratch[c]
    s_k, da_k = scratch[c + 1 : c + 1 + kk], scratch[c + 1 + kk : c + 1 + 2 * kk]
    # rows with their own change per candidate, in gathered[k] / da_k[k] (two counters at least: the
    # one- and two-candidate helpers below return both)
    m = np.zeros(max(kk, 2), dtype=np.int64)
    total = np.zeros(kk)
    orow = np.empty(c)
    # Where the input comes from: the network input (its listed rows + background rows), a bias (every
    # row is background, input 1), or a hidden layer (every row with a non-zero activation).
    if i < 0:
        bg, start, stop, dense = 1.0, 0, 0, False
    elif layer == 0:
        bg, start, stop, dense = beta[i], colptr[i], colptr[i + 1], False
    else:
        bg, start, stop, dense = 0.0, 0, 0, True
    # The shared move of the background rows (step 2), per candidate: rows on the linear piece share
    # expm1(cb * w), exactly for ``fast`` ones (small moves).
    background = (bg != 0.0 or shift != 0.0) and not dense
    cb = np.zeros(kk)
    fast = np.zeros(kk, dtype=np.bool_)
    u = np.empty((kk, c))
    for k in range(kk if background else 0):
        cb[k] = shift + deltas[k] * bg
        fast[k] = cb[k] != 0.0 and abs(cb[k]) * wmax <= SMALL
        for q in range(c):
            u[k, q] = math.expm1(cb[k] * w[q])
    pair10 = kk == 2 and fast[0] and fast[1] and c == 10  # RSO's case on ten classes
    # RSO's case, its background in one pass or none: each row with its own change is gathered once for both
    # candidates (``gathered[0]``, changes in ``da_k[0]`` and ``da_k[1]``; step 3 splits them for large steps)
    fused = pair10 and code == RELU  # the background in one pass (step 2)
    one10 = kk == 1 and fast[0] and c == 10 and code == RELU  # so for one candidate
    union = kk == 2 and code == RELU and not dense and (pair10 or not background)
    # 1. rows with their own input: a hidden input's non-zero rows, or the network input's listed rows
    count = n if dense else stop - start
    prev = h_off[layer - 1] + i * n if dense else 0
    if union:
        m[0] = _relu_own_union(rows[start:stop], vals[start:stop], ztj, shift, deltas[0], deltas[1], mark,
                               gathered[0], da_k[0], da_k[1])
        count = 0
    elif kk <= 2 and code == RELU and not dense:  # RSO's case (and one candidate), with the counters in registers
        m[0], m[1] = _relu_own_pair(rows[start:stop], vals[start:stop], ztj, shift, deltas[0], deltas[kk - 1],
                                    kk == 2, mark, gathered, da_k)
        count = 0
    for idx in range(count):
        if dense:
            r = idx
            xin = at[prev + r]
            if xin == 0.0:
                continue
        else:
            r = rows[start + idx]
            xin = vals[start + idx]
            mark[r] = 1
        zo = ztj[r]
        ao = act(code, p0, p1, zo)
        for k in range(kk):
            da = act(code, p0, p1, zo + shift + deltas[k] * xin) - ao
            if da != 0.0:
                gathered[k, m[k]] = r
                da_k[k, m[k]] = da
                m[k] += 1
    # 2. background rows all move by cb = delta * beta; on the linear piece they share expm1(cb * w):
    #    s = 1 + sum_c p_c expm1(cb w_c) is one SIMD pass over the float32 softmax for all rows
    if background:
        if fused:
            wy = _class_weights(w, y, work)
            total[0], total[1], m[0], m[1] = _relu_background_pair10(
                n, p32, u[0], u[1], mark, ztj, wy, cb[0], cb[1], wmax, s_k[0], s_k[1], work.flags, gathered, da_k,
                m[0], m[1], union)
        elif one10:
            wy = _class_weights(w, y, work)
            total[0], m[0] = _relu_background_one10(n, p32, u[0], mark, ztj, wy, cb[0], wmax, s_k[0], work.flags,
                                                    gathered, da_k, m[0])
        elif pair10:  # the sums in registers
            _stream_pair10(p32, u[0], u[1], s_k[0], s_k[1])
        else:
            for k in range(kk):
                if fast[k]:
                    sk = s_k[k]
                    for r in range(n):
                        sk[r] = 0.0
            for q in range(c):
                pq = p32[q]
                if kk == 2 and fast[0] and fast[1]:  # two candidates in one read of the softmax
                    s0, s1, u0, u1 = s_k[0], s_k[1], u[0, q], u[1, q]
                    for r in range(n):
                        v = pq[r]
                        s0[r] += v * u0
                        s1[r] += v * u1
                else:
                    for k in range(kk):
                        if fast[k]:
                            sk, uk = s_k[k], u[k, q]
                            for r in range(n):
                                sk[r] += pq[r] * uk
        if fused or one10:
            kk_rows = 0
        elif kk <= 2 and code == RELU and fast[0] and fast[kk - 1]:  # other than ten classes
            wy, terms = _class_weights(w, y, work), e  # e is free until step 3
            for k in range(kk):
                total[k] = _relu_shared_logs(n, mark, ztj, wy, cb[k], wmax, s_k[k], terms)
            m[0], m[1] = _relu_crossing_pair(n, mark, ztj, cb[0], cb[kk - 1], kk == 2, gathered, da_k, m[0], m[1])
            kk_rows = 0
        elif kk == 2 and code == RELU:  # with accumulators the compiler keeps in registers
            total[0], total[1], m[0], m[1] = _relu_background_pair(
                n, mark, ztj, w, y, cb[0], cb[1], fast[0], fast[1], s_k[0], s_k[1], gathered, da_k, m[0], m[1])
            kk_rows = 0
        else:
            kk_rows = kk
        prod = np.ones(kk)
        ysum = np.zeros(kk)
        cnt = np.zeros(kk, dtype=np.int64)
        for r in range(n if kk_rows else 0):
            if mark[r] != 0:
                continue
            zo = ztj[r]
            for k in range(kk):
                if cb[k] == 0.0:
                    continue
                zn = zo + cb[k]
                slope = unit_slope(code, p0, p1, zo, zn)
                if slope == 0.0:
                    continue
                if slope == 1.0 and fast[k]:
                    prod[k] *= 1.0 + s_k[k, r]
                    ysum[k] += w[y[r]]
                    cnt[k] += 1
                    if cnt[k] == 16:
                        total[k] += math.log(prod[k])
                        prod[k], cnt[k] = 1.0, 0
                else:  # crossing the kink, or a large step: the row joins those with their own change
                    da = cb[k] if slope == 1.0 else act(code, p0, p1, zn) - act(code, p0, p1, zo)
                    if da != 0.0:
                        gathered[k, m[k]] = r
                        da_k[k, m[k]] = da
                        m[k] += 1
        for k in range(kk_rows):
            total[k] += math.log(prod[k]) - cb[k] * ysum[k]
    for idx in range(start, stop):
        mark[rows[idx]] = 0
    # 3. rows with their own change: gather the softmax, vectorised exponentials, one log per chunk
    if union and _union_small(m[0], gathered[0], da_k[0], da_k[1], w, wmax, y, p32, g, s_k[0], s_k[1], total, out):
        return
    if union:  # a large step: each candidate's rows apart, in the order they were gathered
        m[1] = _split_union(m[0], gathered, da_k)
        m[0] = _split_union(m[0], gathered, da_k, first=True)
    for k in range(kk):
        mk, rk, dk, sk = m[k], gathered[k], da_k[k], s_k[k]
        dmax = 0.0
        ysum_k = 0.0
        for idx in range(mk):
            dmax = max(dmax, abs(dk[idx]))
            ysum_k += dk[idx] * w[y[rk[idx]]]
        for idx in range(mk):
            sk[idx] = 0.0
        if dmax * wmax <= SMALL:
            for q in range(c):
                pq, gq = p32[q], g[q]
                for idx in range(mk):
                    gq[idx] = pq[rk[idx]]
            for q in range(c):
                _add_weighted_expm1(sk, g[q], dk, w[q], dmax * abs(w[q]), mk)
            for idx in range(mk):
                sk[idx] += 1.0
            out[k] = total[k] + log_product(sk, mk) - ysum_k
        elif dmax * wmax <= BIG:
            for q in range(c):
                pq, gq = p[q], g[q]
                for idx in range(mk):
                    gq[idx] = pq[rk[idx]]
            for q in range(c):
                wq = w[q]
                for idx in range(mk):
                    e[idx] = math.exp(dk[idx] * wq)
                gq = g[q]
                for idx in range(mk):
                    sk[idx] += gq[idx] * e[idx]
            out[k] = total[k] + log_product(sk, mk) - ysum_k
        else:
            for idx in range(mk):
                total[k] += _rank1_exact(o, rk[idx], dk[idx], w, y, t, lrow, orow)
            out[k] = total[k]


@njit(cache=True, error_model="numpy")
def apply_rank1(layer: int, j: int, i: int, value: float, net: Net, outs: Outputs, inp: Inputs,
                work: Workspace) -> None:
    """Set ``W_layer[j, i]`` (``i < 0``: bias ``j``) of the last hidden layer to ``value`` and update the
    caches (:func:`rank1_update` of the change)."""
    widx = net.b_off[layer] + j if i < 0 else net.w_off[layer] + j * net.widths[layer] + i
    rank1_update(layer, j, i, value - net.weights[widx], False, net, outs, inp, work)
    net.weights[widx] = value


@njit(cache=True, error_model="numpy")
def rank1_update(layer: int, j: int, i: int, delta: float, own_only: bool, net: Net, outs: Outputs, inp: Inputs,
                 work: Workspace) -> float:
    """Update the caches for a change ``delta`` of ``W_layer[j, i]`` (``i < 0``: bias ``j``) of the last hidden
    layer (the weights are not written): the unit's pre-activations and activations, and for every changed row
    its logits (``+ da w``), softmax (``p_c <- p_c exp(da w_c) / s``, float64 and the float32 copy) and loss
    (``+ log s - da w[y]``). With ``i < 0`` every row's pre-activation moves by ``delta``.

    ``own_only`` (an input-layer weight or a bias) leaves out the move ``delta * beta_i`` that every row shares:
    the rows with their own input move by ``delta * (x - beta_i)`` and no other row changes, so the caches lag
    the weights by a shift of unit ``j`` in every row, which a later ``rank1_update`` of the bias (``i = -1``,
    the summed shifts as ``delta``) catches up (:func:`~.greedy_pass.greedy_pass` defers it so while it stays on
    one unit). A bias changes no row then.

    Background rows on the linear piece share ``exp(cb w)``: they are updated in SIMD loops over all rows
    (a mask keeps the others unchanged, multiplying by exactly 1); the rows with their own change get their
    exponentials from vectorised polynomials. Everything stays float64 (no float32 shortcut here: the caches
    are the state every later evaluation starts from).

    Returns:
        how much the row losses changed, summed over the changed rows, when no row shared a move (so that a
        caller can carry the summed loss without summing every row again); NaN when rows shared one.
    """
    widths, weights, w_off = net.widths, net.weights, net.w_off
    zt, at, h_off = net.zt, net.at, net.h_off
    o, p, p32, lrow, y = outs.o, outs.p, outs.p32, outs.lrow, outs.y
    colptr, rows, vals, beta = inp.colptr, inp.rows, inp.vals, inp.beta
    scratch, mark, gathered = work.scratch, work.mark, work.gathered
    c, n = o.shape[0], o.shape[1]
    code, p0, p1 = net.act_code[layer], net.act_par[layer, 0], net.act_par[layer, 1]
    nin = widths[layer + 1]
    w = np.empty(c)
    wmax = 0.0
    for q in range(c):
        w[q] = weights[w_off[layer + 1] + q * nin + j]
        wmax = max(wmax, abs(w[q]))
    base = h_off[layer] + j * n
    ztj, atj = zt[base : base + n], at[base : base + n]
    g, s, msk, da_own = scratch[:c], scratch[c], scratch[c + 1], scratch[c + 2]
    own = gathered[0]
    if i < 0:
        bg, start, stop, dense = 1.0, 0, 0, False
    elif layer == 0:
        bg, start, stop, dense = beta[i], colptr[i], colptr[i + 1], False
    else:
        bg, start, stop, dense = 0.0, 0, 0, True
    # the move every row shares is left out (own_only): the rows with their own input move by the rest
    xoff = bg if own_only else 0.0
    m = 0
    # 1. rows with their own input
    count = n if dense else stop - start
    prev = h_off[layer - 1] + i * n if dense else 0
    for idx in range(count):
        if dense:
            r = idx
            xin = at[prev + r]
            if xin == 0.0:
                continue
        else:
            r = rows[start + idx]
            xin = vals[start + idx]
            mark[r] = 1
        zn = ztj[r] + delta * (xin - xoff)
        an = act(code, p0, p1, zn)
        da = an - atj[r]
        ztj[r] = zn
        atj[r] = an
        own[m] = r  # written always, kept by the count: a branch on it is mispredicted (see _relu_own_union)
        da_own[m] = da
        m += da != 0.0
    # 2. background rows: all move by cb
    cb = 0.0 if own_only else delta * bg
    shared = cb != 0.0 and not dense and abs(cb) * wmax <= BIG
    if cb != 0.0 and not dense and code == RELU:  # the common case, with the activation written out
        for r in range(n):
            msk[r] = 0.0
            if mark[r] != 0:
                continue
            zo = ztj[r]
            zn = zo + cb
            an = zn if zn > 0.0 else 0.0
            ao = atj[r]
            ztj[r] = zn
            atj[r] = an
            if zo > 0.0 and zn > 0.0:
                if shared:
                    msk[r] = 1.0
                    continue
                da = cb
            elif zo > 0.0 or zn > 0.0:
                da = an - ao
            else:
                continue
            if da != 0.0:
                own[m] = r
                da_own[m] = da
                m += 1
    elif cb != 0.0 and not dense:
        for r in range(n):
            msk[r] = 0.0
            if mark[r] != 0:
                continue
            zo = ztj[r]
            zn = zo + cb
            an = act(code, p0, p1, zn)
            slope = unit_slope(code, p0, p1, zo, zn)
            ao = atj[r]
            ztj[r] = zn
            atj[r] = an
            if slope == 0.0:
                continue
            if slope == 1.0 and shared:
                msk[r] = 1.0
            else:
                da = cb if slope == 1.0 else an - ao
                if da != 0.0:
                    own[m] = r
                    da_own[m] = da
                    m += 1
    for idx in range(start, stop):
        mark[rows[idx]] = 0
    if shared:
        e = np.empty(c)
        for q in range(c):
            e[q] = math.exp(cb * w[q])
        for r in range(n):
            s[r] = 0.0
        for q in range(c):
            pq, eq = p[q], e[q]
            for r in range(n):
                s[r] += pq[r] * eq
        for r in range(n):
            s[r] = 1.0 / s[r] if msk[r] != 0.0 else 1.0  # s now holds 1/s, and 1 on unchanged rows
        for q in range(c):
            pq, p32q, eq = p[q], p32[q], e[q]
            for r in range(n):
                on = msk[r] != 0.0
                pq[r] = pq[r] * (eq * s[r]) if on else pq[r]
                p32q[r] = pq[r]
        for q in range(c):  # a loop of its own: beside p (also float64) the compiler would not vectorise it
            oq, step = o[q], cb * w[q]
            for r in range(n):
                oq[r] += step * msk[r]  # + 0.0 on the other rows: unchanged
        # the loss moves by log s - cb w[y]; s holds 1/s (log s = -log(1/s)), and 1 (log 0) on other rows
        if abs(cb) * wmax <= SMALL:  # every 1/s is in [e^-0.1, e^0.1]: branch-free, vectorised logs
            for r in range(n):
                lrow[r] -= _log_near1(s[r]) + msk[r] * (cb * w[y[r]])
        else:
            for r in range(n):
                if msk[r] != 0.0:
                    lrow[r] -= math.log(s[r]) + cb * w[y[r]]
    # 3. rows with their own change: exponentials in vectorised loops, then row by row
    changed = 0.0
    dmax = 0.0
    for idx in range(m):
        dmax = max(dmax, abs(da_own[idx]))
    if dmax * wmax <= BIG:
        for q in range(c):
            gq, wq = g[q], w[q]
            if dmax * abs(wq) <= 0.5:
                for idx in range(m):
                    gq[idx] = _exp14(da_own[idx] * wq)
            else:
                for idx in range(m):
                    gq[idx] = math.exp(da_own[idx] * wq)
        # class by class (a row's classes lie N apart), with the same arithmetic as row by row
        sr, inv = s, msk
        for idx in range(m):
            sr[idx] = 0.0
        for q in range(c):
            pq, gq = p[q], g[q]
            for idx in range(m):
                sr[idx] += pq[own[idx]] * gq[idx]
        for idx in range(m):
            inv[idx] = 1.0 / sr[idx]
        for q in range(c):
            pq, p32q, oq, gq, wq = p[q], p32[q], o[q], g[q], w[q]
            for idx in range(m):
                r = own[idx]
                pq[r] *= gq[idx] * inv[idx]
                p32q[r] = pq[r]
                oq[r] += da_own[idx] * wq
        for idx in range(m):
            r, v = own[idx], sr[idx]
            before = lrow[r]
            lrow[r] += (_log_near1(v) if abs(v - 1.0) <= 0.12 else math.log(v)) - da_own[idx] * w[y[r]]
            changed += lrow[r] - before
    else:
        for idx in range(m):
            r = own[idx]
            for q in range(c):
                o[q, r] += da_own[idx] * w[q]
            before = lrow[r]
            row_stats(r, outs)
            changed += lrow[r] - before
    return math.nan if shared else changed


@njit(cache=True, error_model="numpy")
def try_output(layer: int, j: int, i: int, deltas: np.ndarray, out: np.ndarray, net: Net, outs: Outputs,
               inp: Inputs, work: Workspace) -> None:
    """Change of the summed cross-entropy, ``out[k]``, when ``W_layer[j, i]`` (``i < 0``: bias ``j``) of the
    output layer changes by ``deltas[k]``: logit ``j`` of row ``r`` moves by ``deltas[k] * input_r``."""
    o, p, p32, lrow, y, t = outs.o, outs.p, outs.p32, outs.lrow, outs.y, outs.t
    scratch = work.scratch
    c, n = o.shape[0], o.shape[1]
    xcol, s = scratch[0], scratch[1]
    big = input_column(layer, i, n, net, inp, xcol)
    ysum = 0.0
    for r in range(n):
        if y[r] == j:
            ysum += xcol[r]
    pj = p32[j]
    orow = np.empty(c)
    for k in range(deltas.shape[0]):
        d = deltas[k]
        tmax = abs(d) * big
        if tmax <= SMALL:
            for r in range(n):
                s[r] = 0.0
            _add_weighted_expm1(s, pj, xcol, d, tmax, n)
            for r in range(n):
                s[r] += 1.0
            out[k] = log_product(s, n) - d * ysum
        elif tmax <= BIG:
            for r in range(n):
                rest = 0.0
                for q in range(c):
                    if q != j:
                        rest += p[q, r]
                s[r] = rest + p[j, r] * math.exp(d * xcol[r])
            out[k] = log_product(s, n) - d * ysum
        else:
            total = 0.0
            for r in range(n):
                for q in range(c):
                    orow[q] = o[q, r]
                orow[j] += d * xcol[r]
                total += row_loss(orow, r, y, t, CROSS_ENTROPY) - lrow[r]
            out[k] = total


@njit(cache=True, error_model="numpy")
def try_values(layer: int, j: int, i: int, pos: int, values: np.ndarray, round32: bool, total: float,
               norm: float, losses: np.ndarray, net: Net, outs: Outputs, inp: Inputs, work: Workspace) -> None:
    """Losses ``losses[k]`` (the mean row loss) with weight ``W_layer[j, i]`` (``i < 0``: bias ``j``), at
    ``net.weights[pos]``, set to ``values[k]``; the entry point of every try kernel (one call from Python,
    through :func:`.entry.try_values`).

    Args:
        round32: round the values to float32 first (the module's dtype), as writing them would.
        total: the current summed row loss; ``norm``: what it is divided by for the mean.
    """
    widths, weights = net.widths, net.weights
    num_layers = widths.shape[0] - 1
    kk = values.shape[0]
    deltas = np.empty(kk)
    finite = np.empty(kk, dtype=np.bool_)
    for k in range(kk):
        v = float(np.float32(values[k])) if round32 else float(values[k])
        finite[k] = math.isfinite(v)  # a value beyond float32's range is stored as inf
        deltas[k] = v - weights[pos] if finite[k] else 0.0
    if outs.loss_kind == CROSS_ENTROPY and layer == num_layers - 1:
        try_output(layer, j, i, deltas, losses, net, outs, inp, work)
    elif outs.loss_kind == CROSS_ENTROPY and layer == num_layers - 2:
        try_rank1(layer, j, i, deltas, losses, net, outs, inp, work)
    else:
        try_rows(layer, j, i, deltas, losses, net, outs, inp, work.scratch[0])
    for k in range(kk):
        losses[k] = (total + losses[k]) / norm if finite[k] else np.nan
