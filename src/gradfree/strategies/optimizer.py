"""Any ask/tell strategy as a ``torch.optim`` optimizer: train an ``nn.Module`` with a population strategy.

One ``step(closure)`` is one generation::

    population = strategy.ask()                       # (P, D) flat parameter vectors
    losses = closure.population(population, tensors)  # ONE batched call (or a loop over the plain closure)
    strategy.tell(losses)
    write strategy.mean into the parameters           # the search centre is what the model holds

or, with an evaluator (:meth:`StrategyOptimizer.use_evaluator`, e.g. a pool of Ray actors), the losses of the
generation on the trainer's batch of this step computed elsewhere and charged to the closure; so a step costs
exactly ``popsize`` evaluations, all counted by the closure, and returns the mean of the
population's finite losses (no extra evaluation at the new centre is spent just to report a number). The
strategy never learns where its population was evaluated.

Every registered strategy (:data:`gradfree.strategies.STRATEGIES`) is registered in
:data:`gradfree.optim.OPTIMIZERS` under its own name ("open-es", "snes", "pgpe", "sep-cma", "ga", "cem") by
:mod:`gradfree.strategies.methods`, which also registers the adapters "nevergrad" and "pycma"; each takes
``lr``, ``popsize``, ``sigma``, ``seed`` and the
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

import dataclasses
import functools
import inspect
import math
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.objective.closure import Closure, vector_objective
from gradfree.optim.base import GradientFreeOptimizer
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER
from gradfree.strategies.base import STRATEGIES, Strategy

# Arguments of every strategy that the optimizer fills in itself (the rest are the strategy's hyper-parameters).
_COMMON = ("self", "num_dims", "popsize", "init_mean", "sigma", "seed")


def default_popsize(num_dims: int) -> int:
    """``4 + floor(3 ln D)`` (Hansen's CMA-ES default), rounded up to even so mirrored sampling works."""
    size = 4 + int(3 * math.log(num_dims))
    return size + size % 2


def strategy_hyper(cls: type[Strategy]) -> dict[str, inspect.Parameter]:
    """The hyper-parameters of strategy class ``cls`` beyond the common ones, read from its explicit
    keyword-only signature (the one place a strategy declares them)."""
    params = inspect.signature(cls.__init__).parameters
    return {n: p for n, p in params.items() if n not in _COMMON and p.kind is inspect.Parameter.KEYWORD_ONLY}


def _sigma_default(cls: type[Strategy]) -> float:
    default = inspect.signature(cls.__init__).parameters["sigma"].default
    return float(default) if default is not inspect.Parameter.empty else 0.1


def _check_lr(options: Any) -> None:
    lr = options.lr
    if isinstance(lr, bool) or not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a finite number > 0, got {lr!r}")


@functools.cache
def strategy_options(cls: type[Strategy]) -> type[Any]:
    """The ``Options`` dataclass of a strategy as an optimizer: ``lr, popsize, sigma, seed`` and the strategy's
    hyper-parameters, with their defaults (built once per strategy class)."""
    hyper = strategy_hyper(cls)
    lr_default = hyper["lr"].default if "lr" in hyper else 1.0
    fields: list[tuple[str, Any, Any]] = [
        ("lr", float, dataclasses.field(default=lr_default)),
        ("popsize", "int | None", dataclasses.field(default=None)),
        ("sigma", float, dataclasses.field(default=_sigma_default(cls))),
        ("seed", int, dataclasses.field(default=0)),
    ]
    fields += [(n, Any, dataclasses.field(default=p.default)) for n, p in hyper.items() if n != "lr"]
    return dataclasses.make_dataclass(f"{cls.__name__}Options", fields, frozen=True,
                                      namespace={"__post_init__": _check_lr})


@runtime_checkable
class ChargedStep(Protocol):
    """A closure that names its batch by the trainer's step and takes losses computed elsewhere
    (:class:`~gradfree.objective.parameters.ParameterObjective`): what a remote evaluator needs."""

    step: int | None

    def charge(self, losses: Tensor) -> None:
        """Count ``losses`` (computed by someone else) as evaluations of this closure."""
        ...


class PopulationEvaluator(Protocol):
    """Scores a strategy's pending generation on the batch of a step, somewhere (e.g. a pool of Ray actors:
    :class:`~gradfree.distributed.ray_evaluator.RayEvaluator`)."""

    def evaluate(self, strategy: Strategy, *, step: int | None = None) -> Tensor:
        """Losses ``(P,)`` of the pending generation on the batch of ``step``."""
        ...


class StrategyOptimizer(GradientFreeOptimizer):
    """Trains the parameters of any module with an ask/tell population strategy; no gradients involved.

    Args:
        params: tensors or param groups, as for any ``torch.optim.Optimizer`` (one dtype and device).
        strategy: a name in :data:`STRATEGIES` or a :class:`Strategy` subclass (e.g. an adapter).
        **options: the fields of :func:`strategy_options` of the strategy:

            * ``lr``: for strategies with a step size of their own (open-es, pgpe) their ``lr``; otherwise the
              default scale of the search space (1.0). A group's ``lr`` relative to it scales that group's
              search (see the module docstring); ``0`` freezes a group.
            * ``popsize``: members per generation (evaluations per step); default :func:`default_popsize`.
            * ``sigma``: the strategy's initial sampling scale (default: the strategy's own default).
            * ``seed``: seeds the strategy's generator; the global RNG is never used.
            * the strategy's other hyper-parameters (e.g. ``elite_frac`` for "cem").

    Attributes:
        strategy: the wrapped :class:`Strategy`; its ``mean`` (mapped through the group scales) is what the
            parameters hold after every step.
        last_losses: the population's losses of the last step ``(P,)``.
        evaluator: where generations are scored (``None``: in this process, through the closure); see
            :meth:`use_evaluator`.

    The strategy is the source of truth: parameters changed outside ``step`` are overwritten by the next
    step's centre. ``state_dict()`` holds the strategy's full state (``Strategy.state_dict``: tensors and
    plain values), so a resumed run continues identically.
    """

    def __init__(self, params: Iterable[Any], strategy: str | type[Strategy], **options: Any) -> None:
        cls = STRATEGIES.get(strategy) if isinstance(strategy, str) else strategy
        self._strategy_cls = cls
        self.strategy_name = strategy if isinstance(strategy, str) else cls.__name__
        self._built = False
        super().__init__(params, **options)
        o = self.options
        if not self._flat.dtype.is_floating_point:
            raise ConfigError(f"StrategyOptimizer needs floating-point parameters, got {self._flat.dtype}")
        self._own_lr = "lr" in strategy_hyper(cls)  # the strategy has a step size: lr goes to it
        self._base_lr = float(o.lr)
        x0 = self._flat.get()
        num_dims = self._flat.num_dims
        popsize = default_popsize(num_dims) if o.popsize is None else o.popsize
        hyper = {n: getattr(o, n) for n in strategy_hyper(cls) if n != "lr"}
        if self._own_lr:
            hyper["lr"] = float(o.lr)
        self.strategy: Strategy = cls(num_dims, popsize, init_mean=x0, sigma=o.sigma, seed=o.seed, **hyper)
        self._scales = self._group_scales()
        self._anchor = (1 - self._scales) * x0  # so that x0 = anchor + scales * u0 with u0 = x0
        self._identity = self._is_identity()
        self.last_losses: Tensor | None = None
        self.evaluator: PopulationEvaluator | None = None
        self._built = True

    def options_class(self) -> type[Any]:
        """The strategy's options (:func:`strategy_options`)."""
        return strategy_options(self._strategy_cls)

    def method_name(self) -> str:
        """The strategy's name, for error messages."""
        return f"strategy {self.strategy_name!r}"

    def use_evaluator(self, evaluator: PopulationEvaluator | None) -> None:
        """Score generations on ``evaluator`` (``None``: in this process, through the closure).

        The closure each step gets must then be a :class:`ChargedStep` (the trainer's is): the evaluator is
        told the step, scores the generation on the same batch the trainer would, and the losses are charged
        to the closure. Members are written as they are, so every group must have the optimizer's ``lr``.
        """
        if evaluator is not None and not self._identity:
            raise ConfigError("a remote evaluator scores the strategy's vectors as parameters: give every param "
                              "group the optimizer's lr (no per-group scaling)")
        self.evaluator = evaluator

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

    # ---- torch.optim contract ------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Only while building: the strategy's dimension is fixed once it exists."""
        if getattr(self, "_built", False):
            raise ConfigError("a StrategyOptimizer searches a fixed set of parameters; build a new optimizer "
                              "to add a param group")
        super().add_param_group(param_group)

    @torch.no_grad()
    def _step(self, closure: Closure) -> Tensor:
        """One generation: ask, score the whole population in one batched call, tell, deploy the centre.

        Returns:
            the mean of the population's finite losses (NaN when none is finite); spends ``popsize``
            evaluations of ``closure`` and no others.
        """
        self._sync_scales()
        if self.evaluator is not None:
            if not isinstance(closure, ChargedStep):
                raise ConfigError("with an evaluator, step() needs the trainer's closure (it names the batch)")
            losses = self.evaluator.evaluate(self.strategy, step=closure.step).to(self._flat.dtype)
            closure.charge(losses)
        else:
            losses = vector_objective(closure, self._flat)(self.to_params(self.strategy.ask()))
        self.strategy.tell(losses)
        self._flat.set_(self.to_params(self.strategy.mean))
        self.last_losses = losses.detach()
        finite = losses[torch.isfinite(losses)]
        return finite.mean() if finite.numel() else torch.tensor(math.nan)

    def _extra_state(self) -> dict[str, Any]:
        return {"name": self.strategy_name, "state": self.strategy.state_dict(),
                "scales": self._scales.clone(), "anchor": self._anchor.clone()}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        if extra["name"] != self.strategy_name:
            raise ConfigError(f"state_dict is for strategy {extra['name']!r}, this optimizer runs "
                              f"{self.strategy_name!r}")
        self.strategy.load_state_dict(extra["state"])
        self._scales = extra["scales"].to(self._flat.device, self._flat.dtype)
        self._anchor = extra["anchor"].to(self._flat.device, self._flat.dtype)
        self._identity = self._is_identity()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.strategy!r})"


class StrategyFactory:
    """The registered factory of one strategy optimizer: ``factory(params, **options)``, its options the
    :func:`strategy_options` dataclass of the strategy."""

    def __init__(self, name: str, cls: type[Strategy]) -> None:
        self.name, self.cls = name, cls
        self.Options = strategy_options(cls)
        self.__doc__ = f"Build a :class:`StrategyOptimizer` running {cls.__name__} (strategy {name!r})."

    def __call__(self, params: Any, **options: Any) -> StrategyOptimizer:
        return StrategyOptimizer(params, self.cls, **options)


def register_strategy_optimizer(name: str, cls: type[Strategy], *, summary: str, requires: str | None = None) -> None:
    """Register strategy class ``cls`` as the zeroth-order optimizer ``name`` in :data:`OPTIMIZERS`.

    ``requires`` names the optional package the strategy imports when built (tag ``requires``), so tests and
    listings can tell an optimizer whose extra is not installed.
    """
    tags = {"requires": requires} if requires else {}
    OPTIMIZERS.add(name, StrategyFactory(name, cls), summary=summary, kind=ZEROTH_ORDER, **tags)
