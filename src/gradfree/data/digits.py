"""Digits: scikit-learn's 1,797 8x8 handwritten digits, 10 classes; small enough for a test or a quick run.

The data ships with scikit-learn, so nothing is downloaded. The split is a fixed stratified 60/20/20
(1078 / 359 / 360 rows) that depends only on the seed; inputs are standardised per pixel with the training
split's statistics.
Reference: E. Alpaydin, C. Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine Learning
Repository, 1998.
"""

from __future__ import annotations

import torch

from gradfree.data.splits import DataSplits, Split, stratified_subset
from gradfree.errors import DataError

DIGITS_SIZES = (1078, 359, 360)
"""Rows of the train, validation and test splits."""

_MIN_STD = 1e-6


def load_digits(*, seed: int = 0) -> DataSplits:
    """The digits dataset as train / validation / test splits.

    Args:
        seed: seed of the stratified split; the default 0 gives the canonical split.

    Returns:
        Splits named ``"digits"`` with float32 inputs of shape ``(N, 64)`` (pixels / 16, then standardised per
        pixel with the training split's mean and standard deviation; constant pixels are only centred) and
        int64 labels in 0..9.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    if x.shape != (sum(DIGITS_SIZES), 64):
        raise DataError(f"scikit-learn's digits have shape {tuple(x.shape)}, expected "
                        f"({sum(DIGITS_SIZES)}, 64); this scikit-learn version ships a different dataset")

    generator = torch.Generator().manual_seed(seed)
    _, n_val, n_test = DIGITS_SIZES
    test_index = stratified_subset(y, n_test, generator=generator)
    keep = torch.ones(y.shape[0], dtype=torch.bool)
    keep[test_index] = False
    rest = torch.nonzero(keep, as_tuple=False).flatten()
    val_index = rest[stratified_subset(y[rest], n_val, generator=generator)]
    keep[val_index] = False
    train_index = torch.nonzero(keep, as_tuple=False).flatten()

    mean = x[train_index].mean(dim=0)
    std = x[train_index].std(dim=0, correction=0)
    std = torch.where(std < _MIN_STD, torch.ones_like(std), std)

    def split(index: torch.Tensor) -> Split:
        return Split(((x[index] - mean) / std).contiguous(), y[index])

    return DataSplits(name="digits", train=split(train_index), val=split(val_index), test=split(test_index),
                      num_classes=10)
