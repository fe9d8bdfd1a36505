"""Atomic file writes: a reader never sees a half-written checkpoint, result or report."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Any, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should be as readable as any new file
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename over ``path``."""
    _atomic(path, lambda f: torch.save(obj, f), "wb")


def save_json(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented JSON atomically."""
    _atomic(path, lambda f: f.write(json.dumps(obj, indent=2, default=str) + "\n"), "w")


def save_text(text: str, path: Path) -> None:
    """Write ``text`` atomically."""
    _atomic(path, lambda f: f.write(text), "w")


def save_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` atomically."""
    _atomic(path, lambda f: f.write(data), "wb")


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete temporary files that a killed atomic write left in ``folder``; returns what was removed.

    Only names of the form this module creates (``.<name>.<random>.tmp``) are touched.
    """
    removed = []
    if folder.is_dir():
        for tmp in folder.glob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed
