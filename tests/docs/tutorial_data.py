"""Generated stand-ins for the datasets the tutorials read, so the test suite runs them without real data."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

MNIST_COUNTS = (60000, 10000)
"""The official file sizes: the MNIST loader refuses files of other lengths."""


def _idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fake_mnist(root: Path, *, seed: int = 0) -> Path:
    """``root/mnist/`` holding the four MNIST files, of the official counts, with learnable generated digits.

    Each class is a fixed random blob pattern; an image is its class's pattern with a few pixels flipped, so a
    classifier can learn the classes in a few steps. Repeated patterns compress well: the folder is small and
    quick to write.

    Returns:
        ``root`` (the folder to pass as ``data_dir``).
    """
    rng = np.random.default_rng(seed)
    patterns = np.where(rng.random((10, 7, 7)) < 0.35, 255, 0).astype(np.uint8).repeat(4, 1).repeat(4, 2)
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", MNIST_COUNTS[0]), ("t10k", MNIST_COUNTS[1])):
        labels = (np.arange(count) * 7 + 3) % 10
        images = patterns[labels].copy()
        flips = rng.integers(0, 28, (count // 50, 2))
        images[np.arange(len(flips)) * 50, flips[:, 0], flips[:, 1]] ^= 255
        _idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        _idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return root
