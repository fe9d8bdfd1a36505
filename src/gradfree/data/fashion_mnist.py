"""Fashion-MNIST: 70,000 28x28 grey images of clothing, 10 balanced classes, in MNIST's IDX format.

The official 60k training set gives the validation split (a seeded draw) and the training split (the rest,
or a seeded subset of it); the official 10k test set is the test split. Pixels are scaled to [0, 1] and
standardised with the training-set mean 0.2860 and standard deviation 0.3530.

Besides the usual places (see :func:`gradfree.data.store.locate`), the files are looked for where Debian's
``dataset-fashion-mnist`` package installs them. Debian recompresses the ``.gz`` files (different bytes,
same IDX content), so local files are checked by structure — IDX headers, 60,000 / 10,000 images, and
exactly 6,000 / 1,000 per class, which also tells them apart from MNIST files of the same names. Downloads
are checked by SHA-256 and size.

Reference: H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
Learning Algorithms", arXiv:1708.07747, 2017.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gradfree.data.idx import read_idx
from gradfree.data.mnist import _load_idx_classification
from gradfree.data.splits import DataSplits
from gradfree.data.store import DatasetFiles, RemoteFile, locate
from gradfree.errors import DataError

FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
"""Class names, in label order."""

# SHA-256 and sizes of the official files as the Zalando S3 mirror serves them, recorded by
# tensorflow/datasets (url_checksums/fashion_mnist.txt) and by torchvision's prototype datasets
# (pytorch/vision, torchvision/prototype/datasets/_builtin/mnist.py); the sizes agree with Keras's download
# logs. The official MD5s (zalandoresearch/fashion-mnist README) are 8d4fb7e6..., 25c81989..., bef4ecab...,
# bb300cfd... in the same order.
FASHION_MNIST_FILES = DatasetFiles(
    folder="fashion-mnist",
    files=(
        RemoteFile("train-images-idx3-ubyte.gz",
                   "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26_421_880),
        RemoteFile("train-labels-idx1-ubyte.gz",
                   "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29_515),
        RemoteFile("t10k-images-idx3-ubyte.gz",
                   "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4_422_102),
        RemoteFile("t10k-labels-idx1-ubyte.gz",
                   "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5_148),
    ),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
)
"""The four official Fashion-MNIST files (SHA-256 and sizes of the originals) and the canonical mirror."""

SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)
"""Folders where system packages install the files (Debian's ``dataset-fashion-mnist``)."""

PER_CLASS = (6000, 1000)
"""Images per class in the official training and test sets."""


def load_fashion_mnist(*, data_dir: str | Path | None = None, download: bool = True, val_size: int = 10000,
                       train_subset: int | None = None, stratified: bool = True, seed: int = 0,
                       flatten: bool = False) -> DataSplits:
    """Fashion-MNIST as train / validation / test splits.

    Args:
        data_dir: a folder holding the four ``.gz`` files, directly or in ``fashion-mnist/``; further places
            searched: ``$GRADFREE_DATA``, :data:`SYSTEM_DIRS`, then the cache.
        download: whether missing files may be downloaded into the cache.
        val_size: validation rows, drawn from the 60k training set.
        train_subset: if given, the number of training rows, drawn from those left after validation;
            else all of them.
        stratified: whether the validation and training draws keep the class proportions.
        seed: seed of the draws; the validation split depends only on ``seed`` and ``val_size``.
        flatten: whether inputs are ``(N, 784)`` vectors rather than ``(N, 1, 28, 28)`` images.

    Returns:
        Splits named ``"fashion-mnist"`` with float32 standardised inputs and int64 labels in 0..9.

    Raises:
        DataError: the files are missing and cannot be downloaded, or are corrupt, of the wrong shape, or not
            Fashion-MNIST (class counts other than 6,000 / 1,000 per class).
        ConfigError: ``val_size`` or ``train_subset`` do not fit in the 60k training rows.
    """
    return _load_fashion_mnist(data_dir=data_dir, download=download, val_size=val_size,
                               train_subset=train_subset, stratified=stratified, seed=seed, flatten=flatten,
                               counts=(60000, 10000), per_class=PER_CLASS)


def _load_fashion_mnist(*, data_dir: str | Path | None, download: bool, val_size: int, train_subset: int | None,
                        stratified: bool, seed: int, flatten: bool, counts: tuple[int, int] | None,
                        per_class: tuple[int, int]) -> DataSplits:
    """:func:`load_fashion_mnist` with the expected totals and per-class counts (small test fixtures)."""
    folder = locate(FASHION_MNIST_FILES, data_dir=data_dir, download=download, extra_dirs=SYSTEM_DIRS)
    _check_class_counts(folder, per_class)
    # The folder holds every file, so the loader's own lookup returns it again.
    return _load_idx_classification(
        FASHION_MNIST_FILES, name="fashion-mnist", mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD,
        num_classes=10, counts=counts, data_dir=folder, download=False, val_size=val_size,
        train_subset=train_subset, stratified=stratified, seed=seed, flatten=flatten,
    )


def _check_class_counts(folder: Path, per_class: tuple[int, int]) -> None:
    """Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class.

    MNIST's files have the same names and totals but unbalanced classes, so this catches a data folder that
    holds MNIST instead.
    """
    for name, expected in ((FASHION_MNIST_FILES.names[1], per_class[0]),
                           (FASHION_MNIST_FILES.names[3], per_class[1])):
        path = folder / name
        labels = read_idx(path)
        if labels.dtype != torch.uint8 or labels.dim() != 1 or (labels.numel() and int(labels.max()) > 9):
            raise DataError(f"{path} does not hold uint8 labels 0..9; it is not the Fashion-MNIST file, "
                            "delete it and download it again")
        counts = torch.bincount(labels.long(), minlength=10).tolist()
        if counts != [expected] * 10:
            raise DataError(f"{path} has {counts} labels per class, expected {expected} each: it is not the "
                            "Fashion-MNIST file (MNIST's files have the same names); put the Fashion-MNIST "
                            "files there or delete it and download it again")
