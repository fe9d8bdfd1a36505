"""The store against a real HTTP server on 127.0.0.1 serving small generated IDX files."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from gradfree.data.idx import read_idx, write_idx
from gradfree.data.store import DatasetFiles, RemoteFile, cache_dir, locate, verify_file
from gradfree.errors import DataError

NAMES = ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the real cache, never read the user's data folder, never go through a proxy."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRADFREE_CACHE", str(cache))
    monkeypatch.delenv("GRADFREE_DATA", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    return cache


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """A folder of fixture files: 20 images of 28x28 and their labels 0..9."""
    root = tmp_path / "served"
    root.mkdir()
    g = torch.Generator().manual_seed(0)
    write_idx(root / NAMES[0], torch.randint(0, 256, (20, 28, 28), generator=g, dtype=torch.uint8))
    write_idx(root / NAMES[1], torch.arange(20, dtype=torch.uint8) % 10)
    return root


@pytest.fixture
def server(served: Path) -> Iterator[str]:
    """Base URL of an HTTP server on 127.0.0.1 serving ``served``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _spec(served: Path, *mirrors: str, corrupt: bool = False) -> DatasetFiles:
    files = []
    for name in NAMES:
        data = (served / name).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if corrupt:
            digest = "0" * 64
        files.append(RemoteFile(name, digest, len(data)))
    return DatasetFiles(folder="fixture", files=tuple(files), mirrors=mirrors)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRADFREE_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("GRADFREE_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "gradfree"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "gradfree"


def test_download_verifies_and_loads(served: Path, server: str, isolated_env: Path) -> None:
    spec = _spec(served, server)
    folder = locate(spec)
    assert folder == isolated_env / "fixture"
    assert _listing(folder) == sorted(NAMES)
    for remote in spec.files:
        verify_file(folder / remote.name, remote)
    assert read_idx(folder / NAMES[0]).shape == (20, 28, 28)
    assert read_idx(folder / NAMES[1]).tolist() == [i % 10 for i in range(20)]
    # A second call finds the cached files without the server.
    assert locate(_spec(served, _closed_port_url())) == folder


def test_downloads_only_missing_files(served: Path, server: str, isolated_env: Path) -> None:
    folder = isolated_env / "fixture"
    folder.mkdir(parents=True)
    (folder / NAMES[0]).write_bytes((served / NAMES[0]).read_bytes())
    labels = _spec(served).files[1]
    (served / NAMES[0]).unlink()  # the server can no longer serve it: only the labels may be fetched
    spec = DatasetFiles("fixture", (RemoteFile(NAMES[0], "0" * 64), labels), (server,))
    assert locate(spec) == folder
    assert _listing(folder) == sorted(NAMES)


def test_checksum_mismatch_leaves_no_file(served: Path, server: str, isolated_env: Path) -> None:
    spec = _spec(served, server, corrupt=True)
    with pytest.raises(DataError) as info:
        locate(spec)
    message = str(info.value)
    assert NAMES[0] in message
    assert "checksum" in message
    assert "0" * 64 in message
    assert hashlib.sha256((served / NAMES[0]).read_bytes()).hexdigest() in message
    assert "no file was kept" in message
    assert _listing(isolated_env / "fixture") == []  # neither the file nor a temporary file


def test_size_mismatch_leaves_no_file(served: Path, server: str, isolated_env: Path) -> None:
    good = _spec(served, server)
    spec = DatasetFiles("fixture", tuple(RemoteFile(f.name, f.sha256, f.size + 1) for f in good.files),
                        good.mirrors)
    with pytest.raises(DataError, match="bytes, expected"):
        locate(spec)
    assert _listing(isolated_env / "fixture") == []


def test_first_mirror_404_then_second_works(served: Path, server: str) -> None:
    spec = _spec(served, server + "nowhere/", server)
    folder = locate(spec)
    assert _listing(folder) == sorted(NAMES)


def test_bad_mirror_then_good_mirror_after_checksum_mismatch(served: Path, server: str) -> None:
    # The first mirror serves a different file under the same name; the second serves the right one.
    wrong = served / "wrong"
    wrong.mkdir()
    for name in NAMES:
        (wrong / name).write_bytes(b"not the file")
    spec = _spec(served, server + "wrong/", server)
    folder = locate(spec)
    for remote in spec.files:
        verify_file(folder / remote.name, remote)


def test_offline_says_where_to_put_files(served: Path, isolated_env: Path) -> None:
    spec = _spec(served, _closed_port_url(), _closed_port_url())
    with pytest.raises(DataError) as info:
        locate(spec)
    message = str(info.value)
    for name in NAMES:
        assert name in message
    assert "--data-dir" in message
    assert "GRADFREE_DATA" in message
    assert str(isolated_env / "fixture") in message
    assert "Downloading failed" in message
    assert _listing(isolated_env / "fixture") == []


def test_no_download_says_where_to_put_files(served: Path, isolated_env: Path) -> None:
    with pytest.raises(DataError, match="Downloading is turned off") as info:
        locate(_spec(served, _closed_port_url()), download=False)
    assert "--data-dir" in str(info.value)
    assert not (isolated_env / "fixture").exists()


def test_explicit_data_dir_lacking_files_is_named(served: Path, tmp_path: Path) -> None:
    user = tmp_path / "user"
    (user / "fixture").mkdir(parents=True)
    (user / "fixture" / NAMES[0]).write_bytes(b"x")
    with pytest.raises(DataError) as info:
        locate(_spec(served, _closed_port_url()), data_dir=user)
    message = str(info.value)
    assert f"The data folder {user} lacks some of them" in message
    assert NAMES[1] in message
    with pytest.raises(DataError, match="holds none of them"):
        locate(_spec(served, _closed_port_url()), data_dir=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        locate(_spec(served, _closed_port_url()), data_dir=tmp_path / "nope")


@pytest.mark.parametrize("nested", [True, False])
def test_data_dir_is_searched_first_and_not_checksummed(served: Path, tmp_path: Path, nested: bool) -> None:
    user = tmp_path / "user"
    folder = user / "fixture" if nested else user
    folder.mkdir(parents=True)
    for name in NAMES:
        (folder / name).write_bytes((served / name).read_bytes())
    # Wrong checksums and no reachable mirror: local files are trusted as they are.
    spec = _spec(served, _closed_port_url(), corrupt=True)
    assert locate(spec, data_dir=user, download=False) == folder
    assert locate(spec, data_dir=str(user), download=False) == folder


@pytest.mark.parametrize("nested", [True, False])
def test_gradfree_data_env(served: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           nested: bool) -> None:
    env_root = tmp_path / "env"
    folder = env_root / "fixture" if nested else env_root
    folder.mkdir(parents=True)
    for name in NAMES:
        (folder / name).write_bytes((served / name).read_bytes())
    monkeypatch.setenv("GRADFREE_DATA", str(env_root))
    spec = _spec(served, _closed_port_url())
    assert locate(spec, download=False) == folder
    # An explicit data_dir that holds the files wins over GRADFREE_DATA.
    user = tmp_path / "user"
    user.mkdir()
    for name in NAMES:
        (user / name).write_bytes((served / name).read_bytes())
    assert locate(spec, data_dir=user, download=False) == user


def test_extra_dirs_before_cache(served: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    for name in NAMES:
        (extra / name).write_bytes((served / name).read_bytes())
    assert locate(_spec(served, _closed_port_url()), extra_dirs=[tmp_path / "empty", extra]) == extra


def test_verify_file_reports_mismatch(served: Path) -> None:
    spec = _spec(served, corrupt=True)
    with pytest.raises(DataError, match="failed its checksum"):
        verify_file(served / NAMES[0], spec.files[0])
    with pytest.raises(DataError, match="does not exist"):
        verify_file(served / "missing.gz", spec.files[0])
