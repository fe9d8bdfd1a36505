"""A flat-vector view of the parameters of any ``nn.Module``.

Zeroth-order methods and population strategies think in one vector ``x`` of ``D`` numbers; a module stores
many tensors. :class:`FlatParams` maps between the two: names, shapes and offsets of the selected
parameters, reading them as one vector and writing a vector back in place. Buffers (batch-norm statistics)
and unselected parameters are never touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradfree.errors import ConfigError


@dataclass(frozen=True)
class Slot:
    """Where one parameter lives in the flat vector."""

    name: str
    shape: torch.Size
    offset: int
    numel: int

    @property
    def stop(self) -> int:
        """End offset (exclusive)."""
        return self.offset + self.numel


class FlatParams:
    """Flat view of a subset of a module's parameters.

    Args:
        module: any ``nn.Module``; ``None`` when only the tensors are known (names are then positions).
        include: optional regular expressions; a parameter is selected when its qualified name (as in
            ``module.named_parameters()``) matches one of them with ``re.search``. ``None`` selects every
            parameter with ``requires_grad``. E.g. ``include=["^head\\."]`` selects only the head.
        params: alternatively, the parameter tensors themselves, in the order the vector should follow
            (e.g. an optimizer's param groups); mutually exclusive with ``include``.

    All selected parameters must share one dtype and device (the vector's).
    """

    def __init__(
        self,
        module: nn.Module | None,
        *,
        include: Iterable[str] | None = None,
        params: Iterable[Tensor] | None = None,
    ) -> None:
        if include is not None and params is not None:
            raise ConfigError("give either include= patterns or params=, not both")
        params = list(params) if params is not None else None
        if module is None and params is None:
            raise ConfigError("without a module, give the tensors as params=")
        # Without a module (an optimizer sees only tensors) the names are positions.
        named = (list(module.named_parameters()) if module is not None
                 else [(f"param{i}", p) for i, p in enumerate(params or [])])
        if params is not None:
            # Keep the caller's order: an optimizer's flat vector follows its param groups.
            name_of = {id(p): n for n, p in named}
            given = params
            missing = [i for i, p in enumerate(given) if id(p) not in name_of]
            if missing:
                raise ConfigError(f"params= tensors at positions {missing} are not parameters of the module")
            chosen = [(name_of[id(p)], p) for p in given]
        elif include is not None:
            patterns = [re.compile(p) for p in include]
            chosen = [(n, p) for n, p in named if any(r.search(n) for r in patterns)]
            if not chosen:
                names = ", ".join(n for n, _ in named[:8])
                raise ConfigError(f"no parameter matches include={list(include)!r}; names start: {names}")
        else:
            chosen = [(n, p) for n, p in named if p.requires_grad]
        if not chosen:
            raise ConfigError("the module has no parameters to optimise")
        dtypes = {p.dtype for _, p in chosen}
        devices = {p.device for _, p in chosen}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ConfigError(f"selected parameters mix dtypes {dtypes} or devices {devices}; select one kind")
        self.module = module
        self.tensors: list[Tensor] = [p for _, p in chosen]
        slots, offset = [], 0
        for n, p in chosen:
            slots.append(Slot(n, p.shape, offset, p.numel()))
            offset += p.numel()
        self.slots: list[Slot] = slots
        self.num_dims = offset
        self.dtype: torch.dtype = chosen[0][1].dtype
        self.device: torch.device = chosen[0][1].device

    @property
    def names(self) -> list[str]:
        """Qualified names of the selected parameters, in vector order."""
        return [s.name for s in self.slots]

    def get(self) -> Tensor:
        """A copy of the selected parameters as one vector, shape ``(D,)``."""
        with torch.no_grad():
            return torch.cat([p.detach().reshape(-1) for p in self.tensors])

    def set_(self, vector: Tensor) -> None:
        """Write ``vector`` (shape ``(D,)``) into the parameters in place."""
        self._check(vector)
        with torch.no_grad():
            for p, s in zip(self.tensors, self.slots, strict=True):
                p.copy_(vector[s.offset : s.stop].view(s.shape))

    def add_(self, vector: Tensor, *, alpha: float = 1.0) -> None:
        """``params += alpha * vector`` in place, without building a full copy of the parameters."""
        self._check(vector)
        with torch.no_grad():
            for p, s in zip(self.tensors, self.slots, strict=True):
                p.add_(vector[s.offset : s.stop].view(s.shape), alpha=alpha)

    def unflatten(self, vector: Tensor) -> dict[str, Tensor]:
        """Views of ``vector`` shaped like the parameters, keyed by name.

        Works on a batch too: a ``(..., D)`` input gives ``(..., *shape)`` views.
        """
        lead = vector.shape[:-1]
        return {s.name: vector[..., s.offset : s.stop].view(*lead, *s.shape) for s in self.slots}

    def split(self, vector: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        """Pairs ``(parameter, its slice of vector shaped like it)``."""
        for p, s in zip(self.tensors, self.slots, strict=True):
            yield p, vector[s.offset : s.stop].view(s.shape)

    def _check(self, vector: Tensor) -> None:
        if vector.shape != (self.num_dims,):
            raise ConfigError(f"expected a vector of shape ({self.num_dims},), got {tuple(vector.shape)}")

    def __repr__(self) -> str:
        return f"FlatParams({len(self.slots)} tensors, {self.num_dims} dims, {self.dtype}, {self.device})"
