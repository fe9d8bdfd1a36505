"""Ragged targets: a variable number of items per row (e.g. the boxes of each image), indexable like a tensor.

A :class:`Split`'s targets are either a tensor with one row per input or a :class:`Ragged`: every row holds
``values[offsets[i]:offsets[i + 1]]``. Indexing with an index tensor (a mini-batch) gathers the rows into a
new :class:`Ragged` — that is the collate function of ragged targets — so the trainer, the batch order and
the augmentation treat both kinds alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import torch
from torch import Tensor

from gradfree.errors import ConfigError


@dataclass(frozen=True)
class Ragged:
    """Rows of varying length over one values tensor.

    Attributes:
        values: ``(M, *item_shape)``, the items of all rows, row after row.
        offsets: ``(N + 1,)`` int64 on the CPU, non-decreasing, ``offsets[0] == 0`` and ``offsets[-1] == M``:
            row ``i`` is ``values[offsets[i]:offsets[i + 1]]``.
    """

    values: Tensor
    offsets: Tensor

    def __post_init__(self) -> None:
        off = self.offsets
        if off.ndim != 1 or off.dtype != torch.int64 or off.numel() == 0:
            raise ConfigError("Ragged offsets must be a non-empty 1-D int64 tensor (N + 1 entries)")
        if off.device.type != "cpu":
            raise ConfigError("Ragged offsets live on the CPU (they are only used for indexing)")
        if int(off[0]) != 0 or int(off[-1]) != self.values.shape[0] or bool((off[1:] < off[:-1]).any()):
            raise ConfigError(f"Ragged offsets must rise from 0 to the {self.values.shape[0]} values, got "
                              f"{off.tolist()[:8]}...")

    @classmethod
    def from_rows(cls, rows: Sequence[Tensor], *, item_shape: tuple[int, ...] = (),
                  dtype: torch.dtype = torch.float32) -> Ragged:
        """Pack per-row tensors ``(k_i, *item_shape)`` (``k_i`` may be 0) into one :class:`Ragged`."""
        counts = [int(r.shape[0]) for r in rows]
        offsets = torch.zeros(len(rows) + 1, dtype=torch.int64)
        if counts:
            offsets[1:] = torch.cumsum(torch.tensor(counts, dtype=torch.int64), 0)
        values = (torch.cat([r.reshape(-1, *item_shape).to(dtype) for r in rows]) if rows
                  else torch.empty(0, *item_shape, dtype=dtype))
        return cls(values, offsets)

    def __len__(self) -> int:
        return int(self.offsets.numel() - 1)

    @property
    def counts(self) -> Tensor:
        """Items per row, ``(N,)`` int64."""
        return self.offsets[1:] - self.offsets[:-1]

    @property
    def device(self) -> torch.device:
        """Where the values are."""
        return self.values.device

    @overload
    def __getitem__(self, index: int) -> Tensor: ...

    @overload
    def __getitem__(self, index: slice | Tensor) -> Ragged: ...

    def __getitem__(self, index: int | slice | Tensor) -> Tensor | Ragged:
        """Row ``index`` as a tensor; rows ``index`` (a slice or an index tensor) as a new :class:`Ragged`."""
        if isinstance(index, int):
            n = len(self)
            i = index + n if index < 0 else index
            if not 0 <= i < n:
                raise IndexError(f"row {index} out of range for {n} rows")
            return self.values[int(self.offsets[i]) : int(self.offsets[i + 1])]
        rows = torch.arange(len(self))[index] if isinstance(index, slice) else index.detach().to("cpu").long()
        rows = rows.reshape(-1)
        starts, counts = self.offsets[rows], self.counts[rows]
        offsets = torch.zeros(rows.numel() + 1, dtype=torch.int64)
        offsets[1:] = torch.cumsum(counts, 0)
        total = int(offsets[-1])
        # item k of the gathered rows comes from starts[row of k] + (k - offsets[row of k])
        owner = torch.repeat_interleave(torch.arange(rows.numel()), counts)
        source = starts[owner] + torch.arange(total) - offsets[:-1][owner]
        return Ragged(self.values[source.to(self.values.device)], offsets)

    def rows(self) -> list[Tensor]:
        """Every row as its own tensor (views of ``values``)."""
        return [self[i] for i in range(len(self))]

    def owners(self) -> Tensor:
        """For each item, the row it belongs to: ``(M,)`` int64 on the values' device."""
        return torch.repeat_interleave(torch.arange(len(self)), self.counts).to(self.values.device)

    def to(self, device: torch.device | str) -> Ragged:
        """The same rows with their values on ``device`` (offsets stay on the CPU)."""
        return Ragged(self.values.to(device), self.offsets)

    def with_values(self, values: Tensor) -> Ragged:
        """The same row structure over new ``values`` (as many items), e.g. boxes after a flip."""
        if values.shape[0] != self.values.shape[0]:
            raise ConfigError(f"expected {self.values.shape[0]} values, got {values.shape[0]}")
        return Ragged(values, self.offsets)


Targets = Tensor | Ragged
"""What a split holds as targets: one row per input, as a tensor (labels, regression targets) or ragged."""


def num_rows(targets: Targets) -> int:
    """Rows of ``targets`` (``len`` of a :class:`Ragged`, the first dimension of a tensor)."""
    return len(targets) if isinstance(targets, Ragged) else int(targets.shape[0])


def dense(targets: Targets) -> Tensor:
    """``targets`` as the tensor they are; a :class:`ConfigError` for ragged targets (a task that needs one
    target row per input was given, say, boxes)."""
    if isinstance(targets, Ragged):
        raise ConfigError("this task needs one target row per input, but the split holds ragged targets "
                          "(a variable number per input, e.g. boxes)")
    return targets
