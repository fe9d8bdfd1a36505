"""The state the incremental MLP kernels share, as named tuples, and the codes stored in it.

The engine (:class:`~gradfree.engines.incremental.mlp.MLPCoordinateEvaluator`) keeps, for the current weights
of a ``Linear``/activation stack on one batch of ``N`` rows, everything in float64 unless said otherwise, in
four tuples that every kernel takes: :class:`Net` (weights and hidden layers), :class:`Outputs` (logits,
softmax, row losses, targets), :class:`Inputs` (the network input by feature) and :class:`Workspace`
(scratch). :mod:`gradfree.engines.incremental.caches` builds and refreshes them.

They are ``typing.NamedTuple`` so that the kernels read fields by name: numba compiles a named tuple of
arrays to the same record a plain tuple gives (a field is resolved at compile time), so inside compiled code
naming costs nothing. Typing one at a call from Python does cost (about 1.5 us each), so Python calls go
through :mod:`.entry`, which passes them as plain tuples. This module imports no numba.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Activation codes (the engine maps torch modules to these; :func:`.activations.act` computes them).
IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID, GELU, GELU_TANH, SILU, ELU, SOFTPLUS, HARDTANH = range(11)
ACTIVATION_CODES = {"IDENTITY": IDENTITY, "RELU": RELU, "LEAKY_RELU": LEAKY_RELU, "TANH": TANH,
                    "SIGMOID": SIGMOID, "GELU": GELU, "GELU_TANH": GELU_TANH, "SILU": SILU, "ELU": ELU,
                    "SOFTPLUS": SOFTPLUS, "HARDTANH": HARDTANH}
"""Each activation code by the name the engine gives it."""

# Row-loss codes (:attr:`Outputs.loss_kind`).
CROSS_ENTROPY, SQUARED_ERROR = 0, 1

BIG = 30.0
"""|exponent| above which a row's loss is recomputed from its logits instead of from the cached softmax."""
CHUNK = 16
"""Row ratios multiplied before one log: each is in ``[e^-30, e^30]``, so a product of 16 stays finite."""


class Net(NamedTuple):
    """The network: its weights and, per hidden layer (every ``Linear`` but the last), the pre-activations and
    activations of the batch, unit-major (a weight change reads one unit over many rows).

    ``L`` is the number of ``Linear`` layers; ``W_l`` is ``(widths[l + 1], widths[l])``.
    """

    widths: np.ndarray
    """``(L + 1,)`` int64: the input width, then every layer's output width."""
    weights: np.ndarray
    """All weights and biases packed, float64: ``W_l[j, i]`` at ``w_off[l] + j * widths[l] + i``."""
    w_off: np.ndarray
    """``(L,)`` int64: where ``W_l`` starts in :attr:`weights`."""
    b_off: np.ndarray
    """``(L,)`` int64: where ``b_l`` starts in :attr:`weights` (zeros for a layer without bias)."""
    zt: np.ndarray
    """Hidden pre-activations, flat, unit-major ("transposed"): ``z_l[r, j]`` at ``h_off[l] + j * N + r``."""
    at: np.ndarray
    """Hidden activations, laid out as :attr:`zt`."""
    h_off: np.ndarray
    """``(L,)`` int64: where hidden layer ``l`` starts in :attr:`zt` and :attr:`at` (the last entry unused)."""
    act_code: np.ndarray
    """``(L,)`` int64: the activation code after each layer (:data:`IDENTITY` after the last)."""
    act_par: np.ndarray
    """``(L, 2)`` float64: each activation's two parameters (slope, alpha, beta/threshold, min/max; else 0)."""


class Outputs(NamedTuple):
    """The output side, class-major so that loops over rows vectorise. For squared error the softmax fields
    have no rows (shape ``(C, 0)``); for cross-entropy :attr:`t` has none."""

    o: np.ndarray
    """``(C, N)``: the outputs (logits)."""
    p: np.ndarray
    """``(C, N)``: the softmax of :attr:`o` (cross-entropy)."""
    p32: np.ndarray
    """``(C, N)`` float32: a copy of :attr:`p` that the small-step fast paths stream through (half the memory)."""
    lrow: np.ndarray
    """``(N,)``: each row's loss: ``logsumexp(o[:, r]) - o[y_r, r]``, or ``sum_c (o[c, r] - t[c, r])^2``. An
    accept of a cross-entropy engine moves it by ``log s_r`` less the change of the logit of ``y_r`` (no
    log-sum-exp is kept: a pass over every row fewer)."""
    y: np.ndarray
    """``(N,)`` int32: the class of each row (cross-entropy; empty otherwise)."""
    t: np.ndarray
    """``(C, N)``: the float targets (squared error; ``(C, 0)`` otherwise)."""
    loss_kind: int
    """:data:`CROSS_ENTROPY` or :data:`SQUARED_ERROR`."""


class Inputs(NamedTuple):
    """The network input per feature in a CSC-like form (built by :func:`.inputs.input_csc`)."""

    colptr: np.ndarray
    """``(F + 1,)`` int64: feature ``i``'s entries are ``rows/vals[colptr[i]:colptr[i + 1]]``."""
    rows: np.ndarray
    """int32: the rows where the feature differs from :attr:`beta`, ascending within a feature."""
    vals: np.ndarray
    """float64: the feature's values in those rows."""
    beta: np.ndarray
    """``(F,)``: each feature's "background" value, the one every unlisted row has (for standardised images,
    the blank pixel). Any choice is exact; a common one makes evaluations cheap."""


class Workspace(NamedTuple):
    """Scratch of the try and accept kernels for up to ``K`` candidates per call (contents undefined between
    calls, except :attr:`mark` and :attr:`wy`)."""

    scratch: np.ndarray
    """``(C + 1 + 2K, N)`` float64, ``K >= 2``: gathered softmax columns, one temporary row, and per candidate a
    row of ratios and a row of changes (an accept uses the three rows after the first ``C`` as temporaries)."""
    mark: np.ndarray
    """``(N,)`` uint8: rows with their own input, marked during a call; all zeros between calls."""
    gathered: np.ndarray
    """``(K, N)`` int32: per candidate the rows with their own change."""
    wy: np.ndarray
    """``(N,)``: the output weight from a unit of the last hidden layer to each row's class, for the unit's
    output weights in :attr:`wy_key` (kept between calls)."""
    wy_key: np.ndarray
    """``(C,)``: the output weights :attr:`wy` was filled from (NaN: none), so that other weights (another
    unit's, or the same unit's after an accept) fill it again."""
    flags: np.ndarray
    """``(N`` rounded up to a multiple of 8``)`` uint8: per row, whether a background row's pre-activation lies
    where a shared move can take it across the kink (written by every try that uses it, read as 64-bit words
    so that the few flagged rows are found eight at a time; the padding stays 0)."""
