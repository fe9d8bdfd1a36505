"""ZO-SGD: a random-direction gradient estimate fed to SGD with optional momentum.

Reference: Ghadimi & Lan 2013, "Stochastic first- and zeroth-order methods for nonconvex stochastic
programming" (SIAM J. Optim.); Nesterov & Spokoiny 2017 for the Gaussian-smoothing estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradfree.optim import updates
from gradfree.optim.options import check
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER
from gradfree.optim.zeroth_order import Estimation, ZerothOrderOptimizer


@dataclass(frozen=True)
class ZOSGDOptions(Estimation):
    """ZO-SGD's options: ``lr, momentum, dampening, nesterov, weight_decay`` as ``torch.optim.SGD``, and the
    estimator settings of :class:`~gradfree.optim.zeroth_order.Estimation`."""

    lr: float = 1e-2
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.lr > 0 and 0 <= self.momentum < 1, "zo-sgd",
              f"need lr > 0 and 0 <= momentum < 1, got lr={self.lr}, momentum={self.momentum}")


@OPTIMIZERS.register("zo-sgd", summary="zeroth-order SGD (+momentum) on a Gaussian-direction estimate",
                     kind=ZEROTH_ORDER)
class ZOSGD(ZerothOrderOptimizer):
    """Zeroth-order SGD: ``ZOSGD(params, lr=1e-2, num_directions=20, ...)``; options in :class:`ZOSGDOptions`."""

    Options = ZOSGDOptions
    group_options = ("lr", "momentum", "dampening", "nesterov", "weight_decay")
    update_rule = staticmethod(updates.sgd)
