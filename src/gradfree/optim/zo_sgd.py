"""ZO-SGD: a random-direction gradient estimate fed to SGD with optional momentum.

Reference: Ghadimi & Lan 2013, "Stochastic first- and zeroth-order methods for nonconvex stochastic
programming" (SIAM J. Optim.); Nesterov & Spokoiny 2017 for the Gaussian-smoothing estimate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gradfree.optim import updates
from gradfree.optim.base import ZerothOrderOptimizer
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER


@OPTIMIZERS.register("zo-sgd", summary="zeroth-order SGD (+momentum) on a Gaussian-direction estimate",
                     kind=ZEROTH_ORDER)
class ZOSGD(ZerothOrderOptimizer):
    """Zeroth-order SGD.

    Args:
        params: tensors or param groups.
        lr, momentum, dampening, nesterov, weight_decay: as ``torch.optim.SGD``.
        **estimation: estimator settings of :class:`ZerothOrderOptimizer` (``estimator``,
            ``num_directions``, ``smoothing``, ``difference``, ``antithetic``, ``seed`` ...).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, **estimation: Any) -> None:
        if lr <= 0 or not 0 <= momentum < 1:
            raise ValueError(f"need lr > 0 and 0 <= momentum < 1, got lr={lr}, momentum={momentum}")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "nesterov": nesterov,
                    "weight_decay": weight_decay}
        super().__init__(params, defaults, update_rule=updates.sgd, **estimation)
