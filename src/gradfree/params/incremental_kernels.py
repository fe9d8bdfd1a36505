"""Numba kernels of the incremental MLP engine (:mod:`gradfree.params.incremental`): the caches, the
general row-by-row update, and accepting a change. The cross-entropy fast paths are in
:mod:`gradfree.params.incremental_softmax`.

The engine keeps, for the current weights of a ``Linear``/activation stack on one batch of ``N`` rows, in
float64, grouped in tuples:

* ``net = (widths, wts, w_off, b_off, zt, at, h_off, acts, actp)``: layer widths; all weights and biases
  packed in ``wts`` (``W_l[j, i]`` at ``w_off[l] + j * widths[l] + i``, bias ``j`` at ``b_off[l] + j``); per
  hidden layer ``l`` (every Linear but the last) the pre-activations and activations, unit-major
  (``zt[h_off[l] + j * N + r]`` is ``z_l[r, j]``: a weight change reads one unit over many rows); the
  activation code and its two parameters after each layer;
* ``outs = (o, p, pt32, lse, lrow, y, t, loss_kind)``, class-major so that loops over rows vectorise:
  outputs ``o (C, N)``; for cross-entropy the softmax ``p (C, N)``, a float32 copy ``pt32 (C, N)`` that the
  fast paths stream through (half the memory), and the log-sum-exp ``lse (N,)``; the row losses ``lrow (N,)``
  (cross-entropy ``lse - o[y_r, r]`` or squared error ``sum_c (o[c, r] - t[c, r])^2``); integer targets ``y``
  or float targets ``t (C, N)``;
* ``inp = (colptr, rows, vals, beta)``: the network input per feature in a CSC-like form: ``beta[i]`` is the
  feature's most common ("background") value and ``rows/vals[colptr[i]:colptr[i+1]]`` the rows where it
  differs.

A change ``delta`` of ``W_l[j, i]`` changes ``z_l[r, j]`` by ``dz = delta * a_{l-1}[r, i]`` (input 1 for a
bias): rows whose input is 0 do not change. A changed hidden unit changes ``z_{l+1}`` of its row by the
rank-1 term ``da * W_{l+1}[:, j]``; the layers after that are recomputed for the row (they are small).
Everything compiles once per machine (``cache=True``) and keeps IEEE semantics (no fastmath).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Activation codes (the engine maps torch modules to these).
IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID, GELU, GELU_TANH, SILU, ELU, SOFTPLUS, HARDTANH = range(11)
CROSS_ENTROPY, SQUARED_ERROR = 0, 1

BIG = 30.0
"""|exponent| above which a row's loss is recomputed from its logits instead of from the cached softmax."""
CHUNK = 16
"""Row ratios multiplied before one log: each is in ``[e^-30, e^30]``, so a product of 16 stays finite."""


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
def apply_activation(code: int, p0: float, p1: float, z: np.ndarray, a: np.ndarray) -> None:
    """``a = act(z)`` elementwise (flat arrays), with the engine's own formula."""
    for k in range(z.shape[0]):
        a[k] = act(code, p0, p1, z[k])


# ------------------------------------------------------------------------------------------ row losses


@njit(cache=True)
def row_stats(r: int, outs: tuple) -> None:
    """Recompute the cached softmax, log-sum-exp and loss of row ``r`` from its outputs ``o[r]``."""
    o, p, pt32, lse, lrow, y, t, loss_kind = outs
    c = o.shape[0]
    if loss_kind == SQUARED_ERROR:
        s = 0.0
        for m in range(c):
            e = o[m, r] - t[m, r]
            s += e * e
        lrow[r] = s
        return
    mx = o[0, r]
    for m in range(1, c):
        mx = max(mx, o[m, r])
    s = 0.0
    for m in range(c):
        s += math.exp(o[m, r] - mx)
    lse[r] = mx + math.log(s)
    for m in range(c):
        p[m, r] = math.exp(o[m, r] - lse[r])
        pt32[m, r] = p[m, r]
    lrow[r] = lse[r] - o[y[r], r]


@njit(cache=True)
def all_row_stats(outs: tuple) -> None:
    """:func:`row_stats` for every row."""
    for r in range(outs[0].shape[1]):
        row_stats(r, outs)


