"""Augmentation of training batches: what the shifts and flips do, their seeding, and the trainer's use."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from gradfree.data.augment import build_augmentation
from gradfree.data.splits import DataSplits, Split
from gradfree.errors import ConfigError
from gradfree.models import build_model
from gradfree.optim import build_optimizer
from gradfree.tasks.classification import ClassificationTask
from gradfree.train import TrainConfig, Trainer


def _dots(n: int = 6, size: int = 7) -> Tensor:
    """Images of a blank value -1 with one bright pixel in the middle (channel 0) and a 5 in channel 1."""
    x = torch.full((n, 2, size, size), -1.0)
    x[:, 0, size // 2, size // 2] = 3.0
    x[:, 1, 0, 0] = 5.0
    return x


def test_a_shift_moves_each_image_by_its_own_offset_within_range() -> None:
    x = _dots(200)
    aug = build_augmentation("shift:2", x)
    assert aug is not None
    out = aug.images(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(x, _dots(200))  # the input is left alone
    moves = set()
    for image in out:
        bright = (image[0] == 3.0).nonzero()
        assert bright.shape == (1, 2)  # the pixel moved, nothing was lost or duplicated
        dy, dx = (bright[0] - 3).tolist()
        assert -2 <= dy <= 2 and -2 <= dx <= 2
        moves.add((dy, dx))
        assert int((image[0] == -1.0).sum()) == 48  # everything else is the blank value
    assert len(moves) == 25  # every offset in -2..2 x -2..2 happens over 200 images


def test_uncovered_pixels_take_each_channels_blank_value() -> None:
    x = _dots(50)
    x[:, 1] += 10.0  # channel 1's blank is 9, its corner pixel 15
    augmentation = build_augmentation("shift:3", x)
    assert augmentation is not None
    out = augmentation.images(x, torch.Generator().manual_seed(1))
    assert set(out[:, 0].unique().tolist()) == {-1.0, 3.0}
    assert set(out[:, 1].unique().tolist()) <= {9.0, 15.0}


def test_hflip_mirrors_about_half_and_is_seeded() -> None:
    x = torch.arange(400 * 5, dtype=torch.float32).view(400, 1, 1, 5)
    aug = build_augmentation("hflip", x)
    assert aug is not None
    a, b = aug.images(x, torch.Generator().manual_seed(2)), aug.images(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    flipped = (a != x).any(dim=(1, 2, 3))
    assert torch.equal(a[flipped], x[flipped].flip(-1)) and torch.equal(a[~flipped], x[~flipped])
    assert 150 < int(flipped.sum()) < 250
    assert not torch.equal(aug.images(x, torch.Generator().manual_seed(3)), a)


@pytest.mark.parametrize("spec, message", [("shift", "unknown augmentation"), ("shift:0", "unknown augmentation"),
                                           ("rotate:5", "unknown augmentation"), ("shift:7", "not smaller"),
                                           ("hflip:1", "unknown augmentation")])
def test_bad_specs_are_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_augmentation(spec, _dots())


def test_flat_inputs_cannot_be_shifted() -> None:
    with pytest.raises(ConfigError, match=r"needs image inputs \(N, C, H, W\)"):
        build_augmentation("shift:1", torch.zeros(10, 64))
    assert build_augmentation(None, torch.zeros(10, 64)) is None


def _image_task() -> ClassificationTask:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 1, 8, 8, generator=g)
    y = torch.randint(0, 3, (120,), generator=g)
    data = DataSplits(train=Split(x[:80], y[:80]), val=Split(x[80:100], y[80:100]), test=Split(x[100:], y[100:]),
                      num_classes=3, name="tiny-images")
    return ClassificationTask(data=data, default_model="mlp:64-3")


def _trainer(task: ClassificationTask, augment: str | None, out: Path | None = None) -> Trainer:
    model = build_model("mlp:64-8-3", seed=0, input_shape=(1, 8, 8), num_classes=3)
    return Trainer(task, model, build_optimizer("zo-adam", model.parameters(), seed=1),
                   TrainConfig(budget=300, eval_every=100, batch_size=16, seed=2, augment=augment), out_dir=out)


def test_the_trainer_augments_training_batches_only_and_resumes_identically(tmp_path: Path) -> None:
    task = _image_task()
    plain, shifted = _trainer(task, None), _trainer(task, "shift:1")
    xp, _ = plain._batch()
    xs, _ = shifted._batch()
    assert not torch.equal(xp, xs) and xs.shape == xp.shape
    assert torch.equal(task.data.train.x, _image_task().data.train.x)  # the data itself is untouched

    whole = _trainer(task, "shift:1").fit()
    first = _trainer(task, "shift:1", tmp_path / "run")
    first.config.budget = 150
    first.fit()
    resumed = _trainer(task, "shift:1", tmp_path / "run").fit(resume=True)
    assert resumed.final == whole.final and resumed.evaluations == whole.evaluations
    assert _trainer(task, None).fit().final != whole.final
