"""CIFAR-10: 60,000 32x32 colour images in 10 classes, from the Python-pickle batches.

The five training batches (50k) give the validation split (a seeded draw) and the training split (the rest,
or a seeded subset of it); ``test_batch`` (10k) is the test split. Pixels are scaled to [0, 1] and
standardised per channel with the training-set means (0.4914, 0.4822, 0.4465) and standard deviations
(0.2470, 0.2435, 0.2616). Inputs are ``(N, 3, 32, 32)`` float32.

The batch files are pickles, and unpickling can run arbitrary code; they are read with an unpickler that
only rebuilds numpy arrays and plain containers (see :class:`SafeUnpickler`), so a tampered file is
refused rather than run. Local batches are checked by structure (``data`` uint8 of shape (10000, 3072),
10,000 ``labels`` in 0..9), not by checksum: rebuilt copies with the same content are accepted.
When no batches are found, the official archive is downloaded into the cache, checked by SHA-256, and its
batches are extracted (regular files of ``cifar-10-batches-py/`` only, never outside the cache) into a
temporary folder renamed into place.

Reference: A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", tech. report, 2009.
"""

from __future__ import annotations

import codecs
import importlib
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import Tensor

from gradfree.data.mnist import _train_val_indices
from gradfree.data.splits import DataSplits, Split
from gradfree.data.store import DatasetFiles, RemoteFile, cache_dir, locate
from gradfree.errors import DataError

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
"""Class names, in label order (as in ``batches.meta``)."""

BATCH_FOLDER = "cifar-10-batches-py"
"""The folder the archive holds the batches in."""

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
BATCH_NAMES = (*TRAIN_BATCHES, TEST_BATCH)
"""The batch files a CIFAR-10 folder must hold."""

ROWS_PER_BATCH = 10000

# SHA-256 as recorded by torchvision's prototype datasets (pytorch/vision,
# torchvision/prototype/datasets/_builtin/cifar.py); size as the Toronto server sends it. The official MD5 is
# c58f30108f718f92721af3b95e74349a (the CIFAR page, and torchvision.datasets.CIFAR10).
CIFAR10_ARCHIVE = DatasetFiles(
    folder="cifar-10",
    files=(RemoteFile("cifar-10-python.tar.gz",
                      "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", 170_498_071),),
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
)
"""The official archive of the Python batches and its canonical mirror."""

_EXTRACTED = frozenset((*BATCH_NAMES, "batches.meta", "readme.html"))


def load_cifar10(*, data_dir: str | Path | None = None, download: bool = True, val_size: int = 5000,
                 train_subset: int | None = None, stratified: bool = True, seed: int = 0,
                 flatten: bool = False) -> DataSplits:
    """CIFAR-10 as train / validation / test splits.

    Args:
        data_dir: a folder holding the batches in ``cifar-10/cifar-10-batches-py/``,
            ``cifar-10-batches-py/`` or itself; ``$GRADFREE_DATA`` and the cache are searched the same way
            (see :func:`find_cifar10`).
        download: whether the archive may be downloaded into the cache when no batches are found.
        val_size: validation rows, drawn from the 50k training rows.
        train_subset: if given, the number of training rows, drawn from those left after validation;
            else all of them.
        stratified: whether the validation and training draws keep the class proportions.
        seed: seed of the draws; the validation split depends only on ``seed`` and ``val_size``.
        flatten: whether inputs are ``(N, 3072)`` vectors rather than ``(N, 3, 32, 32)`` images.

    Returns:
        Splits named ``"cifar10"`` with float32 standardised inputs and int64 labels in 0..9.

    Raises:
        DataError: the batches are missing and cannot be downloaded, or a batch is truncated, corrupt, not a
            CIFAR-10 batch, or asks the unpickler for anything but numpy arrays.
        ConfigError: ``val_size`` or ``train_subset`` do not fit in the 50k training rows.
    """
    return _load_cifar10(data_dir=data_dir, download=download, val_size=val_size, train_subset=train_subset,
                         stratified=stratified, seed=seed, flatten=flatten, rows_per_batch=ROWS_PER_BATCH)


def _load_cifar10(*, data_dir: str | Path | None, download: bool, val_size: int, train_subset: int | None,
                  stratified: bool, seed: int, flatten: bool, rows_per_batch: int | None) -> DataSplits:
    """:func:`load_cifar10` with the rows each batch must hold (``None``: any, for small test fixtures)."""
    folder = find_cifar10(data_dir=data_dir, download=download)
    parts = [read_cifar_batch(folder / name, rows=rows_per_batch) for name in TRAIN_BATCHES]
    train_images = torch.cat([images for images, _ in parts])
    train_labels = torch.cat([labels for _, labels in parts])
    test_images, test_labels = read_cifar_batch(folder / TEST_BATCH, rows=rows_per_batch)

    generator = torch.Generator().manual_seed(seed)
    val_index, train_index = _train_val_indices(train_labels, val_size=val_size, train_subset=train_subset,
                                                stratified=stratified, generator=generator)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)

    def split(images: Tensor, labels: Tensor) -> Split:
        # Convert only the rows kept: a small train_subset never materialises 50k float images.
        x = (images.to(torch.float32) / 255.0 - mean) / std
        return Split((x.flatten(1) if flatten else x).contiguous(), labels)

    return DataSplits(
        name="cifar10",
        train=split(train_images[train_index], train_labels[train_index]),
        val=split(train_images[val_index], train_labels[val_index]),
        test=split(test_images, test_labels),
        num_classes=10,
    )


