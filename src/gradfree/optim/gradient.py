"""The gradient baselines: torch.optim's own optimizers, registered so one harness runs them all."""

from __future__ import annotations

from typing import Any

import torch

from gradfree.optim.registry import GRADIENT, OPTIMIZERS


def _sgd(params: Any, lr: float = 0.1, momentum: float = 0.0, weight_decay: float = 0.0,
         nesterov: bool = False) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def _momentum(params: Any, lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 0.0,
              nesterov: bool = False) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def _adam(params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def _adamw(params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
           weight_decay: float = 1e-2) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def _rmsprop(params: Any, lr: float = 1e-3, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
             weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                               weight_decay=weight_decay)


OPTIMIZERS.add("sgd", _sgd, summary="backprop SGD (torch.optim.SGD)", kind=GRADIENT)
OPTIMIZERS.add("momentum", _momentum, summary="backprop SGD with momentum 0.9", kind=GRADIENT)
OPTIMIZERS.add("adam", _adam, summary="backprop Adam (torch.optim.Adam)", kind=GRADIENT)
OPTIMIZERS.add("adamw", _adamw, summary="backprop AdamW (torch.optim.AdamW)", kind=GRADIENT)
OPTIMIZERS.add("rmsprop", _rmsprop, summary="backprop RMSprop (torch.optim.RMSprop)", kind=GRADIENT)
