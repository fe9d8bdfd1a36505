"""ZO-Adam: a random-direction gradient estimate fed to Adam (or AdamW with decoupled weight decay).

Reference: Chen et al. 2019, "ZO-AdaMM: Zeroth-Order Adaptive Momentum Method for Black-Box Optimization"
(NeurIPS); here with the standard Adam moments of Kingma & Ba 2015.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradfree.optim import updates
from gradfree.optim.options import check
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER
from gradfree.optim.zeroth_order import Estimation, ZerothOrderOptimizer


@dataclass(frozen=True)
class ZOAdamOptions(Estimation):
    """ZO-Adam's options: ``lr, betas, eps, weight_decay`` as ``torch.optim.Adam`` (``decoupled=True`` gives
    AdamW's decay), and the estimator settings of :class:`~gradfree.optim.zeroth_order.Estimation`."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.lr > 0 and all(0 <= b < 1 for b in self.betas), "zo-adam",
              f"need lr > 0 and betas in [0, 1), got lr={self.lr}, betas={self.betas}")


@OPTIMIZERS.register("zo-adam", summary="zeroth-order Adam on a Gaussian-direction estimate (ZO-AdaMM)",
                     kind=ZEROTH_ORDER)
class ZOAdam(ZerothOrderOptimizer):
    """Zeroth-order Adam: ``ZOAdam(params, lr=1e-3, num_directions=20, ...)``; options in :class:`ZOAdamOptions`."""

    Options = ZOAdamOptions
    group_options = ("lr", "betas", "eps", "weight_decay", "decoupled")
    update_rule = staticmethod(updates.adam)
