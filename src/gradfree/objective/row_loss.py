"""Losses that are a plain mean over rows of a per-row loss, which incremental evaluation updates row by row.

When one weight changes, only some rows' outputs change; for such a loss the new mean is the old one with
those rows' losses replaced. :func:`row_loss_kind` recognises ``torch.nn.functional.cross_entropy`` and
``mse_loss`` (and ``nn.CrossEntropyLoss()`` / ``nn.MSELoss()`` with default options); a task's own wrapper
declares itself with :func:`mean_row_loss`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.objective.population import LossFn

RowLoss = Literal["cross_entropy", "mse"]
"""Losses that are a mean over rows of a per-row loss, which the incremental engines update row by row:
``"cross_entropy"`` (integer class targets) and ``"mse"`` (targets shaped like the outputs)."""

_F = TypeVar("_F", bound=Callable[..., Any])


def mean_row_loss(kind: RowLoss) -> Callable[[_F], _F]:
    """Declare that a loss function is the plain mean of ``kind`` over rows (so it can be updated row by row).

    ``torch.nn.functional.cross_entropy`` and ``mse_loss`` (and ``nn.CrossEntropyLoss()`` / ``nn.MSELoss()``
    with default options) are recognised without this; a task's own wrapper around them is not, and is then
    evaluated on the whole output each time. Usage::

        @mean_row_loss("cross_entropy")
        def loss_fn(output, target):
            return F.cross_entropy(output, target)
    """

    def mark(fn: _F) -> _F:
        fn.__gradfree_row_loss__ = kind  # type: ignore[attr-defined]
        return fn

    return mark


def row_loss_kind(loss_fn: LossFn, output_shape: tuple[int, ...], y: Tensor) -> RowLoss | None:
    """Which :data:`RowLoss` ``loss_fn`` is on outputs of ``output_shape (N, C)`` and targets ``y``, or ``None``
    when it is not one (or the targets need something the row-wise update does not do, such as ignored
    classes or broadcasting)."""
    kind: str | None = getattr(loss_fn, "__gradfree_row_loss__", None)
    if loss_fn is F.cross_entropy:
        kind = "cross_entropy"
    elif loss_fn is F.mse_loss:
        kind = "mse"
    elif type(loss_fn) is nn.CrossEntropyLoss:
        plain = (loss_fn.weight is None and loss_fn.reduction == "mean" and loss_fn.label_smoothing == 0.0)
        kind = "cross_entropy" if plain else None
    elif type(loss_fn) is nn.MSELoss:
        kind = "mse" if loss_fn.reduction == "mean" else None
    if len(output_shape) != 2:
        return None
    n, c = output_shape
    if kind == "cross_entropy":
        ok = (y.dtype == torch.int64 and tuple(y.shape) == (n,)
              and (n == 0 or (int(y.min()) >= 0 and int(y.max()) < c)))
        return "cross_entropy" if ok else None
    if kind == "mse":
        return "mse" if y.is_floating_point() and tuple(y.shape) == (n, c) else None
    return None
