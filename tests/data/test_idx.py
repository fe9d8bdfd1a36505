"""The IDX parser: round trips and the ways a file can be broken."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
import torch

from gradfree.data.idx import read_idx, write_idx
from gradfree.errors import DataError


@pytest.mark.parametrize("name", ["x-idx3-ubyte.gz", "x-idx3-ubyte"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.float32,
                                   torch.float64])
def test_round_trip(tmp_path: Path, name: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    values = (torch.randn(3, 5, 7, generator=g) * 50).to(dtype)
    write_idx(tmp_path / name, values)
    back = read_idx(tmp_path / name)
    assert back.dtype == dtype
    assert torch.equal(back, values)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_gzip_told_apart_by_content(tmp_path: Path) -> None:
    labels = torch.arange(10, dtype=torch.uint8)
    write_idx(tmp_path / "labels.gz", labels)
    (tmp_path / "labels.gz").rename(tmp_path / "labels")  # compressed, but named as plain
    assert torch.equal(read_idx(tmp_path / "labels"), labels)


def test_known_bytes(tmp_path: Path) -> None:
    raw = b"\x00\x00\x08\x01" + struct.pack(">I", 3) + bytes([7, 8, 9])
    (tmp_path / "l").write_bytes(raw)
    assert read_idx(tmp_path / "l").tolist() == [7, 8, 9]
    raw = b"\x00\x00\x0b\x02" + struct.pack(">II", 1, 2) + struct.pack(">hh", -2, 300)
    (tmp_path / "s").write_bytes(raw)
    assert read_idx(tmp_path / "s").tolist() == [[-2, 300]]


def _expect_corrupt(path: Path, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert "download it again" in str(info.value)


@pytest.mark.parametrize("compress", [True, False])
def test_truncated_payload(tmp_path: Path, compress: bool) -> None:
    raw = b"\x00\x00\x08\x03" + struct.pack(">III", 4, 28, 28) + bytes(4 * 28 * 28 - 1)
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    _expect_corrupt(path, "payload has 3135 bytes")


def test_trailing_bytes(tmp_path: Path) -> None:
    raw = b"\x00\x00\x08\x01" + struct.pack(">I", 2) + bytes(3)
    (tmp_path / "long").write_bytes(raw)
    _expect_corrupt(tmp_path / "long", "payload has 3 bytes")


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00", b"<htm"])
def test_bad_magic(tmp_path: Path, magic: bytes) -> None:
    (tmp_path / "bad").write_bytes(magic + struct.pack(">I", 1) + b"\x00")
    _expect_corrupt(tmp_path / "bad", "magic number")


def test_short_header(tmp_path: Path) -> None:
    (tmp_path / "h").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 5))
    _expect_corrupt(tmp_path / "h", "header is cut short")
    (tmp_path / "e").write_bytes(b"\x00\x00")
    _expect_corrupt(tmp_path / "e", "too few")


def test_corrupt_gzip(tmp_path: Path) -> None:
    write_idx(tmp_path / "x.gz", torch.zeros(50, 28, 28, dtype=torch.uint8))
    data = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])  # an interrupted download
    _expect_corrupt(tmp_path / "cut.gz", "not valid gzip")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.gz").write_bytes(bytes(flipped))
    _expect_corrupt(tmp_path / "flip.gz", "not valid gzip")
    (tmp_path / "junk.gz").write_bytes(b"\x1f\x8b" + b"junk" * 10)
    _expect_corrupt(tmp_path / "junk.gz", "not valid gzip")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "absent.gz")
