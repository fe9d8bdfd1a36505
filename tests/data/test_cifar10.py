"""CIFAR-10: tiny generated batches and archives (lookup, splits, safe unpickling, safe extraction, download
from a local HTTP server), and the real batches in ../shared/data where present."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

import gradfree.data.cifar10 as c10
from gradfree.data.splits import DataSplits
from gradfree.data.store import DatasetFiles, RemoteFile, cache_dir
from gradfree.errors import ConfigError, DataError

ROWS = 30  # per fixture batch: 3 of each class


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real cache or the user's data folder, never go through a proxy."""
    monkeypatch.setenv("GRADFREE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GRADFREE_DATA", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")


def _images(n: int, *, seed: int, fill: int | None = None) -> torch.Tensor:
    if fill is not None:
        return torch.full((n, 3, 32, 32), fill, dtype=torch.uint8)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _write_batches(folder: Path, *, fill: int | None = None) -> Path:
    """Six batches of ``ROWS`` images with cycling labels (seeded pixels, or all ``fill``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(c10.BATCH_NAMES):
        labels = [(j + i) % 10 for j in range(ROWS)]
        c10.write_cifar_batch(folder / name, _images(ROWS, seed=i, fill=fill), labels, batch_label=name)
    return folder


def _load(**options: object) -> DataSplits:
    """The loader with the fixtures' batch size."""
    kwargs: dict = dict(data_dir=None, download=False, val_size=20, train_subset=None, stratified=True, seed=0,
                        flatten=False, rows_per_batch=ROWS)
    kwargs.update(options)
    return c10._load_cifar10(**kwargs)


def test_splits_shapes_and_per_channel_normalisation(tmp_path: Path) -> None:
    folder = _write_batches(tmp_path / "data" / "cifar-10" / "cifar-10-batches-py", fill=128)
    d = _load(data_dir=tmp_path / "data", train_subset=50)
    assert d.name == "cifar10" and d.num_classes == 10 and d.input_shape == (3, 32, 32)
    assert (len(d.train), len(d.val), len(d.test)) == (50, 20, ROWS)
    assert d.train.x.dtype == torch.float32 and d.train.y.dtype == torch.int64
    for channel, (mean, std) in enumerate(zip(c10.CIFAR10_MEAN, c10.CIFAR10_STD, strict=True)):
        assert torch.allclose(d.test.x[:, channel], torch.tensor((128 / 255 - mean) / std))
    assert torch.bincount(d.val.y, minlength=10).tolist() == [2] * 10  # stratified
    assert torch.bincount(d.train.y, minlength=10).tolist() == [5] * 10
    assert _load(data_dir=folder, flatten=True).input_shape == (3072,)


def test_pixel_layout_is_planar_rgb(tmp_path: Path) -> None:
    folder = _write_batches(tmp_path / "cifar-10-batches-py")
    images = _images(ROWS, seed=0)
    images[0, 0, 0, 0], images[0, 1, 0, 0], images[0, 2, 0, 0], images[0, 0, 0, 1] = 10, 20, 30, 40
    c10.write_cifar_batch(folder / "data_batch_1", images, [0] * ROWS)
    raw = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")[b"data"]
    assert [raw[0, 0], raw[0, 1024], raw[0, 2048], raw[0, 1]] == [10, 20, 30, 40]  # R plane, G plane, B plane
    x, y = c10.read_cifar_batch(folder / "data_batch_1", rows=ROWS)
    assert torch.equal(x, images) and y.tolist() == [0] * ROWS


def test_val_is_seeded_disjoint_and_checked(tmp_path: Path) -> None:
    _write_batches(tmp_path / "cifar-10-batches-py")
    a, b, c = (_load(data_dir=tmp_path, seed=seed) for seed in (1, 1, 2))
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.val.x, c.val.x)
    train_rows = {row.numpy().tobytes() for row in a.train.x}
    assert not train_rows & {row.numpy().tobytes() for row in a.val.x}
    assert len(a.train) + len(a.val) == 5 * ROWS
    with pytest.raises(ConfigError, match="train_subset"):
        _load(data_dir=tmp_path, train_subset=5 * ROWS)


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def source(data_dir: Path | None = None) -> int:
        folder = c10.find_cifar10(data_dir=data_dir, download=False)
        return int(c10.read_cifar_batch(folder / "test_batch", rows=ROWS)[0][0, 0, 0, 0])

    _write_batches(cache_dir() / "cifar-10" / "cifar-10-batches-py", fill=1)
    assert source() == 1
    _write_batches(tmp_path / "env", fill=2)
    monkeypatch.setenv("GRADFREE_DATA", str(tmp_path / "env"))
    assert source() == 2
    _write_batches(tmp_path / "explicit", fill=3)
    assert source(data_dir=tmp_path / "explicit") == 3
    _write_batches(tmp_path / "explicit" / "cifar-10-batches-py", fill=4)
    assert source(data_dir=tmp_path / "explicit") == 4
    _write_batches(tmp_path / "explicit" / "cifar-10" / "cifar-10-batches-py", fill=5)
    assert source(data_dir=tmp_path / "explicit") == 5


