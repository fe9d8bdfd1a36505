"""Incremental single-weight evaluation for ``nn.Sequential`` CNNs (and MLPs with any loss), in torch.

A change of one weight of a ``Conv2d`` changes one output channel: ``z[:, co] += delta * window``, where the
window is the slice of the (padded) input channel ``ci`` that the kernel tap ``(kh, kw)`` reads at every
output position. :class:`SequentialCoordinateEvaluator` keeps the activations after every module of the
current weights on the batch, and for ``K`` candidate values carries just that channel (shape
``(K, N, 1, H, W)``) through the modules that act channel by channel (activations, pooling, flatten); the
next ``Conv2d`` or ``Linear`` adds the effect of the changed channel to its cached output (a one-channel
convolution or a rank-``H W`` product), and the modules after it run on the ``K`` candidate batches. A
``Linear`` weight is the same with a channel of one feature. The loss function is called on each
candidate's full output, so any loss works. Accepting a value recomputes the changed channel and everything
downstream exactly, so nothing drifts.

Supported modules (nested ``Sequential`` are flattened): ``Linear``, ``Conv2d`` (zeros padding given as
numbers, ``groups=1``), element-wise activations, ``MaxPool2d`` / ``AvgPool2d``, ``Flatten`` (default
dimensions), ``Identity``, and ``Dropout`` in eval mode.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.engines.incremental.caches import tensor_key
from gradfree.errors import ConfigError
from gradfree.objective.coordinates import PassResult, greedy_pass_by_tries
from gradfree.objective.population import _ELEMENTWISE, LossFn
from gradfree.objective.row_loss import row_loss_kind
from gradfree.params.flat import FlatParams

_CHANNELWISE = (*_ELEMENTWISE, nn.MaxPool2d, nn.AvgPool2d, nn.Identity)


def sequential_stages(module: nn.Module) -> list[nn.Module] | None:
    """The modules of ``module`` in order, nested ``Sequential`` flattened, or ``None`` when one of them is
    not supported (see the module docstring) or there is no ``Linear``/``Conv2d``."""
    if not isinstance(module, nn.Sequential):
        return None
    stages: list[nn.Module] = []
    for m in module:
        if isinstance(m, nn.Sequential):
            inner = sequential_stages(m)
            if inner is None:
                return None
            stages.extend(inner)
        elif isinstance(m, nn.Dropout) and not m.training:
            stages.append(nn.Identity())
        elif isinstance(m, nn.Conv2d):
            if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
                return None
            stages.append(m)
        elif isinstance(m, nn.MaxPool2d) and m.return_indices:
            return None
        elif isinstance(m, nn.Flatten):
            if (m.start_dim, m.end_dim) != (1, -1):
                return None
            stages.append(m)
        elif isinstance(m, (nn.Linear, *_CHANNELWISE)):
            stages.append(m)
        else:
            return None
    if not any(isinstance(m, (nn.Linear, nn.Conv2d)) for m in stages):
        return None
    return stages


@dataclass(frozen=True)
class _Where:
    stage: int
    is_bias: bool
    shape: torch.Size


class SequentialCoordinateEvaluator:
    """Incremental :class:`~gradfree.objective.coordinates.CoordinateEvaluator` for ``Sequential`` networks of
    ``Conv2d`` / ``Linear`` layers, pooling and activations, with any loss.

    Args:
        flat: the parameters coordinates index into: weights and biases of the ``Conv2d``/``Linear`` layers.
        loss_fn: ``(output, target) -> scalar``, called once per candidate on its whole output.
        x, y: the batch (on the module's device).
        max_elements: bound on the elements of one chunk of candidate activations (candidates are scored in
            chunks below it).

    One evaluation is charged per candidate value, as for the reference evaluator (and one for the first
    :meth:`loss`, and for the first :meth:`loss` after a :meth:`set_value` without ``loss``). Computed in the
    module's dtype: the losses equal a forward pass to its rounding. The module's parameters must change only
    through :meth:`set_value` while the evaluator is in use.

    Raises:
        ConfigError: when the module or parameters are not supported (use
            :func:`~gradfree.engines.incremental.selection.coordinate_evaluator`, which falls back to an
            engine that is).
    """

    def __init__(self, flat: FlatParams, loss_fn: LossFn, x: Tensor, y: Tensor, *,
                 max_elements: int = 2**24) -> None:
        stages = sequential_stages(flat.module) if flat.module is not None else None
        if stages is None:
            raise ConfigError("not a supported Sequential (Conv2d, Linear, pooling, activations, Flatten)")
        self.flat, self.loss_fn, self.x, self.y = flat, loss_fn, x, y
        self.stages = stages
        self.max_elements = max_elements
        self.num_dims = flat.num_dims
        self.evaluations = 0
        self._charge = True
        where: dict[int, _Where] = {}
        for s, m in enumerate(stages):
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                where[id(m.weight)] = _Where(s, False, m.weight.shape)
                if m.bias is not None:
                    where[id(m.bias)] = _Where(s, True, m.bias.shape)
        missing = [sl.name for sl, t in zip(flat.slots, flat.tensors, strict=True) if id(t) not in where]
        if missing:
            raise ConfigError(f"parameters {missing} are not weights or biases of the Sequential's layers")
        self._where = [where[id(t)] for t in flat.tensors]
        self._offsets = [sl.offset for sl in flat.slots]
        self._source = (loss_fn, x, y, tensor_key(x), tensor_key(y))
        self._params = list(flat.module.parameters())  # type: ignore[union-attr]
        self._snapshot = [p.detach().clone() for p in self._params]
        self._slot = {id(p): k for k, p in enumerate(self._params)}
        self.refresh()
        for s, m in enumerate(stages):  # the channel of a unit: dim 1 of (N, features) or (N, C, H, W)
            if (isinstance(m, nn.Linear) and self._h[s].ndim != 2) or (isinstance(m, nn.Conv2d)
                                                                     and self._h[s].ndim != 4):
                raise ConfigError(f"layer {s} ({type(m).__name__}) gets inputs of shape "
                                  f"{tuple(self._h[s].shape)}; only batched (N, F) / (N, C, H, W) are supported")
        self._row_kind = row_loss_kind(loss_fn, tuple(self._h[-1].shape), y)

    def matches(self, flat: FlatParams, loss_fn: LossFn, x: Tensor, y: Tensor) -> bool:
        """Whether this evaluator answers for ``(flat, loss_fn, x, y)`` as they are now: the same objects,
        inputs unmodified, and every parameter of the module equal to what the caches were computed from."""
        fn, x0, y0, xkey, ykey = self._source
        if flat is not self.flat or loss_fn is not fn or x is not x0 or y is not y0:
            return False
        if tensor_key(x) != xkey or tensor_key(y) != ykey:
            return False
        params = list(flat.module.parameters())  # type: ignore[union-attr]
        return len(params) == len(self._params) and all(
            p is q and torch.equal(p, s) for p, q, s in zip(params, self._params, self._snapshot, strict=True))

    def restart(self) -> None:
        """Charge the next :meth:`loss` again, as a freshly built evaluator would."""
        self._charge = True

    @torch.no_grad()
    def refresh(self, start: int = 0) -> None:
        """Recompute the cached activations from stage ``start`` on (all of them by default)."""
        if start == 0:
            self._h: list[Tensor] = [self.x]
        del self._h[start + 1 :]
        for m in self.stages[start:]:
            h = self._h[-1]
            # an in-place activation would overwrite the cached input it is given
            self._h.append(m(h.clone() if getattr(m, "inplace", False) else h))
        self._loss = float(self.loss_fn(self._h[-1], self.y))

    def _locate(self, index: int) -> tuple[int, bool, tuple[int, ...], Tensor]:
        """``(stage, is_bias, index inside the parameter, the parameter)`` of flat ``index``."""
        if not 0 <= index < self.num_dims:
            raise IndexError(f"coordinate {index} out of range 0..{self.num_dims - 1}")
        k = bisect.bisect_right(self._offsets, index) - 1
        w = self._where[k]
        rest, pos = index - self._offsets[k], []
        for size in reversed(w.shape):
            rest, i = divmod(rest, size)
            pos.append(i)
        return w.stage, w.is_bias, tuple(reversed(pos)), self.flat.tensors[k]

    def _window(self, stage: int, pos: tuple[int, ...]) -> Tensor:
        """The input that weight ``pos`` of stage ``stage`` multiplies, per row and output position:
        ``(N,)`` for a Linear, ``(N, Ho, Wo)`` for a Conv2d."""
        m, h = self.stages[stage], self._h[stage]
        if isinstance(m, nn.Linear):
            return h[:, pos[1]]
        assert isinstance(m, nn.Conv2d)
        _, ci, kh, kw = pos
        (ph, pw), (sh, sw), (dh, dw) = cast(tuple[int, int], m.padding), m.stride, m.dilation
        ho, wo = self._h[stage + 1].shape[-2:]
        xp = F.pad(h[:, ci], (pw, pw, ph, ph))
        return xp[:, kh * dh : kh * dh + sh * (ho - 1) + 1 : sh, kw * dw : kw * dw + sw * (wo - 1) + 1 : sw]

    def _outputs(self, stage: int, channel: int, new: Tensor) -> Tensor:
        """Outputs ``(K, N, ...)`` when channel ``channel`` of the output of stage ``stage`` becomes
        ``new (K, N, 1, ...)`` (the channel axis kept)."""
        k, n = new.shape[0], new.shape[1]
        lo, hi = channel, channel + 1
        s = stage + 1
        # carry the changed channels through the modules that act channel by channel
        while s < len(self.stages) and isinstance(self.stages[s], (*_CHANNELWISE, nn.Flatten)):
            m = self.stages[s]
            if isinstance(m, nn.Flatten):
                width = new[0, 0, 0].numel()
                lo, hi = lo * width, hi * width
                new = new.reshape(k, n, hi - lo)
            else:
                res = m(new.reshape(k * n, *new.shape[2:]))
                new = res.reshape(k, n, *res.shape[1:])
            s += 1
        if s == len(self.stages):  # the changed channels are outputs
            out = self._h[-1].unsqueeze(0).repeat(k, *([1] * self._h[-1].ndim))
            out[:, :, lo:hi] = new
            return out
        # the next layer adds the changed channels' effect to its cached output
        m = self.stages[s]
        change = (new - self._h[s][:, lo:hi].unsqueeze(0)).reshape(k * n, *new.shape[2:])
        if isinstance(m, nn.Linear):
            dense = self._h[s + 1].unsqueeze(0) + (change @ m.weight[:, lo:hi].t()).reshape(k, n, -1)
        else:
            assert isinstance(m, nn.Conv2d)
            effect = F.conv2d(change, m.weight[:, lo:hi], None, m.stride, m.padding, m.dilation)
            dense = self._h[s + 1].unsqueeze(0) + effect.reshape(k, n, *effect.shape[1:])
        h = dense.reshape(k * n, *dense.shape[2:])
        for m in self.stages[s + 1 :]:
            h = m(h)
        return h.reshape(k, n, *h.shape[1:])

    def loss(self) -> float:
        """Loss at the current parameters."""
        if self._charge:
            self.evaluations += 1
            self._charge = False
        return self._loss

    @torch.no_grad()
    def try_values(self, index: int, values: Tensor) -> Tensor:
        """Losses ``(K,)`` with coordinate ``index`` set to each of ``values (K,)``; nothing changes."""
        stage, is_bias, pos, param = self._locate(index)
        vals = values.detach().to(device=param.device, dtype=param.dtype)
        deltas = vals - param[pos]
        cached = self._h[stage + 1][:, pos[0]]  # the changed channel, (N, ...)
        window = None if is_bias else self._window(stage, pos)
        per = max(1, max(t.numel() for t in self._h) * 2)
        chunk = max(1, self.max_elements // per)
        losses: list[float] = []
        for d in deltas.split(chunk):
            shape = (-1,) + (1,) * cached.ndim
            new = cached.unsqueeze(0) + (d.view(shape) if window is None else d.view(shape) * window.unsqueeze(0))
            out = self._outputs(stage, pos[0], new.unsqueeze(2))
            losses.extend(self._losses(out))
        self.evaluations += int(values.shape[0])
        result = torch.tensor(losses, dtype=torch.float64)
        result[~torch.isfinite(vals.double().cpu())] = float("nan")
        return result

    def _losses(self, out: Tensor) -> list[float]:
        """The loss of each candidate's outputs ``out (K, N, ...)``: cross-entropy and squared error in one
        batched computation (torch's cross-entropy kernel is slow for few classes), any other loss per
        candidate."""
        if self._row_kind == "cross_entropy":
            top = out.amax(2, keepdim=True)
            lse = (out - top).exp().sum(2).log() + top[..., 0]
            picked = out.gather(2, self.y.view(1, -1, 1).expand(out.shape[0], -1, 1))[..., 0]
            return (lse - picked).mean(1).tolist()
        if self._row_kind == "mse":
            return (out - self.y).square().mean(dim=(1, 2)).tolist()
        return [float(self.loss_fn(o, self.y)) for o in out]

    @torch.no_grad()
    def set_value(self, index: int, value: float, loss: float | None = None) -> None:
        """Write ``value`` into coordinate ``index``; the changed channel and everything after it are
        recomputed exactly. ``loss`` only tells whether the next :meth:`loss` is charged."""
        stage, is_bias, pos, param = self._locate(index)
        param[pos] = value
        self._snapshot[self._slot[id(param)]][pos] = param[pos]
        m, h = self.stages[stage], self._h[stage]
        co = pos[0]
        if isinstance(m, nn.Linear):
            col = h @ m.weight[co]
        else:
            assert isinstance(m, nn.Conv2d)
            col = F.conv2d(h, m.weight[co : co + 1], None, m.stride, m.padding, m.dilation)[:, 0]
        if m.bias is not None:
            col = col + m.bias[co]
        self._h[stage + 1][:, co] = col
        self.refresh(stage + 1)
        if loss is None:
            self._charge = True

    def greedy_pass(self, indices: Tensor, candidates: Tensor, *, l2: float = 0.0,
                    keep_current: bool = True) -> PassResult:
        """See :meth:`~gradfree.objective.coordinates.CoordinateEvaluator.greedy_pass` (one try and one
        accept at a time)."""
        return greedy_pass_by_tries(self, self.flat, indices, candidates, l2=l2, keep_current=keep_current)
