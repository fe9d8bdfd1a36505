"""Locate, download and verify the files of a dataset.

A dataset describes its files (name, SHA-256, size) and the mirrors that serve them in a
:class:`DatasetFiles`; :func:`locate` returns a folder that holds all of them. Folders the user points at
(``data_dir``, ``$GRADFREE_DATA``) are searched first and trusted as they are: users may hold recompressed
copies (Debian recompresses Fashion-MNIST), so the format parsers check structure instead of bytes. Missing
files are downloaded into :func:`cache_dir`, streamed to a temporary file beside their final place, checked
against their SHA-256 (and size), and only then moved into place with one atomic rename: an interrupted or
corrupt download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gradfree.errors import DataError

DOWNLOAD_TIMEOUT_S = 30.0
"""Seconds a download waits for a mirror to connect or send the next chunk."""

_CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    Attributes:
        name: file name, the same locally and on every mirror.
        sha256: lowercase hex SHA-256 of the file as the mirrors serve it.
        size: size in bytes, or ``None`` where unknown.
    """

    name: str
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class DatasetFiles:
    """The files of a dataset and where they can be downloaded from.

    Attributes:
        folder: the dataset's folder name under a data directory or the cache, e.g. ``"mnist"``.
        files: every file the dataset needs.
        mirrors: base URLs tried in order; a file's URL is the mirror followed by its name.
    """

    folder: str
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The file names, in order."""
        return tuple(f.name for f in self.files)


def cache_dir() -> Path:
    """The folder that downloads go to.

    Returns:
        ``$GRADFREE_CACHE`` if set, else ``$XDG_CACHE_HOME/gradfree``, else ``~/.cache/gradfree``.
    """
    explicit = os.environ.get("GRADFREE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "gradfree"
    return Path.home() / ".cache" / "gradfree"


def sha256_of(path: Path) -> str:
    """The lowercase hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, remote: RemoteFile) -> None:
    """Check a local file's size and SHA-256 against ``remote``.

    Args:
        path: the local file.
        remote: its expected size and checksum.

    Raises:
        DataError: the file is missing or differs, naming the file and the expected and actual values.
    """
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise DataError(f"{path} has {size} bytes, expected {remote.size}: delete it and download it again")
    got = sha256_of(path)
    if got != remote.sha256:
        raise DataError(f"{path} failed its checksum (expected SHA-256 {remote.sha256}, got {got}): "
                        "delete it and download it again")


def locate(spec: DatasetFiles, *, data_dir: str | Path | None = None, download: bool = True,
           extra_dirs: Sequence[Path] = ()) -> Path:
    """The folder that holds every file of a dataset, downloading missing files into the cache if allowed.

    Folders are searched in this order, and the first that holds every file wins: ``data_dir/<folder>/`` and
    ``data_dir/``; ``$GRADFREE_DATA/<folder>/`` and ``$GRADFREE_DATA/``; each of ``extra_dirs``;
    ``cache_dir()/<folder>/``. Files found this way are not checksummed. Otherwise the files missing from the
    cache folder are downloaded there, trying each mirror in turn, and verified.

    Args:
        spec: the dataset's files and mirrors.
        data_dir: a folder the user named (e.g. with ``--data-dir``).
        download: whether missing files may be downloaded.
        extra_dirs: further folders to search before the cache, e.g. where a system package installs
            the files.

    Returns:
        The folder holding all files of ``spec``.

    Raises:
        DataError: the files are nowhere and could not be downloaded (the message says where to put them),
            or a download failed its checksum.
    """
    explicit = Path(data_dir).expanduser() if data_dir is not None else None
    env_value = os.environ.get("GRADFREE_DATA")
    from_env = Path(env_value).expanduser() if env_value else None
    target = cache_dir() / spec.folder

    candidates: list[Path] = []
    for root in (explicit, from_env):
        if root is not None:
            candidates += [root / spec.folder, root]
    candidates += [Path(d).expanduser() for d in extra_dirs]
    candidates.append(target)
    for folder in candidates:
        if all((folder / name).is_file() for name in spec.names):
            return folder

    missing = [f for f in spec.files if not (target / f.name).is_file()]
    if not download:
        raise DataError(_not_found_message(spec, missing, explicit, reasons=None))
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the cache folder {target} ({e}); set GRADFREE_CACHE to a writable "
                        "folder, or pass --data-dir with the files already in it") from e
    for i, remote in enumerate(missing):
        reasons = _download(remote, spec.mirrors, target)
        if reasons is not None:
            raise DataError(_not_found_message(spec, missing[i:], explicit, reasons=reasons))
    return target


