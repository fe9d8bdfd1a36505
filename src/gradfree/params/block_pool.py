"""Worker threads that run one job on every row block of an engine at once.

The incremental MLP engine splits its batch into row blocks, each with its own caches. Its numba kernels
release the GIL (``nogil=True``), so :meth:`BlockPool.map` runs the job on block 0 in the calling thread while
one long-lived worker thread per other block runs it on its own block. A call costs two semaphore handoffs per
worker (microseconds), small against a kernel call on thousands of rows (tens of microseconds or more); a
thread pool executor's futures cost about as much as the kernel itself.

After a ``fork`` the workers do not exist in the child: a pool used from another process runs every block in
the calling thread, one after the other (same results: the blocks never share state).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Worker(Generic[T]):
    """One daemon thread bound to one block: waits for a job, runs it on the block, reports back."""

    def __init__(self, block: T) -> None:
        self._block = block
        self._go = threading.Semaphore(0)
        self._done = threading.Semaphore(0)
        self._job: Callable[[T], object] | None = None
        self._result: object = None
        self._error: BaseException | None = None
        threading.Thread(target=self._loop, name="gradfree-block", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            job = self._job
            if job is None:
                return
            try:
                self._result, self._error = job(self._block), None
            except BaseException as err:  # handed to the caller, who re-raises it
                self._result, self._error = None, err
            self._done.release()

    def submit(self, job: Callable[[T], object]) -> None:
        self._job = job
        self._go.release()

    def result(self) -> tuple[object, BaseException | None]:
        self._done.acquire()
        return self._result, self._error

    def stop(self) -> None:
        self._job = None
        self._go.release()


def _stop_all(workers: list[_Worker]) -> None:
    for worker in workers:
        worker.stop()


class BlockPool(Generic[T]):
    """Runs ``job(block)`` for every block, in parallel threads; results in block order.

    Args:
        blocks: the blocks; the pool starts ``len(blocks) - 1`` worker threads, which end when the pool is
            garbage-collected.
    """

    def __init__(self, blocks: Sequence[T]) -> None:
        self.blocks = list(blocks)
        self._pid = os.getpid()
        self._workers: list[_Worker[T]] = [_Worker(block) for block in self.blocks[1:]]
        weakref.finalize(self, _stop_all, self._workers)

    def map(self, job: Callable[[T], R]) -> list[R]:
        """``[job(block) for block in blocks]``, the blocks after the first on the worker threads. Every block
        finishes before an error (the first in block order) is raised."""
        if not self._workers or os.getpid() != self._pid:
            return [job(block) for block in self.blocks]
        for worker in self._workers:
            worker.submit(job)
        first_error: BaseException | None = None
        try:
            results: list[object] = [job(self.blocks[0])]
        except BaseException as err:
            results, first_error = [None], err
        for worker in self._workers:
            value, error = worker.result()
            results.append(value)
            first_error = first_error or error
        if first_error is not None:
            raise first_error
        return results  # type: ignore[return-value]
