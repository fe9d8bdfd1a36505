"""Numba kernels of the incremental MLP engine, each taking the named tuples of :mod:`.state`.

* :mod:`.state` — :class:`~.state.Net`, :class:`~.state.Outputs`, :class:`~.state.Inputs`,
  :class:`~.state.Workspace` and the codes stored in them (no numba);
* :mod:`.activations` — the activations, as torch computes them;
* :mod:`.inputs` — the network input by feature, and the input a weight column multiplies;
* :mod:`.rows` — row losses, the general row-by-row try, and accepting a change;
* :mod:`.softmax` — the cross-entropy fast paths (output layer, last hidden layer) and :func:`try_values`,
  the entry point of every try;
* :mod:`.greedy_pass` — a whole greedy coordinate pass in one compiled call;
* :mod:`.entry` — what Python calls: the state as plain tuples, rebuilt as named tuples inside (numba types
  a named-tuple argument slowly).

Every kernel compiles with ``cache=True`` and ``error_model="numpy"``: a float division by zero gives what
IEEE says (inf or NaN) instead of raising ``ZeroDivisionError``. The check numba's default inserts before each
division is a branch that keeps a loop from vectorising; without it the logs of an accept, which divide, run
4 times faster. No kernel divides by a value that can be zero. No kernel reorders sums (no fastmath), and
only the fused background passes of a try contract a multiply and an add into a fused multiply-add
(``fastmath={"contract"}``: :func:`.softmax._relu_background_pair10` and its one-candidate twin
:func:`.softmax._relu_background_one10`), whose vector instructions are their whole cost.

Nothing from numba is imported here, so that reading :mod:`.state` does not load it. What runs on import is
:func:`drop_stale_caches`: numba keys a function's cache on its own file's timestamp, but a kernel's machine
code includes every kernel it calls, from other files too. So after an edit of ``softmax.py``, the cached
``entry.try_values`` would still run the old ``softmax`` code. The caches are therefore keyed on all the kernel
sources together.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_SOURCES = Path(__file__).resolve().parent
_STAMP = "kernel-sources.sha256"


def drop_stale_caches(folder: Path = _SOURCES) -> bool:
    """Delete numba's cached kernels in ``folder/__pycache__`` when the ``*.py`` files in ``folder`` differ from
    those they were compiled from (a hash of all of them, kept beside the caches). Numba then recompiles.

    Returns:
        whether caches were dropped. A folder that cannot be read or written (a read-only install, where numba caches
        in its user-wide folder if anywhere, and where sources change only by reinstalling, which renews every
        file's timestamp) is left alone; so are caches in ``$NUMBA_CACHE_DIR``.
    """
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.glob("*.py")))).hexdigest()
    cache = folder / "__pycache__"
    stamp = cache / _STAMP
    try:
        if stamp.is_file() and stamp.read_text() == digest:
            return False
        cache.mkdir(exist_ok=True)
        for f in cache.iterdir():
            if f.suffix in (".nbi", ".nbc"):
                f.unlink(missing_ok=True)  # another process may be dropping them too
        partial = cache / f"{_STAMP}.{os.getpid()}.tmp"
        partial.write_text(digest)
        os.replace(partial, stamp)  # never a half-written stamp
    except OSError:
        return False
    return True


drop_stale_caches()
