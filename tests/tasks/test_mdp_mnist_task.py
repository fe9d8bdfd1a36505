"""The mdp-mnist task: 5,000 stratified training images, 10,000 other training images for validation, the official
test set (real MNIST where ../shared/data has it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gradfree.data.mnist import load_mnist
from gradfree.errors import ConfigError
from gradfree.tasks import build_task


def test_other_training_sizes_are_refused_with_a_pointer() -> None:
    with pytest.raises(ConfigError, match="--train-subset"):
        build_task("mdp-mnist", train_subset=1000, download=False)


@pytest.mark.shared_data
def test_splits_on_real_mnist(shared_data_dir: Path) -> None:
    if not (shared_data_dir / "mnist").is_dir():
        pytest.skip(f"real MNIST not found in {shared_data_dir}")
    task = build_task("mdp-mnist", data_dir=shared_data_dir, download=False, seed=1)
    data = task.data
    assert (len(data.train), len(data.val), len(data.test)) == (5000, 10000, 10000)
    assert data.input_shape == (1, 28, 28) and task.default_model == "mlp:784-32-10"
    reference = load_mnist(data_dir=shared_data_dir, download=False, val_size=10000, train_subset=5000, seed=1,
                           flatten=False)
    assert torch.equal(data.train.x, reference.train.x) and torch.equal(data.val.y, reference.val.y)
    # stratified: about 500 images of each digit (class proportions of MNIST's training set)
    counts = torch.bincount(data.train.y, minlength=10)
    assert int(counts.sum()) == 5000 and int(counts.min()) > 400 and int(counts.max()) < 600
    # validation and training images are different images (no row of one appears in the other)
    train_keys = {hash(row.numpy().tobytes()) for row in data.train.x.flatten(1)}
    shared = sum(hash(row.numpy().tobytes()) in train_keys for row in data.val.x.flatten(1))
    assert shared <= 5  # MNIST holds a handful of exact duplicate images; disjoint indices give (almost) none
    other_seed = build_task("mdp-mnist", data_dir=shared_data_dir, download=False, seed=2).data
    assert not torch.equal(other_seed.train.x, data.train.x) and torch.equal(other_seed.test.x, data.test.x)


@pytest.mark.shared_data
def test_uncentred_task_is_the_same_images_with_a_zero_background(shared_data_dir: Path) -> None:
    if not (shared_data_dir / "mnist").is_dir():
        pytest.skip(f"real MNIST not found in {shared_data_dir}")
    from gradfree.data.mnist import MNIST_MEAN, MNIST_STD

    centred = build_task("mdp-mnist", data_dir=shared_data_dir, download=False, seed=1).data
    uncentred = build_task("mdp-mnist-uncentred", data_dir=shared_data_dir, download=False, seed=1).data
    for a, b in ((centred.train, uncentred.train), (centred.val, uncentred.val), (centred.test, uncentred.test)):
        assert torch.equal(a.y, b.y)
        torch.testing.assert_close(b.x, a.x + MNIST_MEAN / MNIST_STD, rtol=0, atol=1e-5)  # only the shift differs
    x = uncentred.train.x
    assert float(x.min()) == 0.0 and 0.75 < float((x == 0).float().mean()) < 0.85  # blank pixels are exactly 0