# ------------------------------------------------------------------ finding the batches


def batch_folders(data_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for the batches, in order.

    For ``data_dir`` and then ``$GRADFREE_DATA``: ``<dir>/cifar-10/cifar-10-batches-py/``,
    ``<dir>/cifar-10-batches-py/`` and ``<dir>/``; last the cache's ``cifar-10/cifar-10-batches-py/``.
    """
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    env_value = os.environ.get("GRADFREE_DATA")
    if env_value:
        roots.append(Path(env_value).expanduser())
    folders = [f for root in roots for f in (root / CIFAR10_ARCHIVE.folder / BATCH_FOLDER, root / BATCH_FOLDER, root)]
    folders.append(_cache_batches())
    return folders


def find_cifar10(*, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """The folder holding the six CIFAR-10 batches, extracting the official archive into the cache if needed.

    The folders of :func:`batch_folders` are searched first, and the first that holds every batch wins.
    Otherwise the archive ``cifar-10-python.tar.gz`` is looked for like any dataset file
    (:func:`gradfree.data.store.locate`: ``data_dir``, ``$GRADFREE_DATA``, the cache) or downloaded into the
    cache and checked by SHA-256; its batches are then extracted into the cache. An archive the cache held
    is deleted once extracted (the batches hold the same data).

    Raises:
        DataError: no batches and no archive, and downloading is off or failed (the message says where to
            put the files), or the archive is corrupt.
    """
    folders = batch_folders(data_dir)
    for folder in folders:
        if all((folder / name).is_file() for name in BATCH_NAMES):
            return folder
    try:
        archive_dir = locate(CIFAR10_ARCHIVE, data_dir=data_dir, download=download)
    except DataError as e:
        raise DataError(
            f"the CIFAR-10 batches ({', '.join(BATCH_NAMES)}) are not in any of {', '.join(map(str, folders))}. "
            f"Put them in DIR/{CIFAR10_ARCHIVE.folder}/{BATCH_FOLDER}/ (or DIR/{BATCH_FOLDER}/ or DIR/) and pass "
            f"--data-dir DIR or set GRADFREE_DATA=DIR. Looking for the archive instead: {e}"
        ) from None
    archive = archive_dir / CIFAR10_ARCHIVE.files[0].name
    target = _cache_batches()
    extract_batches(archive, target)
    if archive_dir == target.parent:
        archive.unlink(missing_ok=True)
    return target


def _cache_batches() -> Path:
    return cache_dir() / CIFAR10_ARCHIVE.folder / BATCH_FOLDER


def extract_batches(archive: Path, target: Path) -> None:
    """Extract the batches of a CIFAR-10 archive into ``target``, safely and atomically.

    Only regular files named ``cifar-10-batches-py/<batch or meta file>`` are written, each under its bare
    name inside a temporary folder beside ``target``; every other member (other paths, ``..``, absolute
    names) is ignored, and a link where a batch should be is an error. The folder is renamed into place once
    complete, so an interrupted or failed extraction leaves nothing in ``target``.

    Raises:
        DataError: the archive is unreadable, truncated, lacks a batch, or holds a batch that is not a
            regular file; the message names the archive.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part"))
    try:
        found: set[str] = set()
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if len(parts) != 2 or parts[0] != BATCH_FOLDER or parts[1] not in _EXTRACTED:
                    continue
                source = tar.extractfile(member) if member.isfile() else None
                if source is None:
                    raise DataError(f"{archive} holds {member.name} as a link or special file, not a regular "
                                    "file; it is not the official archive, delete it and download it again")
                with source, open(tmp / parts[1], "wb") as out:
                    shutil.copyfileobj(source, out)
                found.add(parts[1])
        missing = [name for name in BATCH_NAMES if name not in found]
        if missing:
            raise DataError(f"{archive} lacks {BATCH_FOLDER}/{', '.join(missing)}; it is not the CIFAR-10 "
                            "Python archive, delete it and download it again")
        if target.exists():
            for name in found:
                os.replace(tmp / name, target / name)
        else:
            os.rename(tmp, target)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"cannot extract {archive} into {target} ({e}); if the archive is truncated or corrupt, "
                        "delete it and download it again") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------ reading a batch


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and builtin values and refuses every other global.

    A pickle names the callables it wants run (``os.system`` as easily as numpy's array constructor); this
    one resolves only those numpy needs to rebuild an ``ndarray`` of a plain dtype, so loading a tampered
    file raises :class:`UnsafePickleError` instead of running its code.
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise UnsafePickleError(f"{module}.{name}")
        return allowed


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the numpy-array allow-list."""


def _reconstruct() -> Any:
    """numpy's array-rebuilding function: ``numpy._core.multiarray._reconstruct`` on numpy 2, else
    ``numpy.core.multiarray._reconstruct`` (numpy 2 still reads pickles that name the old module)."""
    try:
        return importlib.import_module("numpy._core.multiarray")._reconstruct
    except ImportError:  # numpy 1
        return importlib.import_module("numpy.core.multiarray")._reconstruct


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, "latin1") (which only encodes
    # text), and empty bytes as bytes() under Python 2's module name for builtins.
    ("_codecs", "encode"): codecs.encode,
    ("__builtin__", "bytes"): bytes,
    ("builtins", "bytes"): bytes,
}


def safe_load_pickle(file: BinaryIO) -> Any:
    """Unpickle ``file`` (Python-2 strings as bytes) with :class:`SafeUnpickler`."""
    return SafeUnpickler(file, encoding="bytes").load()


def read_cifar_batch(path: Path, *, rows: int | None = ROWS_PER_BATCH) -> tuple[Tensor, Tensor]:
    """Read one CIFAR-10 batch file.

    Args:
        path: a ``data_batch_N`` or ``test_batch`` file.
        rows: the number of images it must hold, or ``None`` to accept any.

    Returns:
        ``(images, labels)``: uint8 of shape ``(N, 3, 32, 32)`` (channels R, G, B) and int64 of shape ``(N,)``.

    Raises:
        DataError: the file is unreadable, truncated or corrupt, not a CIFAR-10 batch, or asks for globals
            other than numpy's array constructors; the message names the file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = safe_load_pickle(f)
    except UnsafePickleError as e:
        raise DataError(f"{path} is not a CIFAR-10 batch: it asks to run {e}, which was refused; "
                        "delete it and download it again") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError) as e:
        raise DataError(f"{path} is truncated or corrupt ({type(e).__name__}: {e}); "
                        "delete it and download it again") from None
    return _check_batch(path, batch, rows=rows)