def _download(remote: RemoteFile, mirrors: Sequence[str], target: Path) -> list[str] | None:
    """Fetch one file into ``target`` from the first mirror that serves it intact.

    Returns:
        ``None`` on success, else one reason per mirror that failed for want of a connection or file.

    Raises:
        DataError: every mirror failed and at least one served bytes that failed the checksum.
    """
    reasons: list[str] = []
    mismatch: str | None = None
    for mirror in mirrors:
        url = mirror if mirror.endswith("/") else mirror + "/"
        url += remote.name
        try:
            _fetch(url, remote, target)
            return None
        except _ChecksumMismatch as e:
            mismatch = mismatch or str(e)
            reasons.append(f"{url}: {e}")
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            reasons.append(f"{url}: {_describe(e)}")
    if mismatch is not None:
        raise DataError(f"download of {remote.name} failed its checksum ({mismatch}); no file was kept in "
                        f"{target}. The mirror may serve a different version: " + "; ".join(reasons))
    return reasons


class _ChecksumMismatch(Exception):
    """A mirror served bytes whose size or SHA-256 differ from the expected ones."""


def _fetch(url: str, remote: RemoteFile, target: Path) -> None:
    """Stream ``url`` to a temporary file in ``target``, verify it, then rename it into place atomically."""
    fd, tmp_name = tempfile.mkstemp(dir=target, prefix=f".{remote.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            size, got = _stream(url, out, remote)
        if remote.size is not None and size != remote.size:
            raise _ChecksumMismatch(f"got {size} bytes, expected {remote.size}")
        if got != remote.sha256:
            raise _ChecksumMismatch(f"expected SHA-256 {remote.sha256}, got {got}")
        os.replace(tmp, target / remote.name)
    except BaseException:
        # Also on KeyboardInterrupt: never leave a partial file behind.
        tmp.unlink(missing_ok=True)
        raise


def _stream(url: str, out: BinaryIO, remote: RemoteFile) -> tuple[int, str]:
    """Copy ``url`` into ``out`` in chunks.

    Returns:
        The number of bytes written and their SHA-256.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "gradfree"})
    digest = hashlib.sha256()
    written = 0
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else remote.size
        progress = _Progress(remote.name, total)
        while chunk := response.read(_CHUNK_BYTES):
            digest.update(chunk)
            out.write(chunk)
            written += len(chunk)
            progress.update(written)
        progress.close()
    return written, digest.hexdigest()


class _Progress:
    """A one-line download meter on stderr, silent when stderr is not a terminal."""

    def __init__(self, name: str, total: int | None) -> None:
        self.name = name
        self.total = total
        self.enabled = sys.stderr.isatty()
        self._last = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        if self.total:
            percent = min(100, 100 * done // self.total)
            if percent == self._last:
                return
            self._last = percent
            text = f"{percent:3d}% of {self.total / 1e6:.1f} MB"
        else:
            text = f"{done / 1e6:.1f} MB"
        sys.stderr.write(f"\rdownloading {self.name}: {text}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _describe(error: BaseException) -> str:
    """A short reason for a failed download."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}"


def _not_found_message(spec: DatasetFiles, missing: Sequence[RemoteFile], explicit: Path | None,
                       reasons: Sequence[str] | None) -> str:
    """One message that says which files are missing, where they were looked for and where to put them."""
    parts = [f"dataset '{spec.folder}' is missing {', '.join(f.name for f in missing)}."]
    if explicit is not None:
        if not explicit.is_dir():
            parts.append(f"The data folder {explicit} does not exist.")
        else:
            lacking = {
                folder: [n for n in spec.names if not (folder / n).is_file()]
                for folder in (explicit / spec.folder, explicit)
            }
            best = min(lacking, key=lambda folder: len(lacking[folder]))
            if len(lacking[best]) == len(spec.names):
                nested = explicit / spec.folder
                parts.append(f"The data folder {explicit} holds none of them "
                             f"(looked in {nested} and {explicit}).")
            else:
                missed = ", ".join(lacking[best])
                parts.append(f"The data folder {explicit} lacks some of them (in {best}: missing {missed}).")
    if reasons is None:
        parts.append("Downloading is turned off.")
    else:
        parts.append(f"Downloading failed ({'; '.join(reasons)}).")
    cache = cache_dir() / spec.folder
    parts.append(
        f"Put the files {', '.join(spec.names)} in a folder DIR/{spec.folder}/ (or DIR/ itself) and pass "
        f"--data-dir DIR, or set the environment variable GRADFREE_DATA=DIR, or copy them into the cache "
        f"folder {cache}/."
    )
    if spec.mirrors:
        parts.append(f"They can be downloaded from {' or '.join(spec.mirrors)}.")
    return " ".join(parts)
