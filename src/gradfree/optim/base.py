"""The one base of the gradient-free optimizers: the ``torch.optim`` contract around a flat parameter vector.

Every gradient-free method (the zeroth-order optimizers, MeZO, the searches, the population strategies and
the hybrid) is a :class:`GradientFreeOptimizer`; a method file holds only its method. The base does what they
all share:

* **options, declared once**: the class's ``Options`` dataclass (see :mod:`gradfree.optim.options`) is built
  from the keyword arguments, checked, and kept as ``self.options``; the names in ``group_options`` become the
  per-group hyper-parameters (``torch.optim``'s ``defaults``), which param groups may override;
* **the flat view** of the parameters in param-group order (:class:`~gradfree.params.flat.FlatParams`);
* **a private ``torch.Generator``** seeded from ``options.seed`` (the global RNG is never seeded or consumed);
* **frozen means frozen**: tensors with ``requires_grad=False`` are left out of the param groups (as
  ``torch.optim`` effectively skips them: they never get a ``.grad``), so no method perturbs or moves them;
* **one ``step``**: the closure check, then for a plain ``torch.optim`` closure
  - *common random numbers*: every closure call of a step sees torch's RNG seeded the same way (a per-step
    seed derived from ``options.seed`` and the step count), so a dropout mask is the same for every point
    the step compares, and the caller's RNG is restored afterwards (:mod:`gradfree.objective.randomness`);
  - *batch-norm statistics*: restored after the step's evaluations, then moved once by one more closure call
    at the weights the step ended at (:func:`gradfree.objective.running_stats.kept_running_stats`);
  the trainer's closure does both itself (:class:`~gradfree.objective.closure.ManagedClosure`), and a closure
  with population or coordinate paths of its own is passed on as it is. Then the method's :meth:`_step`;
* **save and load of extra state**: ``state_dict()`` is torch's plus one entry, ``"gradfree"``, holding the
  generator, the step count and whatever the method returns from :meth:`_extra_state`; a resumed run
  continues exactly.

``step(closure)`` runs the closure under ``torch.no_grad()`` and never reads or writes ``.grad``. The closure
returns the loss at the current parameters, exactly as for ``torch.optim``; it may have further abilities
(:mod:`gradfree.objective.closure`) that a method uses when present.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.objective.closure import Closure, CoordinateClosure, PopulationClosure, is_managed
from gradfree.objective.randomness import Reseeder, same_randomness, step_seed
from gradfree.objective.running_stats import kept_running_stats
from gradfree.optim.options import build_options
from gradfree.params.flat import FlatParams

STATE_KEY = "gradfree"
"""The ``state_dict`` entry holding a gradient-free optimizer's own state."""


class GradientFreeOptimizer(torch.optim.Optimizer):
    """Base of every optimizer that trains from loss values alone.

    Args:
        params: tensors or param groups, as for any ``torch.optim.Optimizer`` (one dtype and device).
        **options: the fields of the class's ``Options`` dataclass.

    Class attributes a method sets:
        Options: the dataclass of its options (every option, with its default and checks).
        group_options: the option names that are per-group hyper-parameters (at least ``lr``).

    Attributes:
        options: the built ``Options``.
        zeroth_order: true: the trainer gives ``step`` a counting closure and runs no backward pass.
    """

    Options: ClassVar[type[Any]]
    group_options: ClassVar[tuple[str, ...]] = ("lr",)

    def __init__(self, params: Iterable[Any], **options: Any) -> None:
        self.options = build_options(self.options_class(), self.method_name(), options)
        defaults = {name: getattr(self.options, name) for name in self.group_options}
        super().__init__(params, defaults)
        frozen = 0
        for group in self.param_groups:
            kept = [p for p in group["params"] if p.requires_grad]
            frozen += len(group["params"]) - len(kept)
            group["params"] = kept
        self.param_groups = [g for g in self.param_groups if g["params"]]
        if not self.param_groups:
            raise ConfigError(f"{self.method_name()}: every parameter it was given is frozen (requires_grad=False); "
                              "nothing to optimise")
        self.frozen = frozen
        for group in self.param_groups:
            lr = group["lr"]
            if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr >= 0:
                raise ConfigError(f"{self.method_name()}: lr must be a number >= 0 in every param group, got {lr!r}")
        self._flat = FlatParams(None, params=[p for g in self.param_groups for p in g["params"]])
        self._generator = torch.Generator(device=self._flat.device)
        self._generator.manual_seed(int(getattr(self.options, "seed", 0)))
        self.steps = 0

    @property
    def zeroth_order(self) -> bool:
        """True: the next step needs only losses (:class:`~gradfree.optim.protocols.LossOnly`)."""
        return True

    def options_class(self) -> type[Any]:
        """The dataclass this optimizer's options are built into (the class's ``Options``)."""
        return type(self).Options

    def method_name(self) -> str:
        """The name errors use (the class name)."""
        return type(self).__name__

    @property
    def flat(self) -> FlatParams:
        """The flat view of every parameter this optimizer updates, in param-group order."""
        return self._flat

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor:  # type: ignore[override]
        """One step of the method with loss evaluations of ``closure`` (see the module docstring).

        Returns:
            the method's loss for the step (what it reports: usually the loss at the point it started from).
        """
        closure = self.require_closure(closure)
        self.steps += 1
        if is_managed(closure) or isinstance(closure, PopulationClosure | CoordinateClosure):
            # The trainer's closure keeps randomness and statistics itself; a closure with its own population
            # or coordinate paths evaluates its own way, and would lose them if wrapped.
            return self._step(closure)
        seed = step_seed(int(getattr(self.options, "seed", 0)), self.steps)
        reseed = Reseeder(seed)

        def same(inner: Closure = closure) -> Tensor:
            reseed()
            return inner()

        with same_randomness(seed):
            with kept_running_stats() as norms:
                loss = self._step(same)
            if norms:  # the statistics move once, from the weights the step ended at (one more evaluation)
                same()
        return loss

    @abstractmethod
    def _step(self, closure: Closure) -> Tensor:
        """The method's step: evaluate ``closure`` as often as the method does, update, return its loss."""

    def require_closure(self, closure: Closure | None) -> Closure:
        """``closure``, or a :class:`ConfigError` saying that this method needs one."""
        if closure is None:
            raise ConfigError(f"{self.method_name()}.step needs a closure that returns the loss")
        return closure

    def coordinate_lr(self) -> Tensor:
        """Each coordinate's group ``lr``, shape ``(D,)``, in flat order."""
        parts = [torch.full((p.numel(),), float(g["lr"]), dtype=self._flat.dtype, device=self._flat.device)
                 for g in self.param_groups for p in g["params"]]
        return torch.cat(parts)

    # ---- state ------------------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        """What the method carries between steps besides ``self.state`` (override): tensors, numbers,
        strings, lists and dicts only, so checkpoints load with ``weights_only=True``."""
        return {}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        """Restore :meth:`_extra_state` (override)."""

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim`` state plus the generator and the method's own state, under ``"gradfree"``."""
        sd = super().state_dict()
        sd[STATE_KEY] = {"generator": self._generator.get_state(), "steps": self.steps, **self._extra_state()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        sd = dict(state_dict)
        extra = sd.pop(STATE_KEY, None)
        if extra is None:
            raise ConfigError(f"this state_dict has no {STATE_KEY!r} entry: it was not saved by {self.method_name()}")
        super().load_state_dict(sd)
        self._generator.set_state(extra["generator"])
        self.steps = int(extra.get("steps", 0))
        self._load_extra_state(extra)
