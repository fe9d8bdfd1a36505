"""Keep freed memory in the process instead of handing it back to the system after every tensor.

glibc's ``malloc`` serves a block of 128 KiB or more (a threshold it raises as it sees such blocks freed, up to
32 MiB) from a fresh ``mmap`` and returns it with ``munmap`` when freed, and it gives the top of its heap back
once more than twice that threshold is free there. A torch forward pass on the CPU allocates and frees the same
activation tensors every call, so each call faults every page of them in again and the kernel zeroes each page:
a batch of 256 CIFAR-10 images through the compact CNN made 8,160 page faults a forward, and a third of the
process's CPU time went to the kernel. With the thresholds raised (``mmap`` only for blocks above 32 MiB, the
heap trimmed only past 1 GiB free) the freed blocks are reused and those faults are gone: ``gradfree perf
allocator`` measures the difference.

:func:`keep_freed_memory` sets this for the whole process, so the command line calls it once at start (a library
does not change its host process's allocator on import: call it yourself). It does nothing off glibc, where
``GRADFREE_MALLOC=system`` is set, or where the caller set glibc's own ``MALLOC_*_`` / ``GLIBC_TUNABLES``
variables (an explicit choice wins). The cost is memory: up to ``TRIM_THRESHOLD`` of freed heap stays mapped.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

MMAP_THRESHOLD = 32 * 2**20
"""Blocks above this (glibc's largest allowed threshold on 64-bit) still get their own mapping."""
TRIM_THRESHOLD = 2**30
"""Free memory at the top of the heap beyond this is returned to the system."""
ENV = "GRADFREE_MALLOC"
"""``system`` leaves glibc's defaults alone."""

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_GLIBC_VARIABLES = ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                    "MALLOC_MMAP_MAX_")


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; whether they were set (see the module docstring)."""
    if os.environ.get(ENV, "").strip().lower() == "system" or any(v in os.environ for v in _GLIBC_VARIABLES):
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success; the mmap threshold first, so that a failure leaves the heap trimmed as before.
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
