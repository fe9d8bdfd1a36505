"""Numba's caches of the incremental kernels are dropped when any kernel source changes (numba itself only
checks the file a function is defined in, though its machine code includes the kernels it calls)."""

from __future__ import annotations

from pathlib import Path

from gradfree.engines.incremental.kernels import drop_stale_caches


def test_caches_are_dropped_when_any_source_changes(tmp_path: Path) -> None:
    (tmp_path / "entry.py").write_text("def f(): return g()\n")
    (tmp_path / "rows.py").write_text("def g(): return 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    compiled = [cache / "entry.f-1.py311.nbi", cache / "entry.f-1.py311.1.nbc", cache / "rows.g-1.py311.nbi"]
    for f in compiled:
        f.write_bytes(b"machine code")
    (cache / "entry.cpython-311.pyc").write_bytes(b"bytecode")
    assert drop_stale_caches(tmp_path)  # no stamp yet: nothing is known about these caches
    assert not any(f.exists() for f in compiled) and (cache / "entry.cpython-311.pyc").exists()
    for f in compiled:
        f.write_bytes(b"machine code")  # numba compiles again
    assert not drop_stale_caches(tmp_path)  # the same sources: caches kept
    assert all(f.exists() for f in compiled)
    (tmp_path / "rows.py").write_text("def g(): return 2\n")  # the callee changed, entry.py did not
    assert drop_stale_caches(tmp_path)
    assert not any(f.exists() for f in compiled)
    assert not list(cache.glob("*.tmp"))


def test_a_folder_that_cannot_be_written_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").write_text("a file where the cache folder would be")
    assert not drop_stale_caches(tmp_path)
