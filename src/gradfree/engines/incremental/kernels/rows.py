"""Numba kernels of the incremental MLP engine: row losses, the general row-by-row try, and accepting a change.

The state they read and update is declared in :mod:`gradfree.engines.incremental.kernels.state`
(:class:`~.state.Net`, :class:`~.state.Outputs`, :class:`~.state.Inputs`); the cross-entropy fast paths are
in :mod:`gradfree.engines.incremental.kernels.softmax`.

A change ``delta`` of ``W_l[j, i]`` changes ``z_l[r, j]`` by ``dz = delta * a_{l-1}[r, i]`` (input 1 for a
bias): rows whose input is 0 do not change. A changed hidden unit changes ``z_{l+1}`` of its row by the
rank-1 term ``da * W_{l+1}[:, j]``; the layers after that are recomputed for the row (they are small).
Everything compiles once per machine (``cache=True``) and keeps IEEE semantics (no fastmath).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from gradfree.engines.incremental.kernels.activations import act
from gradfree.engines.incremental.kernels.inputs import input_column
from gradfree.engines.incremental.kernels.state import BIG, CHUNK, CROSS_ENTROPY, SQUARED_ERROR, Inputs, Net, Outputs

# ------------------------------------------------------------------------------------------ row losses


@njit(cache=True, error_model="numpy")
def row_stats(r: int, outs: Outputs) -> None:
    """Recompute the cached softmax and loss of row ``r`` from its outputs ``o[r]``."""
    o, p, p32, lrow, y, t = outs.o, outs.p, outs.p32, outs.lrow, outs.y, outs.t
    loss_kind = outs.loss_kind
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
    lse = mx + math.log(s)
    for m in range(c):
        p[m, r] = math.exp(o[m, r] - lse)
        p32[m, r] = p[m, r]
    lrow[r] = lse - o[y[r], r]


@njit(cache=True, error_model="numpy")
def all_row_stats(outs: Outputs) -> None:
    """:func:`row_stats` for every row."""
    for r in range(outs.o.shape[1]):
        row_stats(r, outs)


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def row_sum(lrow: np.ndarray) -> float:
    """The summed row loss, in one fixed order (every path of the engine sums the same way)."""
    total = 0.0
    for r in range(lrow.shape[0]):
        total += lrow[r]
    return total


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def forward_row_from(l: int, j: int, r: int, da: float, n: int, net: Net, buf: np.ndarray,
                     store: bool) -> None:
    """Row ``r``'s outputs when unit ``j`` of hidden layer ``l`` changes by ``da``, into ``buf[0, :C]``.

    Layer ``l + 1`` takes the rank-1 change; the layers after it are recomputed. When ``l + 1`` is the
    output layer, ``buf[0]`` holds the *change* of the outputs instead. With ``store`` the new
    pre-activations and activations of the hidden layers after ``l`` are written into the caches.
    """
    widths, weights, w_off, b_off = net.widths, net.weights, net.w_off, net.b_off
    zt, at, h_off, act_code, act_par = net.zt, net.at, net.h_off, net.act_code, net.act_par
    num_layers = widths.shape[0] - 1
    cur = 0
    m = l + 1
    nout, nin = widths[m + 1], widths[m]
    for q in range(nout):
        w = weights[w_off[m] + q * nin + j]
        if m < num_layers - 1:
            idx = h_off[m] + q * n + r
            zq = zt[idx] + da * w
            buf[cur, q] = act(act_code[m], act_par[m, 0], act_par[m, 1], zq)
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
            s = weights[b_off[m] + q]
            base = w_off[m] + q * nin
            for k in range(nin):
                s += weights[base + k] * buf[cur, k]
            if m < num_layers - 1:
                a = act(act_code[m], act_par[m, 0], act_par[m, 1], s)
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


# ------------------------------------------------------------------------------------------ try, accept


@njit(cache=True, error_model="numpy")
def try_rows(layer: int, j: int, i: int, deltas: np.ndarray, out: np.ndarray, net: Net, outs: Outputs,
             inp: Inputs, xcol: np.ndarray) -> None:
    """Change of the summed row loss, ``out[k]``, when ``W_layer[j, i]`` (``i < 0``: bias ``j``) changes by
    ``deltas[k]``, row by row: each changed row's outputs are recomputed from the changed unit on and its
    loss from scratch. The general case (deeper layers, squared error); the caches are only read."""
    widths, zt, at, h_off = net.widths, net.zt, net.at, net.h_off
    o, lrow, y, t, loss_kind = outs.o, outs.lrow, outs.y, outs.t, outs.loss_kind
    c, n = o.shape[0], o.shape[1]
    num_layers = widths.shape[0] - 1
    input_column(layer, i, n, net, inp, xcol)
    buf = np.empty((2, max(widths.max(), 1)))
    orow = np.empty(c)
    last = layer == num_layers - 1
    code, p0, p1 = net.act_code[layer], net.act_par[layer, 0], net.act_par[layer, 1]
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


@njit(cache=True, error_model="numpy")
def apply_weight(layer: int, j: int, i: int, value: float, net: Net, outs: Outputs, inp: Inputs,
                 xcol: np.ndarray) -> None:
    """Set ``W_layer[j, i]`` (``i < 0``: bias ``j``) to ``value`` and update the caches of every row the
    change touches: an output weight moves one logit (cross-entropy updates its softmax multiplicatively,
    ``p_c <- p_c exp(dz [c = j]) / s``, loss ``+ log s - dz [y = j]``); a hidden weight's rows are recomputed from
    the changed unit on, and their loss from their outputs. (A last-hidden-layer weight under cross-entropy
    goes to :func:`gradfree.engines.incremental.kernels.softmax.apply_rank1` instead.)"""
    widths, weights, w_off, b_off, zt, at, h_off = (net.widths, net.weights, net.w_off, net.b_off, net.zt,
                                                    net.at, net.h_off)
    o, p, p32, lrow, y = outs.o, outs.p, outs.p32, outs.lrow, outs.y
    c, n = o.shape[0], o.shape[1]
    num_layers = widths.shape[0] - 1
    widx = b_off[layer] + j if i < 0 else w_off[layer] + j * widths[layer] + i
    delta = value - weights[widx]
    input_column(layer, i, n, net, inp, xcol)
    ce = outs.loss_kind == CROSS_ENTROPY
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
                    p32[q, r] = p[q, r]
                lrow[r] += math.log(s) - (dz if y[r] == j else 0.0)
            else:
                row_stats(r, outs)
        weights[widx] = value
        return
    code, p0, p1 = net.act_code[layer], net.act_par[layer, 0], net.act_par[layer, 1]
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
    weights[widx] = value
