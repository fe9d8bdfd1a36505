"""Victims: trained classifiers on pixels, shared by the attacks and the explanations (read-only for them).

See :mod:`gradfree.victims.load` for the registered victims and how they are cached, and
:mod:`gradfree.victims.pixels` for the pixel wrapper and the non-differentiable quantisation step.
"""

from __future__ import annotations

from gradfree.victims.images import ImageBatch, first_correct, random_targets, target_starts
from gradfree.victims.load import (
    VICTIMS,
    Victim,
    VictimSpec,
    load_victim,
    train_victim,
    victim_folder,
    victim_from_run,
)
from gradfree.victims.pixels import PixelClassifier, Quantize, to_pixels

__all__ = ["VICTIMS", "ImageBatch", "PixelClassifier", "Quantize", "Victim", "VictimSpec", "first_correct",
           "load_victim", "random_targets", "target_starts", "to_pixels", "train_victim", "victim_folder",
           "victim_from_run"]