@njit(cache=True)
def row_loss(orow: np.ndarray, r: int, y: np.ndarray, t: np.ndarray, loss_kind: int) -> float:
    """The loss of row ``r`` were its outputs ``orow (C,)``, from scratch (max-shifted log-sum-exp)."""
    c = orow.shape[0]
    if loss_kind == SQUARED_ERROR:
        s = 0.0
        for m in range(c):
            e = orow[m] - t[m, r]
            s += e * e
        return s
    mx = orow[0]
    for m in range(1, c):
        mx = max(mx, orow[m])
    s = 0.0
    for m in range(c):
        s += math.exp(orow[m] - mx)
    return mx + math.log(s) - orow[y[r]]


@njit(cache=True)
def log_product(s: np.ndarray, count: int) -> float:
    """``sum(log(s[:count]))`` as logs of products of :data:`CHUNK` terms (each in ``[e^-30, e^30]``)."""
    total = 0.0
    prod = 1.0
    for idx in range(count):
        prod *= s[idx]
        if idx % CHUNK == CHUNK - 1:
            total += math.log(prod)
            prod = 1.0
    return total + math.log(prod)


# ------------------------------------------------------------------------------------------ the network


@njit(cache=True)
def forward_row_from(l: int, j: int, r: int, da: float, n: int, net: tuple, buf: np.ndarray,
                     store: bool) -> None:
    """Row ``r``'s outputs when unit ``j`` of hidden layer ``l`` changes by ``da``, into ``buf[0, :C]``.

    Layer ``l + 1`` takes the rank-1 change; the layers after it are recomputed. When ``l + 1`` is the
    output layer, ``buf[0]`` holds the *change* of the outputs instead. With ``store`` the new
    pre-activations and activations of the hidden layers after ``l`` are written into the caches.
    """
    widths, wts, w_off, b_off, zt, at, h_off, acts, actp = net
    num_layers = widths.shape[0] - 1
    cur = 0
    m = l + 1
    nout, nin = widths[m + 1], widths[m]
    for q in range(nout):
        w = wts[w_off[m] + q * nin + j]
        if m < num_layers - 1:
            idx = h_off[m] + q * n + r
            zq = zt[idx] + da * w
            buf[cur, q] = act(acts[m], actp[m, 0], actp[m, 1], zq)
            if store:
                zt[idx] = zq
                at[idx] = buf[cur, q]
        else:
            buf[cur, q] = da * w
    if m == num_layers - 1:
        return
    for m in range(l + 2, num_layers):
        nout, nin = widths[m + 1], widths[m]
        nxt = 1 - cur
        for q in range(nout):
            s = wts[b_off[m] + q]
            base = w_off[m] + q * nin
            for k in range(nin):
                s += wts[base + k] * buf[cur, k]
            if m < num_layers - 1:
                a = act(acts[m], actp[m, 0], actp[m, 1], s)
                if store:
                    idx = h_off[m] + q * n + r
                    zt[idx] = s
                    at[idx] = a
                buf[nxt, q] = a
            else:
                buf[nxt, q] = s
        cur = nxt
    if cur != 0:
        for q in range(widths[num_layers]):
            buf[0, q] = buf[1, q]


@njit(cache=True)
def input_csc(xt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The network input ``inp = (colptr, rows, vals, beta)`` of features ``xt (F, N)`` (one row per
    feature): ``beta[f]`` is the most common of 0, the feature's minimum and its maximum (ties keep the
    earlier, in that order) and the listed entries are the rows where the feature differs from it, in row
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


@njit(cache=True)
def input_column(layer: int, i: int, n: int, net: tuple, inp: tuple,
                 xcol: np.ndarray) -> float:
    """The input of weight ``W_layer[:, i]`` (``i < 0``: a bias) per row, into ``xcol (N,)``; returns the
    largest ``|input|``."""
    at, h_off = net[5], net[6]
    colptr, rows, vals, beta = inp
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


# ------------------------------------------------------------------------------------------ try, accept


