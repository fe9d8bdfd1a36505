"""ZO-SignSGD: the sign of a random-direction gradient estimate (optionally of its momentum average).

Reference: Liu, Chen, Chen & Hong 2019, "signSGD via Zeroth-Order Oracle" (ICLR). The sign makes the step
size independent of the estimate's scale, which is robust to the estimate's heavy variance.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradfree.optim import updates
from gradfree.optim.options import check
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER
from gradfree.optim.zeroth_order import Estimation, ZerothOrderOptimizer


@dataclass(frozen=True)
class ZOSignOptions(Estimation):
    """ZO-signSGD's options: ``lr`` (step per coordinate), ``momentum`` (average the estimates before the sign;
    0 disables), decoupled ``weight_decay`` (``p *= 1 - lr * weight_decay``), and the estimator settings."""

    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.lr > 0 and 0 <= self.momentum < 1, "zo-sign",
              f"need lr > 0 and 0 <= momentum < 1, got lr={self.lr}, momentum={self.momentum}")


@OPTIMIZERS.register("zo-sign", summary="zeroth-order signSGD (Liu et al. 2019), optional momentum",
                     kind=ZEROTH_ORDER)
class ZOSignSGD(ZerothOrderOptimizer):
    """Zeroth-order sign descent: ``ZOSignSGD(params, lr=1e-3, ...)``; options in :class:`ZOSignOptions`."""

    Options = ZOSignOptions
    group_options = ("lr", "momentum", "weight_decay")
    update_rule = staticmethod(updates.sign)
