"""The digits loader: fixed stratified 60/20/20 split, standardisation, determinism."""

from __future__ import annotations

import pytest
import torch

from gradfree.data.digits import load_digits
from gradfree.data.splits import DataSplits


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_digits()


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x}


def test_sizes_and_types(digits: DataSplits) -> None:
    assert (len(digits.train), len(digits.val), len(digits.test)) == (1078, 359, 360)
    assert digits.name == "digits" and digits.num_classes == 10 and digits.input_shape == (64,)
    for split in (digits.train, digits.val, digits.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert torch.isfinite(split.x).all()
        assert int(split.y.min()) >= 0 and int(split.y.max()) <= 9


def test_standardised_with_train_statistics(digits: DataSplits) -> None:
    mean, std = digits.train.x.mean(0), digits.train.x.std(0, correction=0)
    assert mean.abs().max() < 1e-5
    varying = std > 0
    assert (std[varying] - 1).abs().max() < 1e-4
    assert (~varying).any()  # some border pixels are always blank in training: they stay at 0, not NaN


def test_stratified(digits: DataSplits) -> None:
    total = torch.bincount(torch.cat([digits.train.y, digits.val.y, digits.test.y]), minlength=10).double()
    for split in (digits.train, digits.val, digits.test):
        counts = torch.bincount(split.y, minlength=10).double()
        assert ((counts - total * len(split) / 1797).abs() <= 1).all()


def test_disjoint_and_complete(digits: DataSplits) -> None:
    # scikit-learn's 1797 images are all distinct and every split goes through the same per-pixel affine
    # map, so a row shared by two splits would be one image used twice.
    from sklearn.datasets import load_digits as sklearn_digits

    assert len(_rows(torch.as_tensor(sklearn_digits().data))) == 1797
    train, val, test = (_rows(s.x) for s in (digits.train, digits.val, digits.test))
    assert not train & val and not train & test and not val & test
    assert len(train | val | test) == 1797


def test_deterministic_and_seeded(digits: DataSplits) -> None:
    again = load_digits(seed=0)
    assert torch.equal(again.train.x, digits.train.x) and torch.equal(again.test.y, digits.test.y)
    other = load_digits(seed=1)
    assert not torch.equal(other.test.y, digits.test.y) or not torch.equal(other.test.x, digits.test.x)
