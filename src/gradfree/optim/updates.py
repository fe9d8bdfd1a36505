"""Update rules that consume a gradient (true or estimated), as pure per-tensor functions.

Following optax, how a gradient is guessed (an estimator) is separate from how it is used (these rules):
ZO-Adam is "Gaussian estimator + :func:`adam`". Each rule updates ``param`` in place from ``grad`` and the
per-parameter ``state`` dict it owns, reading its hyper-parameters from the param ``group``.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor


class UpdateRule(Protocol):
    """``rule(param, grad, state, group, index=None)``: apply one update in place.

    With ``index`` (int64 positions in ``param.view(-1)``) only those coordinates move and only their state
    changes: a coordinate-wise estimate (ZOO) measured nothing elsewhere, so e.g. Adam's moments and step
    counts there must stay as they were (Chen et al. 2017, Alg. 2: one step counter per coordinate).
    """

    def __call__(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any],
                 index: Tensor | None = None) -> None: ...


def sgd(param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any],
        index: Tensor | None = None) -> None:
    """SGD with optional (Nesterov) momentum and coupled L2 weight decay, as ``torch.optim.SGD``."""
    if index is not None:
        _at(sgd, param, grad, state, group, index, ("momentum_buffer",))
        return
    if group["weight_decay"]:
        grad = grad.add(param, alpha=group["weight_decay"])
    momentum = group["momentum"]
    if momentum:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = grad.clone()
        else:
            buf.mul_(momentum).add_(grad, alpha=1 - group["dampening"])
        grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
    param.add_(grad, alpha=-group["lr"])


def adam(param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any],
         index: Tensor | None = None) -> None:
    """Adam (Kingma & Ba 2015, Alg. 1); ``decoupled`` weight decay gives AdamW (Loshchilov & Hutter 2019).

    With ``index``, each coordinate keeps its own step count for the bias correction (ZOO's coordinate Adam,
    Chen et al. 2017, Alg. 2)."""
    if index is not None:
        _adam_at(param, grad, state, group, index)
        return
    beta1, beta2 = group["betas"]
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(param)
        state["exp_avg_sq"] = torch.zeros_like(param)
    state["step"] += 1
    wd = group["weight_decay"]
    if wd and group["decoupled"]:
        param.mul_(1 - group["lr"] * wd)
    elif wd:
        grad = grad.add(param, alpha=wd)
    state["exp_avg"].lerp_(grad, 1 - beta1)
    state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    step = state["step"]
    bias1 = 1 - beta1**step
    bias2 = 1 - beta2**step
    denom = (state["exp_avg_sq"] / bias2).sqrt_().add_(group["eps"])
    param.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / bias1)


def sign(param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any],
         index: Tensor | None = None) -> None:
    """Sign descent, optionally on a momentum average (signSGD / Signum, Bernstein et al. 2018);
    with an estimated gradient this is ZO-signSGD (Liu et al. 2019, ICLR)."""
    if index is not None:
        _at(sign, param, grad, state, group, index, ("momentum_buffer",))
        return
    if group["weight_decay"]:
        param.mul_(1 - group["lr"] * group["weight_decay"])
    momentum = group["momentum"]
    if momentum:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = torch.zeros_like(param)
        buf.mul_(momentum).add_(grad, alpha=1 - momentum)
        grad = buf
    param.add_(torch.sign(grad), alpha=-group["lr"])


def _at(rule: UpdateRule, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any],
        index: Tensor, buffers: tuple[str, ...]) -> None:
    """Apply ``rule`` to the coordinates ``index`` of ``param`` alone, with the slices of its ``buffers``."""
    flat = param.view(-1)
    sub_state = {k: v.view(-1)[index].clone() for k, v in state.items() if k in buffers}
    moved = flat[index].clone()
    rule(moved, grad.reshape(-1)[index], sub_state, group)
    flat[index] = moved
    for k, v in sub_state.items():
        if k not in state:
            state[k] = torch.zeros_like(param)
        state[k].view(-1)[index] = v


def _adam_at(param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any], index: Tensor) -> None:
    beta1, beta2 = group["betas"]
    if "coordinate_steps" not in state:
        state["coordinate_steps"] = torch.zeros_like(param)
        state.setdefault("exp_avg", torch.zeros_like(param))
        state.setdefault("exp_avg_sq", torch.zeros_like(param))
    flat, g = param.view(-1), grad.reshape(-1)[index]
    steps = state["coordinate_steps"].view(-1)
    m, v = state["exp_avg"].view(-1), state["exp_avg_sq"].view(-1)
    steps[index] += 1
    t = steps[index]
    wd = group["weight_decay"]
    w = flat[index]
    if wd and group["decoupled"]:
        w = w * (1 - group["lr"] * wd)
    elif wd:
        g = g + wd * w
    m[index] = m[index] * beta1 + (1 - beta1) * g
    v[index] = v[index] * beta2 + (1 - beta2) * g * g
    bias1, bias2 = 1 - beta1**t, 1 - beta2**t
    flat[index] = w - group["lr"] / bias1 * m[index] / ((v[index] / bias2).sqrt() + group["eps"])