def test_missing_batches_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cifar-10/cifar-10-batches-py/.*--data-dir.*cifar-10-python.tar.gz"):
        _load(data_dir=tmp_path / "nowhere")


def test_truncated_or_wrong_batches_name_the_file(tmp_path: Path) -> None:
    folder = _write_batches(tmp_path / "cifar-10-batches-py")
    batch = folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[: 5000])
    with pytest.raises(DataError, match="data_batch_3 is truncated or corrupt"):
        _load(data_dir=tmp_path)
    batch.write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="data_batch_3 is truncated or corrupt"):
        _load(data_dir=tmp_path)
    cases = [
        ([1, 2, 3], "holds a list"),
        ({b"labels": [0] * ROWS}, "lacks the keys"),
        ({b"data": np.zeros((ROWS, 3072), np.float32), b"labels": [0] * ROWS}, "float32 of shape"),
        ({b"data": np.zeros((ROWS, 3072), np.uint8), b"labels": [0] * (ROWS - 1)}, "labels for 30 images"),
        ({b"data": np.zeros((ROWS, 3072), np.uint8), b"labels": [10] * ROWS}, r"labels span 10\.\.10"),
        ({b"data": np.zeros((ROWS, 3072), np.uint8), b"labels": ["a"] * ROWS}, "not integers"),
    ]
    for content, why in cases:
        batch.write_bytes(pickle.dumps(content, protocol=2))
        with pytest.raises(DataError, match=f"data_batch_3 is not a CIFAR-10 batch: .*{why}"):
            _load(data_dir=tmp_path)
    with pytest.raises(DataError, match="holds 30 images, expected 10000"):
        c10.load_cifar10(data_dir=tmp_path, download=False)


class _Exploit:
    """Unpickling this would create a folder: a harmless stand-in for arbitrary code."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.target),))


def test_malicious_pickle_is_refused_not_run(tmp_path: Path) -> None:
    folder = _write_batches(tmp_path / "cifar-10-batches-py")
    pwned = tmp_path / "pwned"
    payload = {b"data": np.zeros((ROWS, 3072), np.uint8), b"labels": [0] * ROWS, b"x": _Exploit(pwned)}
    (folder / "test_batch").write_bytes(pickle.dumps(payload, protocol=2))
    pickle.loads((folder / "test_batch").read_bytes())  # plain pickle runs it ...
    assert pwned.is_dir()
    pwned.rmdir()
    with pytest.raises(DataError, match=r"test_batch is not a CIFAR-10 batch: it asks to run (posix|nt)\.mkdir"):
        _load(data_dir=tmp_path)  # ... the loader refuses it
    assert not pwned.exists()
    for module, name in (("builtins", "eval"), ("numpy", "load"), ("numpy.core.multiarray", "scalar")):
        crafted = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."  # PROTO 2, GLOBAL module name, STOP
        with pytest.raises(c10.UnsafePickleError):
            c10.safe_load_pickle(io.BytesIO(crafted))


# ------------------------------------------------------------------ archives


def _archive(path: Path, members: dict[str, bytes], *, links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def _batch_members(source: Path) -> dict[str, bytes]:
    return {f"cifar-10-batches-py/{name}": (source / name).read_bytes() for name in c10.BATCH_NAMES}


def test_extraction_is_confined_to_the_batches(tmp_path: Path) -> None:
    members = _batch_members(_write_batches(tmp_path / "src"))
    members.update({"../escaped": b"x", "/tmp/absolute-escape": b"x", "cifar-10-batches-py/../../escaped2": b"x",
                    "other/data_batch_1": b"x", "cifar-10-batches-py/sub/data_batch_1": b"x"})
    archive = _archive(tmp_path / "a.tar.gz", members)
    target = tmp_path / "out" / "cifar-10-batches-py"
    c10.extract_batches(archive, target)
    assert sorted(p.name for p in target.iterdir()) == sorted(c10.BATCH_NAMES)
    assert (target / "test_batch").read_bytes() == (tmp_path / "src" / "test_batch").read_bytes()
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "out" / "escaped2").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cifar-10-batches-py"]  # no temp folder left


def test_bad_archives_leave_nothing_behind(tmp_path: Path) -> None:
    members = _batch_members(_write_batches(tmp_path / "src"))
    target = tmp_path / "out" / "cifar-10-batches-py"
    linked = dict(members)
    del linked["cifar-10-batches-py/test_batch"]
    archive = _archive(tmp_path / "link.tar.gz", linked, links={"cifar-10-batches-py/test_batch": "/etc/passwd"})
    with pytest.raises(DataError, match="link.tar.gz holds cifar-10-batches-py/test_batch as a link"):
        c10.extract_batches(archive, target)
    archive = _archive(tmp_path / "short.tar.gz", linked)
    with pytest.raises(DataError, match="short.tar.gz lacks cifar-10-batches-py/test_batch"):
        c10.extract_batches(archive, target)
    full = _archive(tmp_path / "full.tar.gz", members).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match="cannot extract .*cut.tar.gz"):
        c10.extract_batches(tmp_path / "cut.tar.gz", target)
    assert list((tmp_path / "out").iterdir()) == []


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving a tiny ``cifar-10-python.tar.gz``; yields (base URL, folder)."""
    root = tmp_path / "served"
    root.mkdir()
    _archive(root / "cifar-10-python.tar.gz", _batch_members(_write_batches(tmp_path / "src")))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _serve_spec(monkeypatch: pytest.MonkeyPatch, url: str, data: bytes, *, sha256: str | None = None) -> None:
    spec = DatasetFiles(folder="cifar-10", mirrors=(url,), files=(
        RemoteFile("cifar-10-python.tar.gz", sha256 or hashlib.sha256(data).hexdigest(), len(data)),))
    monkeypatch.setattr(c10, "CIFAR10_ARCHIVE", spec)


