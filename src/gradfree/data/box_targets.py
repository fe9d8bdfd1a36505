"""Detection targets: the boxes of each image (ragged) and each image's letterbox, so boxes map back.

A :class:`BoxTargets` is a :class:`~gradfree.data.ragged.Ragged` of ``(x1, y1, x2, y2)`` boxes in canvas
pixels (the letterboxed input the model sees) that also carries, per image, the
:class:`~gradfree.data.images.Letterbox` it was made with. Indexing (a mini-batch, a subset) and ``to``
keep both together, so a split's targets always know how to return to original pixels, where the metric
is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import torch
from torch import Tensor

from gradfree.data.images import Letterbox
from gradfree.data.ragged import Ragged
from gradfree.errors import ConfigError


@dataclass(frozen=True)
class BoxTargets(Ragged):
    """Boxes per image, ``values (M, 4)`` in canvas pixels, and ``frames (N, 6)``: each image's letterbox
    (:meth:`Letterbox.as_tensor`), float64 on the CPU."""

    frames: Tensor

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.values.ndim != 2 or self.values.shape[1] != 4:
            raise ConfigError(f"box targets need values of shape (M, 4), got {tuple(self.values.shape)}")
        if tuple(self.frames.shape) != (len(self), 6) or self.frames.device.type != "cpu":
            raise ConfigError(f"box targets need one letterbox row (6 numbers, on the CPU) per image: "
                              f"{len(self)} images, frames of shape {tuple(self.frames.shape)}")

    @classmethod
    def pack(cls, rows: Sequence[Tensor], frames: Sequence[Letterbox] | Tensor) -> BoxTargets:
        """From per-image boxes ``(k_i, 4)`` and per-image letterboxes."""
        packed = Ragged.from_rows(rows, item_shape=(4,))
        table = frames if isinstance(frames, Tensor) else (
            torch.stack([f.as_tensor() for f in frames]) if frames else torch.zeros(0, 6, dtype=torch.float64))
        return cls(packed.values, packed.offsets, table.to(torch.float64))

    @overload
    def __getitem__(self, index: int) -> Tensor: ...

    @overload
    def __getitem__(self, index: slice | Tensor) -> BoxTargets: ...

    def __getitem__(self, index: int | slice | Tensor) -> Tensor | BoxTargets:
        """Image ``index``'s boxes; or images ``index`` (a slice or an index tensor) with their letterboxes."""
        if isinstance(index, int):
            return super().__getitem__(index)
        gathered = super().__getitem__(index)
        rows = torch.arange(len(self))[index] if isinstance(index, slice) else index.detach().to("cpu").long()
        return BoxTargets(gathered.values, gathered.offsets, self.frames[rows.reshape(-1)])

    def letterbox(self, i: int) -> Letterbox:
        """The letterbox of image ``i``."""
        return Letterbox.from_tensor(self.frames[i])

    def to(self, device: torch.device | str) -> BoxTargets:
        """The same targets with the boxes on ``device`` (offsets and frames stay on the CPU)."""
        return BoxTargets(self.values.to(device), self.offsets, self.frames)

    def with_values(self, values: Tensor) -> BoxTargets:
        """The same images and letterboxes over new boxes (as many), e.g. after a flip."""
        if values.shape[0] != self.values.shape[0]:
            raise ConfigError(f"expected {self.values.shape[0]} values, got {values.shape[0]}")
        return BoxTargets(values, self.offsets, self.frames)

    def with_rows(self, rows: Sequence[Tensor]) -> BoxTargets:
        """The same images and letterboxes with new boxes per image (any number each), e.g. after a crop."""
        if len(rows) != len(self):
            raise ConfigError(f"expected boxes for {len(self)} images, got {len(rows)}")
        packed = Ragged.from_rows([r.to(self.values.device) for r in rows], item_shape=(4,),
                                  dtype=self.values.dtype)
        return BoxTargets(packed.values.to(self.values.device), packed.offsets, self.frames)

    def original(self, i: int) -> Tensor:
        """Image ``i``'s boxes in its original pixels."""
        return self.letterbox(i).to_original(self[i], clip=False)
