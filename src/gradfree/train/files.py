"""Atomic file writes: a reader never sees a half-written checkpoint, result or report."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic(path: Path, write: Any, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
