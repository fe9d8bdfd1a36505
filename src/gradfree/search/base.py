"""The base of one-solution search methods: the ``torch.optim`` contract around a flat parameter vector.

A search method keeps one solution (the module's parameters) and replaces it with a better candidate when
one is found. This base does the bookkeeping every such method shares, so a method file holds only its
sampling and its acceptance rule:

* a flat view of the parameters in param-group order, and each coordinate's ``lr`` (a group with
  ``lr=0`` is frozen: its coordinates are never tried, so they cost no evaluation);
* a private ``torch.Generator`` (the global RNG is never seeded or consumed);
* the evaluations the method spent (``evaluations``), counted from the evaluators it used;
* ``state_dict()`` with the generator, the counters and the method's position, so a resumed run continues
  exactly where it was saved.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.params.flat import FlatParams


class SearchOptimizer(torch.optim.Optimizer):
    """Base of the search methods in :mod:`gradfree.search`.

    Args:
        params: tensors or param groups; every group needs ``lr >= 0``.
        defaults: per-group hyper-parameters (at least ``lr``).
        seed: seeds the optimizer's own ``torch.Generator``.

    Subclasses implement ``step`` and, for what they carry between steps, :meth:`_extra_state` and
    :meth:`_load_extra_state`.
    """

    zeroth_order: ClassVar[bool] = True  # the trainer gives a BatchObjective closure and runs no backward
    state_key: ClassVar[str] = "search"

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any], *, seed: int) -> None:
        super().__init__(params, defaults)
        for group in self.param_groups:
            if not group["lr"] >= 0:
                raise ConfigError(f"{type(self).__name__}: lr must be >= 0 in every group, got {group['lr']}")
        tensors = [p for g in self.param_groups for p in g["params"]]
        self._flat = FlatParams(None, params=tensors)
        self._generator = torch.Generator(device=self._flat.device)
        self._generator.manual_seed(seed)
        self.evaluations = 0

    @property
    def flat(self) -> FlatParams:
        """The flat view of every parameter this optimizer searches over, in param-group order."""
        return self._flat

    def coordinate_lr(self) -> Tensor:
        """Each coordinate's group ``lr``, shape ``(D,)``, in flat order."""
        parts = [torch.full((p.numel(),), float(g["lr"]), dtype=self._flat.dtype, device=self._flat.device)
                 for g in self.param_groups for p in g["params"]]
        return torch.cat(parts)

    def _extra_state(self) -> dict[str, Any]:
        """What the method carries between steps besides ``self.state`` (override)."""
        return {}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        """Restore :meth:`_extra_state` (override)."""

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim`` state plus the generator state, the evaluation count and the method's position."""
        sd = super().state_dict()
        sd[self.state_key] = {"generator": self._generator.get_state(), "evaluations": self.evaluations,
                              **self._extra_state()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        sd = dict(state_dict)
        extra = sd.pop(self.state_key, None)
        super().load_state_dict(sd)
        if extra is not None:
            self._generator.set_state(extra["generator"])
            self.evaluations = int(extra["evaluations"])
            self._load_extra_state(extra)