def _check_batch(path: Path, batch: object, *, rows: int | None) -> tuple[Tensor, Tensor]:
    """The images and labels of an unpickled batch, after checking its structure."""
    def wrong(why: str) -> DataError:
        return DataError(f"{path} is not a CIFAR-10 batch: {why}; delete it and download it again")

    if not isinstance(batch, dict):
        raise wrong(f"it holds a {type(batch).__name__}, expected a dict")
    data = _get(batch, "data")
    labels = _get(batch, "labels")
    if data is None or labels is None:
        raise wrong(f"it lacks the keys b'data' and b'labels' (has {sorted(map(repr, batch))})")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        kind = getattr(data, "dtype", type(data).__name__)
        raise wrong(f"its data is {kind} of shape {shape}, expected uint8 of shape (N, 3072)")
    n = int(data.shape[0])
    if rows is not None and n != rows:
        raise wrong(f"it holds {n} images, expected {rows}")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != n:
        raise wrong(f"it holds {len(labels) if isinstance(labels, (list, np.ndarray)) else 'no list of'} "
                    f"labels for {n} images")
    try:
        y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    except (TypeError, ValueError, OverflowError):
        raise wrong("its labels are not integers") from None
    if n and (int(y.min()) < 0 or int(y.max()) > 9):
        raise wrong(f"its labels span {int(y.min())}..{int(y.max())}, expected 0..9")
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(n, 3, 32, 32).copy())
    return images, y.reshape(n)


def _get(batch: dict, key: str) -> Any:
    """``batch[b'key']``, or ``batch['key']`` for pickles written by Python 3 with str keys."""
    value = batch.get(key.encode())
    return batch.get(key) if value is None else value


def write_cifar_batch(path: Path, images: Tensor, labels: Sequence[int], *, batch_label: str = "") -> None:
    """Write a batch in the official layout (protocol-2 pickle, ``bytes`` keys), atomically.

    Used to build small test fixtures; ``images`` is uint8 ``(N, 3, 32, 32)``.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (3, 32, 32):
        raise ValueError(f"images must be uint8 of shape (N, 3, 32, 32), got {images.dtype} "
                         f"{tuple(images.shape)}")
    batch = {b"batch_label": batch_label.encode(), b"labels": [int(v) for v in labels],
             b"data": images.reshape(images.shape[0], -1).numpy()}
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
