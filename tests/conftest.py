"""Shared test settings: single-threaded torch, and where the real datasets live."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


def _shared_data_dir() -> Path:
    """``../shared/data`` next to the repository: the real datasets (absent on most machines)."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> Iterator[None]:
    """Tests use tiny tensors: one thread is faster than several on a busy small machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The folder of the real datasets (tests using it should skip when it is absent)."""
    return _shared_data_dir()
