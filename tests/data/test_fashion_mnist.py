"""Fashion-MNIST: lookup order (incl. the Debian folder), structural checks, splits; the real files if installed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import gradfree.data.fashion_mnist as fm
from gradfree.data.idx import write_idx
from gradfree.data.splits import DataSplits
from gradfree.data.store import cache_dir
from gradfree.errors import DataError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real cache, the user's data folder or the system's copy (unless a test says so)."""
    monkeypatch.setenv("GRADFREE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GRADFREE_DATA", raising=False)
    monkeypatch.setattr(fm, "SYSTEM_DIRS", (tmp_path / "system",))


def _write(folder: Path, *, per_class: tuple[int, int] = (20, 4), fill: int | None = None,
           unbalanced: bool = False) -> Path:
    """Fashion-MNIST-named IDX files with ``per_class`` train/test images of each class (seeded pixels)."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    names = fm.FASHION_MNIST_FILES.names
    for (images, labels), k in (((names[0], names[1]), per_class[0]), ((names[2], names[3]), per_class[1])):
        y = torch.arange(10 * k) % 10
        if unbalanced:
            y[0] = 1  # one image moves from class 0 to class 1
        x = torch.randint(0, 256, (10 * k, 28, 28), generator=g, dtype=torch.uint8)
        if fill is not None:
            x.fill_(fill)
        write_idx(folder / images, x)
        write_idx(folder / labels, y.to(torch.uint8))
    return folder


def _load(**options: object) -> DataSplits:
    """The loader with the fixtures' sizes: 20 / 4 images per class, any totals."""
    kwargs: dict = dict(data_dir=None, download=False, val_size=50, train_subset=None, stratified=True, seed=0,
                        flatten=False, counts=None, per_class=(20, 4))
    kwargs.update(options)
    return fm._load_fashion_mnist(**kwargs)


def _source(**options: object) -> int:
    """The constant pixel value of the files found (each place in the lookup test holds another)."""
    x = _load(val_size=0, **options).test.x[0, 0, 0, 0]
    return round(float(x) * fm.FASHION_MNIST_STD * 255 + fm.FASHION_MNIST_MEAN * 255)


def test_splits_images_and_normalisation(tmp_path: Path) -> None:
    _write(tmp_path / "data" / "fashion-mnist", fill=255)
    d = _load(data_dir=tmp_path / "data", train_subset=100)
    assert d.name == "fashion-mnist" and d.num_classes == 10
    assert (len(d.train), len(d.val), len(d.test)) == (100, 50, 40)
    assert d.input_shape == (1, 28, 28) and d.train.x.dtype == torch.float32 and d.train.y.dtype == torch.int64
    expected = (1.0 - fm.FASHION_MNIST_MEAN) / fm.FASHION_MNIST_STD  # white pixels, standardised
    assert torch.allclose(d.test.x, torch.full_like(d.test.x, expected))
    # Stratified: each class keeps its tenth of the validation draw and of the training subset.
    assert torch.bincount(d.val.y, minlength=10).tolist() == [5] * 10
    assert torch.bincount(d.train.y, minlength=10).tolist() == [10] * 10
    flat = _load(data_dir=tmp_path / "data", flatten=True)
    assert flat.input_shape == (784,)


def test_val_is_seeded_and_disjoint(tmp_path: Path) -> None:
    _write(tmp_path / "fashion-mnist")
    a, b, c = (_load(data_dir=tmp_path, seed=seed) for seed in (3, 3, 4))
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.train.x, b.train.x)
    assert not torch.equal(a.val.x, c.val.x)
    rows = {row.numpy().tobytes() for row in a.train.x}
    assert not rows & {row.numpy().tobytes() for row in a.val.x}
    assert len(a.train) + len(a.val) == 200


def test_lookup_order_data_dir_env_system_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each place holds files of a different constant pixel, so the loaded values say which one was used.
    _write(cache_dir() / "fashion-mnist", fill=1)
    assert _source() == 1
    _write(tmp_path / "system", fill=2)
    assert _source() == 2
    _write(tmp_path / "env", fill=3)
    monkeypatch.setenv("GRADFREE_DATA", str(tmp_path / "env"))
    assert _source() == 3
    _write(tmp_path / "explicit" / "fashion-mnist", fill=4)
    assert _source(data_dir=tmp_path / "explicit") == 4


def test_mnist_files_are_refused_by_their_class_counts(tmp_path: Path) -> None:
    _write(tmp_path / "fashion-mnist", per_class=(20, 4), unbalanced=True)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz has \[19, 21, .*expected 6000 each.*MNIST"):
        fm.load_fashion_mnist(data_dir=tmp_path, download=False)


def test_truncated_file_is_one_clear_error(tmp_path: Path) -> None:
    folder = _write(tmp_path / "fashion-mnist")
    images = folder / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:100])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz is truncated or corrupt"):
        _load(data_dir=tmp_path)


def test_missing_files_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="fashion-mnist.*GRADFREE_DATA.*fashion-mnist.s3-website"):
        fm.load_fashion_mnist(data_dir=tmp_path / "nowhere", download=False)


def test_spec_has_the_official_checksums() -> None:
    spec = fm.FASHION_MNIST_FILES
    assert spec.names == ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                          "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    assert [f.size for f in spec.files] == [26_421_880, 29_515, 4_422_102, 5_148]
    assert all(len(f.sha256) == 64 and int(f.sha256, 16) >= 0 for f in spec.files)
    assert spec.mirrors == ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)


@pytest.mark.shared_data
def test_real_fashion_mnist_from_debian(monkeypatch: pytest.MonkeyPatch) -> None:
    if not all((DEBIAN / name).is_file() for name in fm.FASHION_MNIST_FILES.names):
        pytest.skip(f"{DEBIAN} is absent (apt-get install dataset-fashion-mnist)")
    monkeypatch.setattr(fm, "SYSTEM_DIRS", (DEBIAN,))
    d = fm.load_fashion_mnist(download=False, train_subset=1000)
    assert (len(d.train), len(d.val), len(d.test)) == (1000, 10000, 10000)
    assert d.input_shape == (1, 28, 28)
    assert torch.bincount(d.test.y).tolist() == [1000] * 10
    assert torch.bincount(d.val.y).tolist() == [1000] * 10 and torch.bincount(d.train.y).tolist() == [100] * 10
    # Standardised with the training-set statistics: the test set is close to mean 0, std 1.
    assert abs(float(d.test.x.mean())) < 0.02 and abs(float(d.test.x.std()) - 1) < 0.02
