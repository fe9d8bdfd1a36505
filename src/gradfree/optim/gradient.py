"""The gradient baselines: torch.optim's own optimizers, registered so one harness runs them all.

Each is registered as a :class:`TorchBaseline`: its options declared once as a dataclass (with the defaults
the benchmarks use), built into the ``torch.optim`` class itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from gradfree.optim.options import build_options
from gradfree.optim.registry import GRADIENT, OPTIMIZERS


@dataclass(frozen=True)
class SGDOptions:
    """``torch.optim.SGD``'s options (plain SGD by default)."""

    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False


@dataclass(frozen=True)
class MomentumOptions(SGDOptions):
    """SGD with momentum 0.9."""

    lr: float = 0.05
    momentum: float = 0.9


@dataclass(frozen=True)
class AdamOptions:
    """``torch.optim.Adam``'s options."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0


@dataclass(frozen=True)
class AdamWOptions(AdamOptions):
    """``torch.optim.AdamW``'s options (decoupled weight decay 1e-2 by default)."""

    weight_decay: float = 1e-2


@dataclass(frozen=True)
class RMSpropOptions:
    """``torch.optim.RMSprop``'s options."""

    lr: float = 1e-3
    alpha: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0
    weight_decay: float = 0.0


class TorchBaseline:
    """The registered factory of one ``torch.optim`` optimizer: ``factory(params, **options)``.

    Args:
        name: the registered name (for error messages).
        optimizer: the ``torch.optim`` class.
        options: its ``Options`` dataclass.
    """

    def __init__(self, name: str, optimizer: type[torch.optim.Optimizer], options: type[Any]) -> None:
        self.name, self.optimizer, self.Options = name, optimizer, options

    def __call__(self, params: Any, **options: Any) -> torch.optim.Optimizer:
        built = build_options(self.Options, f"optimizer {self.name!r}", options)
        return self.optimizer(params, **asdict(built))


for _name, _cls, _options, _summary in (
    ("sgd", torch.optim.SGD, SGDOptions, "backprop SGD (torch.optim.SGD)"),
    ("momentum", torch.optim.SGD, MomentumOptions, "backprop SGD with momentum 0.9"),
    ("adam", torch.optim.Adam, AdamOptions, "backprop Adam (torch.optim.Adam)"),
    ("adamw", torch.optim.AdamW, AdamWOptions, "backprop AdamW (torch.optim.AdamW)"),
    ("rmsprop", torch.optim.RMSprop, RMSpropOptions, "backprop RMSprop (torch.optim.RMSprop)"),
):
    OPTIMIZERS.add(_name, TorchBaseline(_name, _cls, _options), summary=_summary, kind=GRADIENT)
