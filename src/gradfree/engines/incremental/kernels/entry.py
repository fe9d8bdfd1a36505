"""Numba entry points of the incremental MLP engine: what Python calls, with the state as plain tuples.

Every kernel reads its state by field name (:mod:`.state`). But numba's dispatcher types a named-tuple
argument on every call by writing its class and field names into the type's fingerprint: about 1.5 us per
named tuple, against 0.1 us for a plain tuple of the same arrays, so a try of a 784-32-10 MLP on 5,000 rows
(about 35 us, four state tuples) would pay about 6 us more for the names. So Python passes ``tuple(net)`` and the like
(:func:`plain`), and these wrappers rebuild the named tuples inside compiled code, where that costs nothing;
the kernels they call are unchanged, and so is every number they compute.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from gradfree.engines.incremental.kernels import greedy_pass as passes
from gradfree.engines.incremental.kernels import rows, softmax
from gradfree.engines.incremental.kernels.state import Inputs, Net, Outputs, Workspace

PlainState = tuple[tuple[np.ndarray, ...], tuple[np.ndarray | int, ...], tuple[np.ndarray, ...],
                   tuple[np.ndarray, ...]]
"""``(net, outs, inp, work)`` as plain tuples, in the order of their named tuples' fields."""


def plain(net: Net, outs: Outputs, inp: Inputs, work: Workspace) -> PlainState:
    """The state as the entry points take it: each named tuple as a plain tuple of its fields."""
    return tuple(net), tuple(outs), tuple(inp), tuple(work)


@njit(cache=True, error_model="numpy")
def all_row_stats(outs: tuple) -> None:
    """:func:`.rows.all_row_stats`."""
    rows.all_row_stats(Outputs(*outs))


@njit(cache=True, error_model="numpy")
def try_values(layer: int, j: int, i: int, pos: int, values: np.ndarray, round32: bool, total: float,
               norm: float, losses: np.ndarray, net: tuple, outs: tuple, inp: tuple, work: tuple) -> None:
    """:func:`.softmax.try_values`."""
    softmax.try_values(layer, j, i, pos, values, round32, total, norm, losses, Net(*net), Outputs(*outs),
                       Inputs(*inp), Workspace(*work))


@njit(cache=True, error_model="numpy")
def apply_rank1(layer: int, j: int, i: int, value: float, net: tuple, outs: tuple, inp: tuple,
                work: tuple) -> None:
    """:func:`.softmax.apply_rank1`."""
    softmax.apply_rank1(layer, j, i, value, Net(*net), Outputs(*outs), Inputs(*inp), Workspace(*work))


@njit(cache=True, error_model="numpy")
def apply_weight(layer: int, j: int, i: int, value: float, net: tuple, outs: tuple, inp: tuple,
                 work: tuple) -> None:
    """:func:`.rows.apply_weight`, with the first scratch row for the input column."""
    rows.apply_weight(layer, j, i, value, Net(*net), Outputs(*outs), Inputs(*inp), Workspace(*work).scratch[0])


@njit(cache=True, error_model="numpy")
def greedy_pass(start: int, layers: np.ndarray, js: np.ndarray, iis: np.ndarray, poss: np.ndarray,
                cands: np.ndarray, keep_current: bool, half_l2: float, round32: bool, total: float,
                norm: float, losses: np.ndarray, choices: np.ndarray, max_accepts: int, rank1_layer: int,
                net: tuple, outs: tuple, inp: tuple, work: tuple) -> tuple[int, int, float]:
    """:func:`.greedy_pass.greedy_pass`."""
    return passes.greedy_pass(start, layers, js, iis, poss, cands, keep_current, half_l2, round32, total, norm,
                              losses, choices, max_accepts, rank1_layer, Net(*net), Outputs(*outs),
                              Inputs(*inp), Workspace(*work))
