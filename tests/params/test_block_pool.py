"""BlockPool: one job on every block, blocks after the first on their own threads."""

from __future__ import annotations

import gc
import os
import threading

import pytest

from gradfree.params.block_pool import BlockPool


def test_map_returns_results_in_block_order_from_worker_threads() -> None:
    pool = BlockPool([1, 2, 3])
    seen: dict[int, str] = {}

    def job(block: int) -> int:
        seen[block] = threading.current_thread().name
        return block * 10

    assert pool.map(job) == [10, 20, 30]
    assert seen[1] == threading.current_thread().name  # the first block runs in the caller
    assert seen[2] == seen[3] == "gradfree-block" and len({seen[2], seen[3]}) == 1
    assert pool.map(lambda b: -b) == [-1, -2, -3]  # the workers serve any number of calls


def test_an_error_in_any_block_is_raised_after_every_block_finished() -> None:
    pool = BlockPool([0, 1, 2])
    done: list[int] = []

    def job(block: int) -> int:
        if block == 1:
            raise ValueError("block 1 failed")
        done.append(block)
        return block

    with pytest.raises(ValueError, match="block 1 failed"):
        pool.map(job)
    assert sorted(done) == [0, 2]
    assert pool.map(lambda b: b) == [0, 1, 2]  # still usable


def test_workers_end_when_the_pool_is_collected() -> None:
    before = sum(t.name == "gradfree-block" for t in threading.enumerate())
    pool = BlockPool(list(range(4)))
    assert sum(t.name == "gradfree-block" for t in threading.enumerate()) == before + 3
    del pool
    gc.collect()
    for t in [t for t in threading.enumerate() if t.name == "gradfree-block"]:
        t.join(timeout=5)
    assert sum(t.name == "gradfree-block" and t.is_alive() for t in threading.enumerate()) <= before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_runs_every_block_itself() -> None:
    pool = BlockPool([1, 2])
    pool.map(lambda b: b)  # workers started in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the parent's workers do not exist here; map must not wait for them
        os.close(read)
        names = pool.map(lambda b: threading.current_thread().name)
        os.write(write, ",".join(names).encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    got = os.read(read, 1000).decode()
    os.close(read)
    assert status == 0
    assert got.split(",") == [threading.current_thread().name] * 2
