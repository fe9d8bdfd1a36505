"""Every population strategy as a registered optimizer: the native strategies and the library adapters.

Importing this module registers, in :data:`gradfree.optim.OPTIMIZERS`, each strategy of
:data:`~gradfree.strategies.base.STRATEGIES` under its own name, and the adapters ``"pycma"`` and
``"nevergrad"`` (which import their libraries only when built). It sits above both the optimizer wrapper and
the adapters, so neither imports the other.
"""

from __future__ import annotations

from gradfree.strategies import STRATEGIES
from gradfree.strategies.adapters.cma import PyCMAStrategy
from gradfree.strategies.adapters.nevergrad import NevergradStrategy
from gradfree.strategies.optimizer import register_strategy_optimizer

for _entry in STRATEGIES:
    register_strategy_optimizer(_entry.name, _entry.item, summary=f"{_entry.summary} [population strategy]")

register_strategy_optimizer("pycma", PyCMAStrategy,
                            summary="pycma's CMA-ES, the reference implementation (diagonal=True: sep-CMA) "
                                    "[needs gradfree[cma]]", requires="cma")
register_strategy_optimizer("nevergrad", NevergradStrategy,
                            summary="any nevergrad optimizer by name (method=NGOpt, CMA, TwoPointsDE ...) "
                                    "[needs gradfree[nevergrad]]", requires="nevergrad")
