"""Update rules that consume a gradient (true or estimated), as pure per-tensor functions.

Following optax, how a gradient is guessed (an estimator) is separate from how it is used (these rules):
ZO-Adam is "Gaussian estimator + :func:`adam`". Each rule updates ``param`` in place from ``grad`` and the
per-parameter ``state`` dict it owns, reading its hyper-parameters from the param ``group``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

UpdateRule = Callable[[Tensor, Tensor, dict[str, Any], dict[str, Any]], None]
"""``rule(param, grad, state, group)``: apply one update in place."""


def sgd(param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
    """SGD with optional (Nesterov) momentum and coupled L2 weight decay, as ``torch.optim.SGD``."""
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


def adam(param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
    """Adam (Kingma & Ba 2015, Alg. 1); ``decoupled`` weight decay gives AdamW (Loshchilov & Hutter 2019)."""
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


def sign(param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
    """Sign descent, optionally on a momentum average (signSGD / Signum, Bernstein et al. 2018);
    with an estimated gradient this is ZO-signSGD (Liu et al. 2019, ICLR)."""
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

