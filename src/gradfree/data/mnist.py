"""MNIST: 70,000 handwritten digits, 28x28 grey levels, 10 classes.

The official 60k training set gives the validation split (a seeded draw) and the training split (the rest,
or a seeded subset of it); the official 10k test set is the test split. Pixels are scaled to [0, 1] and
standardised with the usual training-set mean and standard deviation (or, with ``centre=False``, only divided
by the standard deviation, so that the blank background stays exactly 0).
Reference: Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11), 1998.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from gradfree.data.idx import read_idx
from gradfree.data.splits import DataSplits, Split, stratified_subset
from gradfree.data.store import DatasetFiles, RemoteFile, locate
from gradfree.errors import ConfigError, DataError

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

MNIST_FILES = DatasetFiles(
    folder="mnist",
    files=(
        RemoteFile("train-images-idx3-ubyte.gz",
                   "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9_912_422),
        RemoteFile("train-labels-idx1-ubyte.gz",
                   "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28_881),
        RemoteFile("t10k-images-idx3-ubyte.gz",
                   "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1_648_877),
        RemoteFile("t10k-labels-idx1-ubyte.gz",
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4_542),
    ),
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
)
"""The four official MNIST files (SHA-256 and sizes of the originals) and two mirrors."""


def load_mnist(*, data_dir: str | Path | None = None, download: bool = True, val_size: int = 10000,
               train_subset: int | None = None, stratified: bool = True, seed: int = 0,
               flatten: bool = True, centre: bool = True) -> DataSplits:
    """MNIST as train / validation / test splits.

    Args:
        data_dir: a folder holding the four ``.gz`` files, directly or in ``mnist/`` (see
            :func:`gradfree.data.store.locate` for the other places searched).
        download: whether missing files may be downloaded into the cache.
        val_size: validation rows, drawn from the 60k training set.
        train_subset: if given, the number of training rows, drawn from those left after validation;
            else all of them.
        stratified: whether the validation and training draws keep the class proportions.
        seed: seed of the draws; the validation split depends only on ``seed`` and ``val_size``.
        flatten: whether inputs are ``(N, 784)`` vectors rather than ``(N, 1, 28, 28)`` images.
        centre: subtract the mean before dividing by the standard deviation; ``False`` keeps blank pixels at
            exactly 0 (the same inputs up to a constant shift, which a first layer's bias absorbs).

    Returns:
        Splits named ``"mnist"`` with float32 standardised (or only scaled) inputs and int64 labels in 0..9.

    Raises:
        DataError: the files are missing and cannot be downloaded, or are corrupt or of the wrong shape.
        ConfigError: ``val_size`` or ``train_subset`` do not fit in the 60k training rows.
    """
    return _load_idx_classification(
        MNIST_FILES, name="mnist", mean=MNIST_MEAN if centre else 0.0, std=MNIST_STD, num_classes=10,
        counts=(60000, 10000), data_dir=data_dir, download=download, val_size=val_size, train_subset=train_subset,
        stratified=stratified, seed=seed, flatten=flatten,
    )


def _load_idx_classification(spec: DatasetFiles, *, name: str, mean: float, std: float, num_classes: int,
                             counts: tuple[int, int] | None, data_dir: str | Path | None, download: bool,
                             val_size: int, train_subset: int | None, stratified: bool, seed: int,
                             flatten: bool, image_size: tuple[int, int] = (28, 28),
                             extra_dirs: Sequence[Path] = ()) -> DataSplits:
    """Splits of an MNIST-like dataset: four IDX files of grey images and labels.

    Args:
        spec: the files, in the order train images, train labels, test images, test labels.
        name: the name of the returned splits.
        mean: pixel mean (of pixels scaled to [0, 1]) subtracted from every input.
        std: pixel standard deviation every input is divided by.
        num_classes: labels must lie in ``0..num_classes - 1``.
        counts: the expected numbers of training and test images, or ``None`` to accept any.
        image_size: the expected height and width.
        extra_dirs: further folders :func:`locate` searches before the cache.
        data_dir, download, val_size, train_subset, stratified, seed, flatten: as in :func:`load_mnist`.

    Returns:
        The splits; see :func:`load_mnist`.
    """
    if len(spec.files) != 4:
        raise ValueError(f"expected 4 files (train images/labels, test images/labels), got {len(spec.files)}")
    folder = locate(spec, data_dir=data_dir, download=download, extra_dirs=extra_dirs)
    paths = [folder / f.name for f in spec.files]
    train_images, test_images = (_read_images(p, image_size) for p in paths[0::2])
    train_labels, test_labels = (_read_labels(p, num_classes) for p in paths[1::2])
    for images, labels, img_path, lab_path in ((train_images, train_labels, paths[0], paths[1]),
                                               (test_images, test_labels, paths[2], paths[3])):
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"{img_path} holds {images.shape[0]} images but {lab_path} holds "
                            f"{labels.shape[0]} labels; delete the wrong file and download it again")
    if counts is not None:
        for images, path, count in ((train_images, paths[0], counts[0]), (test_images, paths[2], counts[1])):
            if images.shape[0] != count:
                raise DataError(f"{path} holds {images.shape[0]} images, expected {count}: it is not the "
                                f"{name} file; delete it and download it again")

    generator = torch.Generator().manual_seed(seed)
    val_index, train_index = _train_val_indices(train_labels, val_size=val_size, train_subset=train_subset,
                                                stratified=stratified, generator=generator)

    def split(images: Tensor, labels: Tensor) -> Split:
        # Convert only the rows kept: a small train_subset never materialises 60k float images.
        x = (images.to(torch.float32) / 255.0 - mean) / std
        x = x.flatten(1) if flatten else x.unsqueeze(1)
        return Split(x.contiguous(), labels.to(torch.int64))

    return DataSplits(
        name=name,
        train=split(train_images[train_index], train_labels[train_index]),
        val=split(train_images[val_index], train_labels[val_index]),
        test=split(test_images, test_labels),
        num_classes=num_classes,
    )


def _read_images(path: Path, image_size: tuple[int, int]) -> Tensor:
    images = read_idx(path)
    if images.dtype != torch.uint8 or images.dim() != 3 or tuple(images.shape[1:]) != image_size:
        raise DataError(f"{path} holds {images.dtype} values of shape {tuple(images.shape)}, expected uint8 "
                        f"images of shape (N, {image_size[0]}, {image_size[1]}); it is not the right file, "
                        "delete it and download it again")
    return images


def _read_labels(path: Path, num_classes: int) -> Tensor:
    labels = read_idx(path)
    if labels.dtype != torch.uint8 or labels.dim() != 1:
        raise DataError(f"{path} holds {labels.dtype} values of shape {tuple(labels.shape)}, expected uint8 "
                        "labels of shape (N,); it is not the right file, delete it and download it again")
    if labels.numel() and int(labels.max()) >= num_classes:
        raise DataError(f"{path} holds label {int(labels.max())}, expected labels 0..{num_classes - 1}; "
                        "it is not the right file, delete it and download it again")
    return labels


def _train_val_indices(labels: Tensor, *, val_size: int, train_subset: int | None, stratified: bool,
                       generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Disjoint sorted validation and training row indices; validation is drawn first.

    Returns:
        ``(val_index, train_index)``, int64.
    """
    n = int(labels.shape[0])
    if not 0 <= val_size < n:
        raise ConfigError(f"val_size must be in 0..{n - 1} (the training set has {n} rows), got {val_size}")
    val_index = _draw(labels, val_size, stratified=stratified, generator=generator)
    keep = torch.ones(n, dtype=torch.bool)
    keep[val_index] = False
    rest = torch.nonzero(keep, as_tuple=False).flatten()
    if train_subset is None:
        return val_index, rest
    if not 0 < train_subset <= rest.numel():
        raise ConfigError(f"train_subset must be in 1..{rest.numel()} (the rows left after {val_size} "
                          f"validation rows), got {train_subset}")
    classes = int(torch.unique(labels).numel())
    if train_subset < classes:
        raise ConfigError(f"train_subset {train_subset} holds fewer images than the {classes} classes (a classifier "
                          f"needs every class in training): use at least {classes}")
    return val_index, rest[_draw(labels[rest], train_subset, stratified=stratified, generator=generator)]


def _draw(labels: Tensor, size: int, *, stratified: bool, generator: torch.Generator) -> Tensor:
    """Sorted indices of a seeded draw of ``size`` rows, keeping class proportions if ``stratified``."""
    if size == 0:
        return torch.empty(0, dtype=torch.int64)
    if stratified:
        return stratified_subset(labels, size, generator=generator)
    n = int(labels.shape[0])
    return torch.sort(torch.randperm(n, generator=generator)[:size]).values