@njit(cache=True)
def try_rows(layer: int, j: int, i: int, deltas: np.ndarray, out: np.ndarray, net: tuple,
             outs: tuple, inp: tuple, xcol: np.ndarray) -> None:
    """Change of the summed row loss, ``out[k]``, when ``W_layer[j, i]`` (``i < 0``: bias ``j``) changes by
    ``deltas[k]``, row by row: each changed row's outputs are recomputed from the changed unit on and its
    loss from scratch. The general case (deeper layers, squared error); the caches are only read."""
    widths, acts, actp, zt, at, h_off = net[0], net[7], net[8], net[4], net[5], net[6]
    o, lrow, y, t, loss_kind = outs[0], outs[4], outs[5], outs[6], outs[7]
    c, n = o.shape[0], o.shape[1]
    num_layers = widths.shape[0] - 1
    input_column(layer, i, n, net, inp, xcol)
    buf = np.empty((2, max(widths.max(), 1)))
    orow = np.empty(c)
    last = layer == num_layers - 1
    code, p0, p1 = acts[layer], actp[layer, 0], actp[layer, 1]
    base = 0 if last else h_off[layer] + j * n
    for k in range(deltas.shape[0]):
        total = 0.0
        for r in range(n):
            dz = deltas[k] * xcol[r]
            if dz == 0.0:
                continue
            if last:
                for q in range(c):
                    orow[q] = o[q, r]
                orow[j] += dz
            else:
                da = act(code, p0, p1, zt[base + r] + dz) - at[base + r]
                if da == 0.0:
                    continue
                forward_row_from(layer, j, r, da, n, net, buf, False)
                for q in range(c):
                    orow[q] = (o[q, r] + buf[0, q]) if layer == num_layers - 2 else buf[0, q]
            total += row_loss(orow, r, y, t, loss_kind) - lrow[r]
        out[k] = total


@njit(cache=True)
def apply_weight(layer: int, j: int, i: int, value: float, net: tuple, outs: tuple,
                 inp: tuple, xcol: np.ndarray) -> None:
    """Set ``W_layer[j, i]`` (``i < 0``: bias ``j``) to ``value`` and update the caches of every row the
    change touches: an output weight moves one logit (cross-entropy updates its softmax multiplicatively,
    ``p_c <- p_c exp(dz [c = j]) / s``, ``lse <- lse + log s``); a hidden weight's rows are recomputed from
    the changed unit on, and their loss from their outputs. (A last-hidden-layer weight under cross-entropy
    goes to :func:`gradfree.params.incremental_softmax.apply_rank1` instead.)"""
    widths, wts, w_off, b_off, zt, at, h_off, acts, actp = net
    o, p, pt32, lse, lrow, y, t, loss_kind = outs
    c, n = o.shape[0], o.shape[1]
    num_layers = widths.shape[0] - 1
    widx = b_off[layer] + j if i < 0 else w_off[layer] + j * widths[layer] + i
    delta = value - wts[widx]
    input_column(layer, i, n, net, inp, xcol)
    ce = loss_kind == CROSS_ENTROPY
    buf = np.empty((2, max(widths.max(), 1)))
    if layer == num_layers - 1:
        for r in range(n):
            dz = delta * xcol[r]
            if dz == 0.0:
                continue
            o[j, r] += dz
            if ce and abs(dz) <= BIG:
                ej = math.exp(dz)
                s = p[j, r] * ej
                for q in range(c):
                    if q != j:
                        s += p[q, r]
                inv = 1.0 / s
                for q in range(c):
                    p[q, r] *= (ej if q == j else 1.0) * inv
                    pt32[q, r] = p[q, r]
                lse[r] += math.log(s)
                lrow[r] = lse[r] - o[y[r], r]
            else:
                row_stats(r, outs)
        wts[widx] = value
        return
    code, p0, p1 = acts[layer], actp[layer, 0], actp[layer, 1]
    base = h_off[layer] + j * n
    rank1 = layer == num_layers - 2
    for r in range(n):
        dz = delta * xcol[r]
        if dz == 0.0:
            continue
        zn = zt[base + r] + dz
        an = act(code, p0, p1, zn)
        da = an - at[base + r]
        zt[base + r] = zn
        at[base + r] = an
        if da == 0.0:
            continue
        forward_row_from(layer, j, r, da, n, net, buf, True)
        for q in range(c):
            o[q, r] = (o[q, r] + buf[0, q]) if rank1 else buf[0, q]
        row_stats(r, outs)
    wts[widx] = value
