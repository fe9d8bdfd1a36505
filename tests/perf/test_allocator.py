"""keep_freed_memory: a forward pass reuses the freed activations' pages instead of faulting them in again."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from gradfree.perf import allocator as perf_allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def _child(mode: str, **env: str) -> dict[str, float]:
    """One measurement child of the perf program: the quarter-width CIFAR CNN on a batch of 64, timed for 0.5 s
    (a few forwards and steps more than 0.2 s gives, so that the first ones, which fault in any mode, weigh
    less)."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "GRADFREE_MALLOC")}
    done = subprocess.run([sys.executable, "-m", "gradfree.perf.allocator", "--child", mode, "--model", "cifar:0.25",
                           "--batch", "64", "--seconds", "0.5"], capture_output=True, text=True, check=True,
                          env={**clean, **env})
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_kept_memory_stops_refaulting_the_activations() -> None:
    system, kept = _child("system"), _child("kept")
    assert kept["kept"] and not system["kept"]
    # glibc's defaults give freed activations back and fault them in again: hundreds to thousands of pages in
    # every training step (960-3,000 seen). In a forward it depends on how its adaptive mmap threshold has
    # moved: 0-2,000 pages seen on one machine, with the load beside it. Kept: tens in a step, a few in a forward.
    assert system["step_faults"] > 100 and kept["step_faults"] < system["step_faults"] / 5
    assert kept["forward_faults"] < 20


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_an_explicit_choice_of_the_caller_wins() -> None:
    assert not _child("kept", GRADFREE_MALLOC="system")["kept"]
    assert not _child("kept", MALLOC_MMAP_THRESHOLD_="65536")["kept"]


def test_the_perf_program_prints_both_settings_and_the_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    status = perf_allocator.main(["--model", "mlp:784-32-10", "--shape", "784", "--batch", "8", "--seconds",
                                  "0.05", "--rounds", "1"])
    out = capsys.readouterr().out
    assert status == 0 and "glibc defaults" in out and "keep_freed_memory()" in out
    assert "forward" in out and "training step" in out and "x," in out
    assert perf_allocator.main(["--shape", "3,x"]) == 2
    assert "--shape" in capsys.readouterr().err
