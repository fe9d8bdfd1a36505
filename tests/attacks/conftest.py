"""Shared fixtures of the attack tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def victim_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private victim cache for the whole session: the offline digits victim is trained once, on first use,
    and never lands in the user's cache. Tests point ``GRADFREE_CACHE`` at it with ``monkeypatch``."""
    return tmp_path_factory.mktemp("victim-cache")
