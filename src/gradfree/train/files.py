"""Atomic file writes: a reader never sees a half-written checkpoint, result or report."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from gradfree.errors import ConfigError, UnsafeFileError


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


def load_checkpoint(path: Path, *, map_location: torch.device | str | None = None) -> Any:
    """``torch.load(path, weights_only=True)``: tensors, numbers, strings, lists, tuples and dicts only.

    Raises:
        UnsafeFileError: the file asks to build other objects (a crafted checkpoint could run code that way);
            nothing was run.
        ConfigError: the file is missing, truncated or not a checkpoint.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
            raise UnsafeFileError(f"{path} is not plain data: it asks to build objects ({first[:160]}), which "
                                  "could run code, so it was not loaded. Delete it to start afresh.") from None
        raise ConfigError(f"cannot read {path}: {first[:200]}. Delete it to start afresh.") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}. Delete it to start afresh.") from None


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
