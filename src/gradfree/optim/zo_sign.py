"""ZO-SignSGD: the sign of a random-direction gradient estimate (optionally of its momentum average).

Reference: Liu, Chen, Chen & Hong 2019, "signSGD via Zeroth-Order Oracle" (ICLR). The sign makes the step
size independent of the estimate's scale, which is robust to the estimate's heavy variance.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gradfree.optim import updates
from gradfree.optim.base import ZerothOrderOptimizer
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER


@OPTIMIZERS.register("zo-sign", summary="zeroth-order signSGD (Liu et al. 2019), optional momentum",
                     kind=ZEROTH_ORDER)
class ZOSignSGD(ZerothOrderOptimizer):
    """Zeroth-order sign descent.

    Args:
        params: tensors or param groups.
        lr: step length per coordinate.
        momentum: average the estimates before taking the sign (0 disables).
        weight_decay: decoupled decay ``p *= 1 - lr * weight_decay``.
        **estimation: estimator settings of :class:`ZerothOrderOptimizer`.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 weight_decay: float = 0.0, **estimation: Any) -> None:
        if lr <= 0 or not 0 <= momentum < 1:
            raise ValueError(f"need lr > 0 and 0 <= momentum < 1, got lr={lr}, momentum={momentum}")
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}
        super().__init__(params, defaults, update_rule=updates.sign, **estimation)
