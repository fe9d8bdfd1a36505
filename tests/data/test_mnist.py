"""MNIST loading on small generated IDX files, and on the real files in ../shared/data where present."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gradfree.data.idx import write_idx
from gradfree.data.mnist import MNIST_FILES, MNIST_MEAN, MNIST_STD, _load_idx_classification, load_mnist
from gradfree.data.splits import DataSplits
from gradfree.errors import ConfigError, DataError

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
N_TRAIN, N_TEST = 200, 30


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real cache or the user's data folder."""
    monkeypatch.setenv("GRADFREE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GRADFREE_DATA", raising=False)


def _write_fixture(folder: Path, *, n_train: int = N_TRAIN, n_test: int = N_TEST,
                   image_shape: tuple[int, ...] = (28, 28), max_label: int = 9) -> Path:
    """MNIST-named IDX files with seeded pixels and cycling labels (unbalanced: class 0 gets the most)."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    names = MNIST_FILES.names
    for (images, labels), n in (((names[0], names[1]), n_train), ((names[2], names[3]), n_test)):
        write_idx(folder / images, torch.randint(0, 256, (n, *image_shape), generator=g, dtype=torch.uint8))
        y = torch.arange(n) % 11
        write_idx(folder / labels, torch.clamp(y, max=max_label).to(torch.uint8))  # 10 classes, 0..9
    return folder


def _load(data_dir: Path, **options: object) -> DataSplits:
    kwargs: dict = dict(name="fixture", mean=MNIST_MEAN, std=MNIST_STD, num_classes=10, counts=None,
                        data_dir=data_dir, download=False, val_size=40, train_subset=None, stratified=True,
                        seed=0, flatten=True)
    kwargs.update(options)
    return _load_idx_classification(MNIST_FILES, **kwargs)


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x}


def test_shapes_types_and_scaling(tmp_path: Path) -> None:
    folder = _write_fixture(tmp_path / "data" / "mnist")
    d = _load(tmp_path / "data")
    assert (len(d.train), len(d.val), len(d.test)) == (N_TRAIN - 40, 40, N_TEST)
    assert d.train.x.shape == (N_TRAIN - 40, 784) and d.train.x.dtype == torch.float32
    assert d.train.y.dtype == torch.int64 and d.num_classes == 10 and d.name == "fixture"
    lo, hi = (0 - MNIST_MEAN) / MNIST_STD, (1 - MNIST_MEAN) / MNIST_STD
    assert d.train.x.min() >= lo - 1e-6 and d.train.x.max() <= hi + 1e-6
    images = _load(folder, flatten=False)
    assert images.input_shape == (1, 28, 28)
    assert torch.equal(images.test.x.reshape(N_TEST, -1), d.test.x)


def test_val_disjoint_stratified_and_seeded(tmp_path: Path) -> None:
    _write_fixture(tmp_path / "mnist")
    d = _load(tmp_path, train_subset=80)
    assert len(d.train) == 80
    assert not _rows(d.train.x) & _rows(d.val.x)  # random pixels: equal rows would mean a shared image
    # Stratified: class proportions of the 200 labels (class 0 has 2/11 of them) are kept.
    full = torch.bincount(torch.clamp(torch.arange(N_TRAIN) % 11, max=9), minlength=10).double()
    val_counts = torch.bincount(d.val.y, minlength=10).double()
    assert ((val_counts - full * 40 / N_TRAIN).abs() < 1).all()
    again = _load(tmp_path, train_subset=80)
    assert torch.equal(again.train.x, d.train.x) and torch.equal(again.val.y, d.val.y)
    other = _load(tmp_path, train_subset=80, seed=1)
    assert not torch.equal(other.val.x, d.val.x)
    # The validation split depends only on the seed and its size, not on the training subset.
    assert torch.equal(_load(tmp_path).val.x, d.val.x)
    plain = _load(tmp_path, train_subset=80, stratified=False)
    assert len(plain.train) == 80 and not _rows(plain.train.x) & _rows(plain.val.x)


def test_bad_sizes_are_config_errors(tmp_path: Path) -> None:
    _write_fixture(tmp_path / "mnist")
    with pytest.raises(ConfigError, match="val_size"):
        _load(tmp_path, val_size=N_TRAIN)
    with pytest.raises(ConfigError, match="train_subset"):
        _load(tmp_path, train_subset=N_TRAIN - 39)
    assert len(_load(tmp_path, val_size=0).val) == 0


def test_wrong_counts_shapes_and_labels(tmp_path: Path) -> None:
    _write_fixture(tmp_path / "counts" / "mnist")
    with pytest.raises(DataError, match="expected 60000"):
        load_mnist(data_dir=tmp_path / "counts", download=False)
    _write_fixture(tmp_path / "shape" / "mnist", image_shape=(32, 32))
    with pytest.raises(DataError, match=r"\(N, 28, 28\)"):
        _load(tmp_path / "shape")
    _write_fixture(tmp_path / "labels" / "mnist", max_label=10)
    with pytest.raises(DataError, match="label 10"):
        _load(tmp_path / "labels")
    folder = _write_fixture(tmp_path / "mismatch" / "mnist")
    write_idx(folder / MNIST_FILES.names[1], torch.zeros(N_TRAIN - 1, dtype=torch.uint8))
    with pytest.raises(DataError, match="labels"):
        _load(folder)


def test_missing_files_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="GRADFREE_DATA"):
        load_mnist(data_dir=tmp_path, download=False)


def test_spec_matches_sources() -> None:
    assert MNIST_FILES.folder == "mnist"
    assert MNIST_FILES.names == ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    assert all(len(f.sha256) == 64 and f.size for f in MNIST_FILES.files)


@pytest.mark.shared_data
def test_real_mnist_subset() -> None:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"{SHARED_DATA / 'mnist'} is absent")
    d = load_mnist(data_dir=SHARED_DATA, download=False, train_subset=5000)
    assert (len(d.train), len(d.val), len(d.test)) == (5000, 10000, 10000)
    assert d.train.x.shape == (5000, 784) and d.num_classes == 10
    assert abs(float(d.test.x.mean())) < 0.05 and abs(float(d.test.x.std()) - 1) < 0.05
    # Stratified: each class gets its share of the 50,000 rows left after validation, to within one row.
    # (MNIST is not balanced, so the shares are 452..562, not 500 each.)
    val_counts = torch.bincount(d.val.y, minlength=10)
    full_counts = torch.tensor([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    rest = (full_counts - val_counts).double()
    train_counts = torch.bincount(d.train.y, minlength=10).double()
    assert ((train_counts - rest * 5000 / 50000).abs() < 1).all()
    assert ((val_counts.double() - full_counts.double() / 6).abs() < 1).all()
    assert torch.bincount(d.test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert not _rows(d.train.x) & _rows(d.val.x)
