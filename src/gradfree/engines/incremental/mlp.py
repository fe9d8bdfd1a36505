"""The numba incremental engine for plain MLPs: recompute only what a change of one weight touches.

A change ``delta`` of ``W_l[j, i]`` of a ``Linear`` layer changes one unit: its pre-activation ``z_l[:, j]``
moves by ``delta * a_{l-1}[:, i]``, nothing at all in rows where that input is zero, and the same amount in
every row where the network input has its common ("background") value — for standardised MNIST, the blank
pixel. :class:`MLPCoordinateEvaluator` keeps, for the current weights on the batch and in float64, every
layer's pre-activations and activations, the outputs, softmax and per-row losses, and the input in a CSC-like
form (:mod:`gradfree.engines.incremental.caches`). For a candidate value it recomputes the changed unit in the
touched rows, takes the rank-1 change ``da * W_{l+1}[:, j]`` of the next layer (recomputing smaller layers
after it), and updates the mean loss from the changed rows' losses; accepting a value updates the caches the
same way. The kernels are in :mod:`gradfree.engines.incremental.kernels`: ``rows`` (general rows,
accepting), ``softmax`` (the cross-entropy fast paths) and ``greedy_pass`` (which, while it stays on one unit,
defers the move the background rows share). ``Sequential`` CNNs, MLPs with
other losses and non-CPU devices go to :mod:`gradfree.engines.incremental.sequential`, anything else to the
reference evaluator: :func:`gradfree.engines.incremental.selection.incremental_evaluator` picks.

Reference: RSO asks exactly this question, for every weight in turn — R. Tripathi, B. Singh, "RSO: A
Gradient Free Sampling Based Approach For Training Deep Neural Networks", arXiv:2005.05955 (2020).
"""

from __future__ import annotations

import bisect

import numpy as np
import torch
from torch import Tensor, nn

from gradfree.engines.incremental import caches
from gradfree.errors import ConfigError
from gradfree.objective.coordinates import PassResult, check_pass
from gradfree.objective.population import LossFn
from gradfree.objective.row_loss import RowLoss, row_loss_kind
from gradfree.params.flat import FlatParams

__all__ = ["MLPCoordinateEvaluator", "mlp_layers"]


_ACTIVATIONS: dict[type[nn.Module], str] = {
    nn.ReLU: "RELU", nn.LeakyReLU: "LEAKY_RELU", nn.Tanh: "TANH", nn.Sigmoid: "SIGMOID", nn.GELU: "GELU",
    nn.SiLU: "SILU", nn.ELU: "ELU", nn.Softplus: "SOFTPLUS", nn.Hardtanh: "HARDTANH",
}


def _activation_spec(m: nn.Module) -> tuple[str, float, float]:
    """Kernel activation name and its two parameters for the torch activation module ``m``."""
    if isinstance(m, nn.LeakyReLU):
        return "LEAKY_RELU", float(m.negative_slope), 0.0
    if isinstance(m, nn.GELU):
        return ("GELU_TANH" if m.approximate == "tanh" else "GELU"), 0.0, 0.0
    if isinstance(m, nn.ELU):
        return "ELU", float(m.alpha), 0.0
    if isinstance(m, nn.Softplus):
        return "SOFTPLUS", float(m.beta), float(m.threshold)
    if isinstance(m, nn.Hardtanh):  # ReLU6 is a Hardtanh
        return "HARDTANH", float(m.min_val), float(m.max_val)
    return _ACTIVATIONS[type(m)], 0.0, 0.0


def mlp_layers(module: nn.Module) -> tuple[list[nn.Linear], list[tuple[str, float, float]], bool] | None:
    """The Linear layers of a plain MLP, the activation after each (``"IDENTITY"`` after the last) and
    whether the input is flattened first; ``None`` when ``module`` is not a ``Sequential`` of an optional
    leading ``Flatten``, ``Linear`` layers, at most one supported activation between two of them and
    ``Identity`` anywhere, ending with a ``Linear``."""
    if not isinstance(module, nn.Sequential):
        return None
    layers = [m for m in module if not isinstance(m, nn.Identity)]
    flatten = bool(layers) and isinstance(layers[0], nn.Flatten)
    if flatten:
        f = layers.pop(0)
        if (f.start_dim, f.end_dim) != (1, -1):
            return None
    if not layers or not isinstance(layers[-1], nn.Linear):
        return None
    linears: list[nn.Linear] = []
    acts: list[tuple[str, float, float]] = []
    for m in layers:
        if isinstance(m, nn.Linear):
            if len(linears) > len(acts):
                acts.append(("IDENTITY", 0.0, 0.0))  # two Linear layers in a row
            linears.append(m)
        elif type(m) in _ACTIVATIONS or isinstance(m, nn.Hardtanh):
            if len(linears) != len(acts) + 1:
                return None  # an activation first, or two in a row
            acts.append(_activation_spec(m))
        else:
            return None
    acts.append(("IDENTITY", 0.0, 0.0))
    return linears, acts, flatten


