"""ZO-Adam: a random-direction gradient estimate fed to Adam (or AdamW with decoupled weight decay).

Reference: Chen et al. 2019, "ZO-AdaMM: Zeroth-Order Adaptive Momentum Method for Black-Box Optimization"
(NeurIPS); here with the standard Adam moments of Kingma & Ba 2015.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gradfree.optim import updates
from gradfree.optim.base import ZerothOrderOptimizer
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER


@OPTIMIZERS.register("zo-adam", summary="zeroth-order Adam on a Gaussian-direction estimate (ZO-AdaMM)",
                     kind=ZEROTH_ORDER)
class ZOAdam(ZerothOrderOptimizer):
    """Zeroth-order Adam.

    Args:
        params: tensors or param groups.
        lr, betas, eps, weight_decay: as ``torch.optim.Adam``; ``decoupled=True`` gives AdamW's decay.
        **estimation: estimator settings of :class:`ZerothOrderOptimizer`.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, decoupled: bool = False,
                 **estimation: Any) -> None:
        if lr <= 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"need lr > 0 and betas in [0, 1), got lr={lr}, betas={betas}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "decoupled": decoupled}
        super().__init__(params, defaults, update_rule=updates.adam, **estimation)
