"""Optimizers in the ``torch.optim`` mould: zeroth-order ones and the gradient baselines, in :data:`OPTIMIZERS`."""

from __future__ import annotations

from gradfree.optim import gradient  # noqa: F401  (registers the gradient baselines)
from gradfree.optim.base import GradientFreeOptimizer
from gradfree.optim.mezo import MeZO
from gradfree.optim.registry import OPTIMIZERS, build_optimizer, needs_gradient, optimizer_options
from gradfree.optim.zeroth_order import Estimation, ZerothOrderOptimizer
from gradfree.optim.zo_adam import ZOAdam
from gradfree.optim.zo_sgd import ZOSGD
from gradfree.optim.zo_sign import ZOSignSGD

__all__ = ["OPTIMIZERS", "Estimation", "GradientFreeOptimizer", "MeZO", "ZOAdam", "ZOSGD", "ZOSignSGD",
           "ZerothOrderOptimizer", "build_optimizer", "needs_gradient", "optimizer_options"]