class MLPCoordinateEvaluator:
    """Incremental :class:`~gradfree.objective.coordinates.CoordinateEvaluator` for plain MLPs with a row loss.

    Args:
        flat: the parameters coordinates index into: weights and biases of the MLP's ``Linear`` layers.
        loss_fn: the loss; must be a :data:`RowLoss` (see :func:`row_loss_kind`).
        x, y: the batch (on the CPU).
        refresh_every: accepted changes after which every cache is recomputed from the weights, so that
            rounding in the incremental updates cannot build up over a long search (0: never).

    One evaluation is charged per candidate value (and one for the first :meth:`loss`, and for the first
    :meth:`loss` after a :meth:`set_value` without ``loss``), as for the reference evaluator, though an
    evaluation here costs a fraction of a forward pass. Losses are computed in float64 from the module's
    weights (small steps of a cross-entropy engine read a float32 copy of the softmax, exact to about 1e-8
    of the loss change, see :mod:`gradfree.engines.incremental.kernels.softmax`); they equal a forward pass of
    the module to its own rounding (about 1e-7 for float32). The module's parameters must change only through
    :meth:`set_value` while the evaluator is in use.

    Raises:
        ConfigError: when the module, parameters or loss are not supported (use
            :func:`~gradfree.engines.incremental.selection.coordinate_evaluator`, which falls back to an
            engine that is).
    """

    def __init__(self, flat: FlatParams, loss_fn: LossFn, x: Tensor, y: Tensor, *,
                 refresh_every: int = 10_000) -> None:
        from gradfree.engines.incremental.kernels import entry, rows

        self._entry, self._rows = entry, rows
        spec = mlp_layers(flat.module) if flat.module is not None else None
        if spec is None:
            raise ConfigError("not a plain MLP (Sequential of Flatten, Linear and activations)")
        linears, acts, flatten = spec
        if x.device.type != "cpu" or flat.device.type != "cpu":
            raise ConfigError("the numba engine runs on the CPU")
        if x.dtype != flat.dtype:
            raise ConfigError(f"inputs are {x.dtype} but the weights {flat.dtype}")  # the module itself would fail
        self.flat = flat
        self.linears = linears
        self.refresh_every = refresh_every
        self.num_dims = flat.num_dims
        self.evaluations = 0
        self.accepted = 0
        self._charge = True  # the next loss() call is an evaluation
        self._round32 = flat.dtype == torch.float32
        # Where each flat slot lives, (layer, is_bias), found by tensor identity.
        where: dict[int, tuple[int, bool]] = {}
        for layer, lin in enumerate(linears):
            where[id(lin.weight)] = (layer, False)
            if lin.bias is not None:
                where[id(lin.bias)] = (layer, True)
        missing = [s.name for s, t in zip(flat.slots, flat.tensors, strict=True) if id(t) not in where]
        if missing:
            raise ConfigError(f"parameters {missing} are not Linear weights or biases of the MLP")
        self._slot_where = [where[id(t)] for t in flat.tensors]
        self._offsets = [s.offset for s in flat.slots]
        self._offsets_np = np.asarray(self._offsets, dtype=np.int64)  # the same, for many indices at once
        self._slot_layer = np.asarray([w[0] for w in self._slot_where], dtype=np.int64)
        self._slot_bias = np.asarray([w[1] for w in self._slot_where], dtype=np.bool_)
        inputs = x.reshape(x.shape[0], -1) if flatten else x
        if inputs.ndim != 2 or inputs.shape[1] != linears[0].in_features:
            raise ConfigError(f"inputs of shape {tuple(x.shape)} do not fit the first Linear layer")
        cols = caches.input_columns(x, inputs)
        self._x, self._inp = cols.x64, cols.columns
        self._source = (loss_fn, x, y, caches.tensor_key(x), caches.tensor_key(y))
        self._snapshot = {id(t): t.detach().clone() for lin in linears for t in (lin.weight, lin.bias)
                          if t is not None}
        n, c = inputs.shape[0], linears[-1].out_features
        kind = row_loss_kind(loss_fn, (n, c), y)
        if kind is None:
            raise ConfigError("the loss is not a recognised mean over rows (cross-entropy or squared error)")
        self.loss_kind: RowLoss = kind
        ce = kind == "cross_entropy"
        self._norm = float(n) if ce else float(n * c)
        self._net = caches.build_net(linears, acts, n)
        # the same offsets as Python ints, for _locate (reading a numpy array per try costs about 0.1 us)
        self._w_off, self._b_off = self._net.w_off.tolist(), self._net.b_off.tolist()
        self._fan_in = self._net.widths.tolist()
        self._outs = caches.build_outputs(n, c, y, kind)
        self._workspace(2)
        self.refresh()

    def _workspace(self, k: int) -> None:
        """Scratch for up to ``k`` candidates per call, and the state as the kernels' entry points take it."""
        c, n = self._outs.o.shape
        self._work = caches.workspace(c, n, k)
        self._plain = self._entry.plain(self._net, self._outs, self._inp, self._work)

    def refresh(self) -> None:
        """Recompute every cache from the module's current weights (one float64 forward pass)."""
        self._sum = caches.refresh(self._net, self._outs, self.linears, self._x)

    def matches(self, flat: FlatParams, loss_fn: LossFn, x: Tensor, y: Tensor) -> bool:
        """Whether this evaluator answers for ``(flat, loss_fn, x, y)`` as they are now: the same objects,
        inputs unmodified, and every weight of the module equal to what the caches were computed from."""
        fn, x0, y0, xkey, ykey = self._source
        if flat is not self.flat or loss_fn is not fn or x is not x0 or y is not y0:
            return False
        if caches.tensor_key(x) != xkey or caches.tensor_key(y) != ykey:
            return False
        return all(torch.equal(t, self._snapshot[id(t)]) for lin in self.linears
                   for t in (lin.weight, lin.bias) if t is not None)

    def restart(self) -> None:
        """Charge the next :meth:`loss` again, as a freshly built evaluator would."""
        self._charge = True

    def _locate(self, index: int) -> tuple[int, int, int, int]:
        """``(layer, j, i, position in the packed weights)`` of flat ``index`` (``i = -1`` for a bias)."""
        if not 0 <= index < self.num_dims:
            raise IndexError(f"coordinate {index} out of range 0..{self.num_dims - 1}")
        k = bisect.bisect_right(self._offsets, index) - 1
        layer, is_bias = self._slot_where[k]
        local = index - self._offsets[k]
        if is_bias:
            return layer, local, -1, self._b_off[layer] + local
        j, i = divmod(local, self._fan_in[layer])
        return layer, j, i, self._w_off[layer] + local

    def loss(self) -> float:
        """Loss at the current parameters."""
        if self._charge:
            self.evaluations += 1
            self._charge = False
        return self._sum / self._norm

    def try_values(self, index: int, values: Tensor) -> Tensor:
        """Losses ``(K,)`` (float64) with coordinate ``index`` set to each of ``values (K,)``; nothing changes.

        Values are rounded to the parameters' dtype first, as writing them would; a non-finite value gets a
        NaN loss.
        """
        layer, j, i, pos = self._locate(index)
        # .numpy() directly where it may: detach() and cpu() cost a microsecond of a ~30 us call (and
        # device.type a quarter, against is_cpu)
        vals = values.numpy() if values.is_cpu and not values.requires_grad else values.detach().cpu().numpy()
        if vals.dtype != np.float32 and vals.dtype != np.float64:
            vals = vals.astype(np.float64)
        losses = np.empty(vals.shape[0])
        if vals.shape[0] > self._work.gathered.shape[0]:
            self._workspace(vals.shape[0])
        self._entry.try_values(layer, j, i, pos, vals, self._round32, self._sum, self._norm, losses, *self._plain)
        self.evaluations += int(vals.shape[0])
        return torch.from_numpy(losses)

    @torch.no_grad()
    def set_value(self, index: int, value: float, loss: float | None = None) -> None:
        """Write ``value`` into coordinate ``index`` and update the caches. ``loss`` (from
        :meth:`try_values`) only tells whether the next :meth:`loss` is charged; the cached value is used."""
        layer, j, i, _ = self._locate(index)
        k = bisect.bisect_right(self._offsets, index) - 1
        tensor = self.flat.tensors[k].view(-1)
        tensor[index - self._offsets[k]] = value
        stored = float(tensor[index - self._offsets[k]])  # rounded to the parameter's dtype
        self._snapshot[id(self.flat.tensors[k])].view(-1)[index - self._offsets[k]] = stored
        if self.loss_kind == "cross_entropy" and layer == len(self.linears) - 2:
            self._entry.apply_rank1(layer, j, i, stored, *self._plain)
        else:
            self._entry.apply_weight(layer, j, i, stored, *self._plain)
        self._sum = self._rows.row_sum(self._outs.lrow)
        self.accepted += 1
        if self.refresh_every > 0 and self.accepted % self.refresh_every == 0:
            self.refresh()
        if loss is None:
            self._charge = True

    def _locate_many(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                         np.ndarray]:
        """:meth:`_locate` of many flat indices at once, and the slot (flat tensor) of each."""
        slot = np.searchsorted(self._offsets_np, indices, side="right") - 1
        layer, bias = self._slot_layer[slot], self._slot_bias[slot]
        local = indices - self._offsets_np[slot]
        fan_in = self._net.widths[layer]
        j = np.where(bias, local, local // fan_in)
        i = np.where(bias, -1, local % fan_in)
        pos = np.where(bias, self._net.b_off[layer], self._net.w_off[layer]) + local
        return layer, j, i, pos, slot

    @torch.no_grad()
    def greedy_pass(self, indices: Tensor, candidates: Tensor, *, l2: float = 0.0,
                    keep_current: bool = True) -> PassResult:
        """See :meth:`~gradfree.objective.coordinates.CoordinateEvaluator.greedy_pass`: the whole pass is one
        compiled loop (:func:`gradfree.engines.incremental.kernels.greedy_pass.greedy_pass`), broken only where
        the caches are refreshed; its choices equal those of :meth:`try_values` and :meth:`set_value` calls, and
        its losses too: bit for bit, or to rounding (measured up to 4e-11 relative in the tests) where it
        deferred a unit's shared move."""
        idx = np.asarray(check_pass(indices, candidates, self.num_dims), dtype=np.int64)
        cands = candidates.detach().cpu().to(self.flat.dtype).to(torch.float64).contiguous().numpy()
        n, k = cands.shape
        layers, js, iis, poss, slots = self._locate_many(idx)
        losses = np.empty((n, k))
        choices = np.full(n, -1, dtype=np.int64)
        if k > self._work.gathered.shape[0]:
            self._workspace(k)
        rank1_layer = len(self.linears) - 2 if self.loss_kind == "cross_entropy" else -1
        done = 0
        while done < n:
            limit = self.refresh_every - self.accepted % self.refresh_every if self.refresh_every > 0 else n + 1
            start = done
            done, accepts, self._sum = self._entry.greedy_pass(
                start, layers, js, iis, poss, cands, keep_current, 0.5 * l2, self._round32, self._sum,
                self._norm, losses, choices, limit, rank1_layer, *self._plain)
            self._write(slice(start, done), idx, slots, cands, choices)
            self.accepted += accepts
            if self.refresh_every > 0 and accepts == limit:
                self.refresh()
        self.evaluations += n * k
        return PassResult(torch.from_numpy(choices), torch.from_numpy(losses))

    def _write(self, part: slice, idx: np.ndarray, slots: np.ndarray, cands: np.ndarray,
               choices: np.ndarray) -> None:
        """Write the values a pass chose for ``idx[part]`` into the module's tensors and the snapshot."""
        taken = np.nonzero(choices[part] >= 0)[0] + (part.start or 0)
        if taken.size == 0:
            return
        values = torch.from_numpy(cands[taken, choices[taken]])
        local = torch.from_numpy(idx[taken] - self._offsets_np[slots[taken]])
        for k in np.unique(slots[taken]).tolist():
            mine = torch.from_numpy(slots[taken] == k)
            tensor = self.flat.tensors[k]
            written = values[mine].to(tensor.dtype)
            tensor.view(-1)[local[mine]] = written
            self._snapshot[id(tensor)].view(-1)[local[mine]] = written
