"""Any ask/tell strategy as a ``torch.optim`` optimizer: train an ``nn.Module`` with a population strategy.

One ``step(closure)`` is one generation::

    population = strategy.ask()                       # (P, D) flat parameter vectors
    losses = closure.batch(population, tensors)       # ONE batched call (or a loop over the plain closure)
    strategy.tell(losses)
    write strategy.mean into the parameters           # the search centre is what the model holds

so a step costs exactly ``popsize`` evaluations, all counted by the closure, and returns the mean of the
population's finite losses (no extra evaluation at the new centre is spent just to report a number). The
strategy never learns where its population was evaluated.

Every registered strategy (:data:`gradfree.strategies.STRATEGIES`) is registered in
:data:`gradfree.optim.OPTIMIZERS` under its own name ("open-es", "snes", "pgpe", "sep-cma", "ga", "cem"), and
the adapters add "nevergrad" and "pycma"; each takes ``lr``, ``popsize``, ``sigma``, ``seed`` and the
strategy's hyper-parameters as options, e.g.
``build_optimizer("sep-cma", model.parameters(), popsize=32, sigma=0.05)``.

Param groups and ``lr``: the strategy searches a vector ``u``; the parameters are ``x = anchor + s * u`` with
a per-coordinate scale ``s = group["lr"] / lr`` for strategies that have a step size of their own (``lr`` of
open-es and pgpe is passed to the strategy) and ``s = group["lr"]`` for the others (default 1). A group's
perturbations and moves are thus ``s`` times the strategy's, the same preconditioning as pycma's
``CMA_stds``; ``s = 1`` everywhere (the default) is the plain strategy, bit for bit, and ``lr = 0`` freezes a
group. When a scheduler changes a group's ``lr`` the anchor moves so that the parameters stay where they are.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.optim.base import Closure, batch_objective
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER
from gradfree.params.flat import FlatParams
from gradfree.strategies.base import STRATEGIES, Strategy

# Arguments of every strategy that the optimizer fills in itself (the rest are the strategy's hyper-parameters).
_COMMON = ("self", "num_dims", "popsize", "init_mean", "sigma", "seed")


def default_popsize(num_dims: int) -> int:
    """``4 + floor(3 ln D)`` (Hansen's CMA-ES default), rounded up to even so mirrored sampling works."""
    size = 4 + int(3 * math.log(num_dims))
    return size + size % 2


def strategy_options(cls: type[Strategy]) -> dict[str, inspect.Parameter]:
    """The hyper-parameters of strategy class ``cls`` beyond the common ones, by name (with defaults)."""
    params = inspect.signature(cls.__init__).parameters
    return {n: p for n, p in params.items() if n not in _COMMON and p.kind is inspect.Parameter.KEYWORD_ONLY}


def _sigma_default(cls: type[Strategy]) -> float:
    default = inspect.signature(cls.__init__).parameters["sigma"].default
    return float(default) if default is not inspect.Parameter.empty else 0.1


class StrategyOptimizer(torch.optim.Optimizer):
    """Trains the parameters of any module with an ask/tell population strategy; no gradients involved.

    Args:
        params: tensors or param groups, as for any ``torch.optim.Optimizer`` (one dtype and device).
        strategy: a name in :data:`STRATEGIES` or a :class:`Strategy` subclass (e.g. an adapter).
        lr: for strategies with a step size of their own (open-es, pgpe) their ``lr``; otherwise the default
            scale of the search space (1.0). A group's ``lr`` relative to it scales that group's search
            (see the module docstring); ``0`` freezes a group.
        popsize: members per generation (evaluations per step); default :func:`default_popsize`.
        sigma: the strategy's initial sampling scale (default: the strategy's own default).
        seed: seeds the strategy's generator; the global RNG is never used.
        **hyper: the strategy's other hyper-parameters (e.g. ``elite_frac`` for "cem").

    Attributes:
        strategy: the wrapped :class:`Strategy`; its ``mean`` (mapped through the group scales) is what the
            parameters hold after every step.
        last_losses: the population's losses of the last step ``(P,)``.

    The strategy is the source of truth: parameters changed outside ``step`` are overwritten by the next
    step's centre. ``state_dict()`` holds the strategy's full state (``Strategy.state_dict``: tensors and
    plain values), so a resumed run continues identically.
    """

    zeroth_order: ClassVar[bool] = True  # the trainer: no backward pass, give a BatchObjective closure

    def __init__(self, params: Iterable[Any], strategy: str | type[Strategy], *, lr: float | None = None,
                 popsize: int | None = None, sigma: float | None = None, seed: int = 0, **hyper: Any) -> None:
        cls = STRATEGIES.get(strategy) if isinstance(strategy, str) else strategy
        accepted = strategy_options(cls)
        unknown = sorted(set(hyper) - set(accepted) - {"lr"})
        if unknown:
            name = strategy if isinstance(strategy, str) else cls.__name__
            raise ConfigError(f"strategy {name!r} takes no option {', '.join(unknown)}; it takes: lr, popsize, "
                              f"sigma, seed{''.join(', ' + n for n in accepted if n != 'lr')}")
        self._own_lr = "lr" in accepted  # the strategy has a step size: lr goes to it, groups scale relative
        if lr is None:
            lr = float(accepted["lr"].default) if self._own_lr else 1.0
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"lr must be a finite number > 0, got {lr!r}")
        self._built = False
        super().__init__(params, {"lr": float(lr)})
        self._base_lr = float(lr)
        tensors = [p for g in self.param_groups for p in g["params"]]
        self._flat = FlatParams(None, params=tensors)
        if not self._flat.dtype.is_floating_point:
            raise ConfigError(f"StrategyOptimizer needs floating-point parameters, got {self._flat.dtype}")
        x0 = self._flat.get()
        num_dims = self._flat.num_dims
        popsize = default_popsize(num_dims) if popsize is None else popsize
        sigma = _sigma_default(cls) if sigma is None else sigma
        if self._own_lr:
            hyper["lr"] = float(lr)
        self.strategy_name = strategy if isinstance(strategy, str) else cls.__name__
        self.strategy: Strategy = cls(num_dims, popsize, init_mean=x0, sigma=sigma, seed=seed, **hyper)
        self._scales = self._group_scales()
        self._anchor = (1 - self._scales) * x0  # so that x0 = anchor + scales * u0 with u0 = x0
        self._identity = self._is_identity()
        self.last_losses: Tensor | None = None
        self._built = True

    # ---- the search-space map x = anchor + scales * u ------------------------------------------------
    def _group_scales(self) -> Tensor:
        parts = []
        for group in self.param_groups:
            lr = group["lr"]
            if not (isinstance(lr, int | float) and math.isfinite(lr) and lr >= 0):
                raise ConfigError(f"a param group's lr must be a finite number >= 0, got {lr!r}")
            scale = lr / self._base_lr if self._own_lr else float(lr)
            parts += [torch.full((p.numel(),), scale, dtype=self._flat.dtype, device=self._flat.device)
                      for p in group["params"]]
        return torch.cat(parts)

    def _is_identity(self) -> bool:
        return bool((self._scales == 1).all() and (self._anchor == 0).all())

    def _sync_scales(self) -> None:
        """Follow changed group learning rates (schedulers) without moving the parameters."""
        scales = self._group_scales()
        if torch.equal(scales, self._scales):
            return
        u = self.strategy.mean
        self._anchor = self._anchor + (self._scales - scales) * u
        self._scales = scales
        self._identity = self._is_identity()

    def to_params(self, u: Tensor) -> Tensor:
        """Map search vectors ``u`` (``(D,)`` or ``(P, D)``) to parameter vectors ``anchor + scales * u``."""
        return u if self._identity else self._anchor + self._scales * u

    @property
    def flat(self) -> FlatParams:
        """The flat view of every parameter this optimizer updates, in param-group order."""
        return self._flat

    # ---- torch.optim contract ------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Only while building: the strategy's dimension is fixed once it exists."""
        if getattr(self, "_built", False):
            raise ConfigError("a StrategyOptimizer searches a fixed set of parameters; build a new optimizer "
                              "to add a param group")
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor:  # type: ignore[override]
        """One generation: ask, score the whole population in one batched call, tell, deploy the centre.

        Returns:
            the mean of the population's finite losses (NaN when none is finite); spends ``popsize``
            evaluations of ``closure`` and no others.
        """
        if closure is None:
            raise ConfigError(f"{type(self).__name__}.step needs a closure that returns the loss")
        self._sync_scales()
        objective: Callable[[Tensor], Tensor] = batch_objective(closure, self._flat)
        population = self.strategy.ask()
        losses = objective(self.to_params(population))
        self.strategy.tell(losses)
        self._flat.set_(self.to_params(self.strategy.mean))
        self.last_losses = losses.detach()
        finite = losses[torch.isfinite(losses)]
        return finite.mean() if finite.numel() else torch.tensor(math.nan)

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim`` state plus the strategy's state and the search-space map."""
        sd = super().state_dict()
        sd["strategy"] = {"name": self.strategy_name, "state": self.strategy.state_dict(),
                          "scales": self._scales.clone(), "anchor": self._anchor.clone()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved into an optimizer built with the same options."""
        sd = dict(state_dict)
        extra = sd.pop("strategy", None)
        if extra is None:
            raise ConfigError("this state_dict has no strategy state: it was not saved by a StrategyOptimizer")
        if extra["name"] != self.strategy_name:
            raise ConfigError(f"state_dict is for strategy {extra['name']!r}, this optimizer runs "
                              f"{self.strategy_name!r}")
        super().load_state_dict(sd)
        self.strategy.load_state_dict(extra["state"])
        self._scales = extra["scales"].to(self._flat.device, self._flat.dtype)
        self._anchor = extra["anchor"].to(self._flat.device, self._flat.dtype)
        self._identity = self._is_identity()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.strategy!r})"


class StrategyFactory:
    """The registered factory of one strategy optimizer: ``factory(params, **options)``.

    Its signature (``inspect.signature``) lists the options, so :func:`gradfree.optim.build_optimizer`
    rejects a misspelt one with the list of valid ones and ``gradfree list`` can show them.
    """

    def __init__(self, name: str, cls: type[Strategy]) -> None:
        self.name, self.cls = name, cls
        hyper = strategy_options(cls)
        kw = inspect.Parameter.KEYWORD_ONLY
        lr_default = hyper["lr"].default if "lr" in hyper else 1.0
        common = [
            inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("lr", kw, default=lr_default, annotation=float),
            inspect.Parameter("popsize", kw, default=None, annotation="int | None"),
            inspect.Parameter("sigma", kw, default=_sigma_default(cls), annotation=float),
            inspect.Parameter("seed", kw, default=0, annotation=int),
        ]
        self.__signature__ = inspect.Signature(common + [p for n, p in hyper.items() if n != "lr"])
        self.__doc__ = f"Build a :class:`StrategyOptimizer` running {cls.__name__} (strategy {name!r})."

    def __call__(self, params: Any, **options: Any) -> StrategyOptimizer:
        accepted = list(self.__signature__.parameters)[1:]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ConfigError(f"optimizer {self.name!r} takes no option {', '.join(unknown)}; "
                              f"it takes: {', '.join(accepted)}")
        return StrategyOptimizer(params, self.cls, **options)


def register_strategy_optimizer(name: str, cls: type[Strategy], *, summary: str, requires: str | None = None) -> None:
    """Register strategy class ``cls`` as the zeroth-order optimizer ``name`` in :data:`OPTIMIZERS`.

    ``requires`` names the optional package the strategy imports when built (tag ``requires``), so tests and
    listings can tell an optimizer whose extra is not installed.
    """
    tags = {"requires": requires} if requires else {}
    OPTIMIZERS.add(name, StrategyFactory(name, cls), summary=summary, kind=ZEROTH_ORDER, **tags)


for _entry in STRATEGIES:
    register_strategy_optimizer(_entry.name, _entry.item, summary=f"{_entry.summary} [population strategy]")

# The adapters register themselves ("nevergrad", "pycma"); they import their libraries only when built.
import gradfree.strategies.cma_adapter  # noqa: E402,F401  (registration)
import gradfree.strategies.nevergrad_adapter  # noqa: E402,F401
