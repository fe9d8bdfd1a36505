"""Seeded augmentation of training batches: random translations and horizontal flips of images.

A run names its augmentation with a spec string (``--augment shift:1``, ``--augment shift:4,hflip``); the
trainer applies it to every training batch (never to validation or test data) with a generator seeded from the
run's seed and the step number, so a resumed run sees the same batches. It is a regulariser: a method trained
on 5,000 MNIST images overfits them far less when each step sees them shifted by a pixel (see the
``mdp-mnist`` suite), and every method of a comparison gets the same augmentation.

* ``shift:N`` — each image moves by an offset drawn uniformly from ``-N..N`` pixels in each direction (the
  pixels it uncovers take the blank value: the per-channel minimum of the training inputs, which is black or
  the empty background after standardisation);
* ``hflip`` — each image is mirrored left-right with probability 1/2 (CIFAR-10; not for digits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from gradfree.data.ragged import Targets
from gradfree.errors import ConfigError


class Augmenter(Protocol):
    """A seeded training-time augmentation: ``(x, y, generator) -> (x', y')``, the inputs left unchanged.

    A task builds one from a spec string (``Task.augmentation``); an augmentation that moves the image moves
    the targets that live in it (boxes) too.
    """

    def __call__(self, x: Tensor, y: Targets, generator: torch.Generator) -> tuple[Tensor, Targets]: ...


SPEC_HELP = "comma-separated: shift:N (random translation by up to N pixels), hflip (random left-right flip)"


@dataclass(frozen=True)
class Augmentation:
    """Random translations by up to ``shift`` pixels and (with ``hflip``) left-right flips of image batches.

    Attributes:
        shift: largest offset in pixels, per direction (0: none).
        hflip: mirror each image with probability 1/2.
        fill: ``(C,)`` value of an uncovered pixel per channel.
    """

    shift: int
    hflip: bool
    fill: Tensor

    def __call__(self, x: Tensor, y: Targets, generator: torch.Generator) -> tuple[Tensor, Targets]:
        """The batch with its images augmented (:meth:`images`); class labels do not move with an image."""
        return self.images(x, generator), y

    def images(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """A new batch: each image of ``x (N, C, H, W)`` moved and flipped at random, drawn from the CPU
        ``generator`` (the same images on any device); ``x`` is not changed."""
        n, c, h, w = x.shape
        out = x
        if self.shift > 0:
            s = self.shift
            padded = self.fill.to(x.device, x.dtype).view(1, c, 1, 1).repeat(n, 1, h + 2 * s, w + 2 * s)
            padded[:, :, s : s + h, s : s + w] = x  # the blank value around each image, its pixels exact
            dy = torch.randint(0, 2 * s + 1, (n,), generator=generator).to(x.device)
            dx = torch.randint(0, 2 * s + 1, (n,), generator=generator).to(x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
            image = torch.arange(n, device=x.device)[:, None, None, None]
            channel = torch.arange(c, device=x.device)[None, :, None, None]
            out = padded[image, channel, rows, cols]
        if self.hflip:
            flip = torch.rand(n, generator=generator).to(x.device) < 0.5
            out = torch.where(flip[:, None, None, None], out.flip(-1), out)
        return out.contiguous()


def build_augmentation(spec: str | None, train_x: Tensor) -> Augmentation | None:
    """The augmentation ``spec`` names, for training inputs like ``train_x`` (``None``/empty: none).

    Raises:
        ConfigError: for an unknown item, a bad shift, or inputs that are not images ``(N, C, H, W)``.
    """
    if not spec:
        return None
    shift, hflip = 0, False
    for item in (part.strip() for part in spec.split(",")):
        name, _, arg = item.partition(":")
        if name == "shift" and arg.isdigit() and int(arg) >= 1:
            shift = int(arg)
        elif name == "hflip" and not arg:
            hflip = True
        else:
            raise ConfigError(f"unknown augmentation {item!r} in {spec!r}; use {SPEC_HELP}")
    if train_x.ndim != 4:
        raise ConfigError(f"augmentation {spec!r} needs image inputs (N, C, H, W); this task's inputs have shape "
                          f"{tuple(train_x.shape)}")
    if shift >= min(train_x.shape[-2:]):
        raise ConfigError(f"shift:{shift} is not smaller than the images ({tuple(train_x.shape[-2:])})")
    fill = train_x.amin(dim=(0, 2, 3)).detach().cpu()
    return Augmentation(shift=shift, hflip=hflip, fill=fill)
