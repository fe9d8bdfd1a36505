"""Common random numbers: every evaluation that one step compares sees the same randomness.

A zeroth-order step compares losses at several points (perturbations, population members, candidate
values). In a model with stochastic layers (dropout) in training mode, each forward would draw its own mask,
so the differences would measure mask noise, not the change of the weights; a finite-difference estimate is
then dominated by that noise and training diverges. The cure is the classic one of simulation optimisation,
common random numbers: seed the random stream the same way before every forward of a step.

* :func:`stochastic` says whether a module would draw random numbers in a forward (a dropout layer in
  training mode); only then is anything done, so deterministic models keep their exact behaviour and speed.
* :func:`same_randomness` runs a block with torch's global RNG seeded to a step's seed and restores the
  caller's RNG state afterwards (``torch.random.fork_rng``): the library never consumes or reseeds the
  caller's stream.
* :func:`step_seed` derives a step's seed from a run's seed and the step number alone (no generator is
  consumed), so a resumed run sees the same masks.

Under ``torch.vmap`` a population is scored with ``randomness="same"``: every member of one call shares
the mask, and re-seeding before each chunk gives every chunk the same mask too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_MASK64 = (1 << 64) - 1

STOCHASTIC_LAYERS: tuple[type[nn.Module], ...] = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                                                  nn.AlphaDropout, nn.FeatureAlphaDropout)
"""Layers that draw random numbers in training mode."""


def stochastic(module: nn.Module) -> bool:
    """Whether a forward of ``module`` in its current mode draws random numbers (a dropout layer with
    ``p > 0`` in training mode)."""
    return any(isinstance(m, STOCHASTIC_LAYERS) and m.training and float(getattr(m, "p", 0.0)) > 0
               for m in module.modules())


def step_seed(run_seed: int, step: int) -> int:
    """A 63-bit seed for step ``step`` of a run seeded ``run_seed`` (splitmix64 of the pair)."""

    def mix(x: int) -> int:
        x = (x + 0x9E3779B97F4A7C15) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        return x ^ (x >> 31)

    return mix((mix(run_seed & _MASK64) + 0x5851F42D + step) & _MASK64) >> 1


def _devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() else []


def seed_generators(seed: int, devices: list[int]) -> None:
    """Seed torch's default CPU generator and those of ``devices`` (CUDA) with ``seed``.

    The generators themselves, not ``torch.manual_seed``: that also visits every backend and costs about
    100 us a call, more than a small model's forward.
    """
    torch.default_generator.manual_seed(seed)
    for i in devices:
        torch.cuda.default_generators[i].manual_seed(seed)


@contextmanager
def same_randomness(seed: int | None) -> Iterator[None]:
    """Run the block with torch's RNG seeded ``seed``, then restore the caller's RNG; ``None`` does nothing."""
    if seed is None:
        yield
        return
    devices = _devices()
    with torch.random.fork_rng(devices=devices):
        seed_generators(seed, devices)
        yield


class Reseeder:
    """Re-seeds torch's RNG to one seed before each forward of a step (inside :func:`same_randomness`).

    Args:
        seed: the step's seed; ``None`` makes :meth:`__call__` a no-op.
    """

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self.devices = _devices()

    def __call__(self) -> None:
        """Seed torch's RNG (CPU and initialised CUDA devices) to the step's seed."""
        if self.seed is not None:
            seed_generators(self.seed, self.devices)
