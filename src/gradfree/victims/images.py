"""Which images to attack: the first N correctly classified test images, targets, and target-class starts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.victims.load import Victim


@dataclass(frozen=True)
class ImageBatch:
    """Images to attack.

    Attributes:
        x: ``(N, *shape)`` pixels. y: ``(N,)`` true labels (which the victim predicts). index: ``(N,)`` their
        positions in the victim's test split.
    """

    x: Tensor
    y: Tensor
    index: Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


def first_correct(victim: Victim, n: int, *, offset: int = 0) -> ImageBatch:
    """The first ``n`` test images (from position ``offset`` on) that ``victim`` classifies correctly.

    Raises:
        ConfigError: fewer than ``n`` such images exist.
    """
    if n < 1:
        raise ConfigError(f"ask for at least one image, got {n}")
    x, y = victim.test_x[offset:], victim.test_y[offset:]
    picked: list[Tensor] = []
    found = 0
    for start in range(0, x.shape[0], 4 * n):
        part = slice(start, start + 4 * n)
        ok = torch.nonzero(victim.predict(x[part]) == y[part]).flatten() + start
        picked.append(ok)
        found += ok.numel()
        if found >= n:
            break
    index = torch.cat(picked)[:n] if picked else torch.zeros(0, dtype=torch.int64)
    if index.numel() < n:
        raise ConfigError(f"{victim.name} classifies only {index.numel()} test images correctly from position "
                          f"{offset}; ask for fewer")
    return ImageBatch(x=x[index].clone(), y=y[index].clone(), index=index + offset)


def random_targets(labels: Tensor, num_classes: int, *, seed: int) -> Tensor:
    """One target per image, uniform over the classes other than its label (seeded)."""
    g = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, num_classes, labels.shape, generator=g)
    return (labels.cpu() + shift) % num_classes


def target_starts(victim: Victim, targets: Tensor, *, exclude: Tensor | None = None) -> Tensor:
    """For each target, a test image the victim classifies as that target (correctly), not in ``exclude``:
    the starting points of a targeted decision-based attack (Chen et al. 2020, Sec. 4). Images of one class
    are used in test order, cycling.

    Raises:
        ConfigError: the victim classifies no test image of some target class correctly.
    """
    predicted = victim.predict(victim.test_x)
    usable = predicted == victim.test_y
    if exclude is not None:
        usable[exclude.cpu()] = False
    starts = torch.empty(targets.shape[0], *victim.input_shape, dtype=victim.test_x.dtype)
    used: dict[int, int] = {}
    for i, t in enumerate(targets.tolist()):
        pool = torch.nonzero(usable & (victim.test_y == t)).flatten()
        if pool.numel() == 0:
            raise ConfigError(f"{victim.name} classifies no test image of class {t} correctly: no start for it")
        k = used.get(t, 0)
        starts[i] = victim.test_x[pool[k % pool.numel()]]
        used[t] = k + 1
    return starts
