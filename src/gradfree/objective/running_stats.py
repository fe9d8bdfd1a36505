"""Batch-norm running statistics under zeroth-order steps.

A zeroth-order step evaluates the model, in training mode, at many weight vectors the step may never take
(perturbations, population members, rejected candidates). Each of those forwards would move batch norm's
running mean and variance toward its own batch statistics, so the statistics used at evaluation time would
describe perturbations, weighted toward whichever was evaluated last. Backprop training moves them once per
step, from the weights it is at; :class:`RunningStats` does the same for zeroth-order steps: the statistics are
restored after the step's evaluations, then moved by one forward of the updated weights on the step's batch.

The trainer knows its module (:class:`RunningStats`). An optimizer called with a plain closure sees only
tensors, so :func:`kept_running_stats` finds the layers a block's forwards run through (a global forward
pre-hook, removed on exit) and restores their statistics on exit; the optimizer then moves them once with one
more call of the closure at the weights the step ended at, as the trainer does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _tracked_norms(module: nn.Module) -> list[nn.modules.batchnorm._NormBase]:
    return [m for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]


class RunningStats:
    """The running statistics of every normalisation layer of ``module`` that tracks them.

    Only layers in training mode matter (in eval mode a forward leaves the statistics alone); the check is
    made at each use, since the trainer switches modes around validation.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self._norms = _tracked_norms(module)

    def _buffers(self) -> list[Tensor]:
        return [buf for m in self._norms if m.training
                for name in _STATS if isinstance(buf := getattr(m, name, None), Tensor)]

    def __bool__(self) -> bool:
        """Whether a forward of ``module`` in its current mode would update any running statistics."""
        return bool(self._buffers())

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Restore the statistics on exit, whatever the forwards inside did to them (and on error too)."""
        buffers = self._buffers()
        saved = [b.clone() for b in buffers]
        try:
            yield
        finally:
            with torch.no_grad():
                for b, s in zip(buffers, saved, strict=True):
                    b.copy_(s)

    @torch.no_grad()
    def track(self, x: Tensor) -> Tensor:
        """One training-mode forward of the current weights on ``x``: the statistics move once, as in a
        backprop step. Returns the output (the caller charges the evaluation)."""
        return self.module(x)


@contextmanager
def kept_running_stats() -> Iterator[list[nn.Module]]:
    """Restore, on exit, the running statistics of every tracking normalisation layer in training mode that a
    forward inside the block ran through; yields the list of those layers (filled as the block runs).

    The statistics are saved the first time a layer runs, before its forward changes them.
    """
    seen: list[nn.Module] = []
    saved: dict[int, list[tuple[Tensor, Tensor]]] = {}

    def before(module: nn.Module, _args: Any) -> None:
        if (id(module) in saved or not isinstance(module, nn.modules.batchnorm._NormBase)
                or not module.track_running_stats or not module.training):
            return
        buffers = [b for name in _STATS if isinstance(b := getattr(module, name, None), Tensor)]
        saved[id(module)] = [(b, b.clone()) for b in buffers]
        seen.append(module)

    handle = nn.modules.module.register_module_forward_pre_hook(before)
    try:
        yield seen
    finally:
        handle.remove()
        with torch.no_grad():
            for pairs in saved.values():
                for buf, copy in pairs:
                    buf.copy_(copy)
