"""The IDX file format of MNIST and Fashion-MNIST, plain or gzip-compressed.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one big-endian
uint32 per dimension, then the values in C order, big-endian. The parser checks every part of that structure,
so a truncated or wrong file is reported as such instead of surfacing later as a reshape error.
Reference: Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database", http://yann.lecun.com/exdb/mnist/.
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

from gradfree.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"

# type code -> big-endian numpy dtype
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES: dict[torch.dtype, int] = {
    torch.uint8: 0x08,
    torch.int8: 0x09,
    torch.int16: 0x0B,
    torch.int32: 0x0C,
    torch.float32: 0x0D,
    torch.float64: 0x0E,
}
_MAX_DIMS = 16


def read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file, gzip-compressed or plain (told apart by content, not by name).

    Args:
        path: the file.

    Returns:
        A tensor of the file's shape and type (uint8 for images and labels).

    Raises:
        DataError: the file is unreadable, not valid gzip, or not a well-formed IDX file; the message names
            the file and says to delete it and download it again.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise _corrupt(path, f"it is not valid gzip ({e})") from e
    return _parse(path, raw)


def _parse(path: Path, raw: bytes) -> torch.Tensor:
    """The tensor held by the uncompressed IDX bytes ``raw`` of ``path``."""
    if len(raw) < 4:
        raise _corrupt(path, f"it has {len(raw)} bytes, too few for an IDX header")
    zero, code, ndim = raw[:2], raw[2], raw[3]
    if zero != b"\x00\x00" or code not in _DTYPES or not 1 <= ndim <= _MAX_DIMS:
        raise _corrupt(path, f"its magic number 0x{raw[:4].hex()} is not an IDX magic number")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _corrupt(path, f"its header is cut short ({len(raw)} bytes, {ndim} dimensions need {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        raise _corrupt(path, f"its payload has {got} bytes but its header {tuple(shape)} of {dtype.name} "
                             f"needs {expected}")
    values = np.frombuffer(raw, dtype=dtype, offset=header).astype(dtype.newbyteorder("="))
    return torch.from_numpy(values.reshape(shape))


def _corrupt(path: Path, why: str) -> DataError:
    return DataError(f"{path} is truncated or corrupt: {why}. Delete it and download it again.")


def write_idx(path: Path, values: torch.Tensor) -> None:
    """Write a tensor as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    The file is written under a temporary name and renamed into place, so it is never half-written.

    Args:
        path: the file to create or replace.
        values: a tensor of at least one dimension, of type uint8, int8, int16, int32, float32 or float64.
    """
    path = Path(path)
    if values.dtype not in _CODES:
        raise TypeError(f"IDX cannot hold {values.dtype}; use one of {sorted(map(str, _CODES))}")
    if not 1 <= values.dim() <= _MAX_DIMS:
        raise ValueError(f"IDX holds 1 to {_MAX_DIMS} dimensions, got {values.dim()}")
    code = _CODES[values.dtype]
    array = values.detach().cpu().contiguous().numpy().astype(_DTYPES[code])
    header = bytes([0, 0, code, values.dim()]) + struct.pack(f">{values.dim()}I", *values.shape)
    data = header + array.tobytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