def test_download_checks_extracts_and_drops_the_archive(served: tuple[str, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    url, root = served
    _serve_spec(monkeypatch, url, (root / "cifar-10-python.tar.gz").read_bytes())
    d = _load(download=True)
    folder = cache_dir() / "cifar-10"
    assert sorted(p.name for p in folder.iterdir()) == ["cifar-10-batches-py"]  # archive gone, no temp files
    assert sorted(p.name for p in (folder / "cifar-10-batches-py").iterdir()) == sorted(c10.BATCH_NAMES)
    assert len(d.test) == ROWS
    assert torch.equal(_load(download=False).test.x, d.test.x)  # found in the cache next time


def test_download_with_wrong_checksum_keeps_nothing(served: tuple[str, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url, root = served
    _serve_spec(monkeypatch, url, (root / "cifar-10-python.tar.gz").read_bytes(), sha256="0" * 64)
    with pytest.raises(DataError, match="failed its checksum"):
        _load(download=True)
    assert list((cache_dir() / "cifar-10").iterdir()) == []


def test_spec_is_the_official_archive() -> None:
    (archive,) = c10.CIFAR10_ARCHIVE.files
    assert archive.name == "cifar-10-python.tar.gz" and archive.size == 170_498_071
    assert archive.sha256 == "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    assert c10.CIFAR10_ARCHIVE.mirrors == ("https://www.cs.toronto.edu/~kriz/",)


@pytest.mark.shared_data
def test_real_cifar10(shared_data_dir: Path) -> None:
    folder = shared_data_dir / "cifar-10" / "cifar-10-batches-py"
    if not all((folder / name).is_file() for name in c10.BATCH_NAMES):
        pytest.skip(f"{folder} is absent")
    assert c10.find_cifar10(data_dir=shared_data_dir, download=False) == folder
    parts = [c10.read_cifar_batch(folder / name) for name in c10.TRAIN_BATCHES]
    images = torch.cat([x for x, _ in parts])
    labels = torch.cat([y for _, y in parts])
    assert images.shape == (50000, 3, 32, 32) and labels.shape == (50000,)
    assert labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert images[0, :, 0, 0].tolist() == [59, 62, 63]
    assert torch.bincount(labels).tolist() == [5000] * 10
    assert torch.bincount(parts[0][1]).tolist() == [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    sums = images.numpy().reshape(50000, 3, 1024).sum(axis=(0, 2), dtype=np.int64)  # numpy: fast on uint8
    mean = sums / (50000 * 1024)
    assert np.allclose(mean, [125.30691805, 122.95039414, 113.86538318], atol=1e-6)
    assert np.allclose(mean / 255, c10.CIFAR10_MEAN, atol=1e-4)
    d = c10.load_cifar10(data_dir=shared_data_dir, download=False, train_subset=1000)
    assert (len(d.train), len(d.val), len(d.test)) == (1000, 5000, 10000)
    assert d.test.x.shape == (10000, 3, 32, 32) and d.test.x.dtype == torch.float32
    assert d.test.y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert torch.bincount(d.val.y).tolist() == [500] * 10 and torch.bincount(d.test.y).tolist() == [1000] * 10
    # Per-channel standardisation with the training statistics: the test set is near mean 0, std 1 per channel.
    assert d.test.x.mean(dim=(0, 2, 3)).abs().max() < 0.05
    assert (d.test.x.std(dim=(0, 2, 3)) - 1).abs().max() < 0.05
