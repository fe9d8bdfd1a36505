"""The actor side of :class:`~gradfree.distributed.ray_evaluator.RayEvaluator`: what a share of a generation
looks like on the wire (:class:`SeedTask`, :class:`VectorTask`) and the actor that scores it
(:class:`ReplicaWorker`, which keeps a replica of the driver's strategy and rebuilds members from seeds).
Plain Python: Ray is imported only inside the actor, where it is always present. The protocol is described in
:mod:`gradfree.distributed.ray_evaluator`.
"""

from __future__ import annotations

import os
import pickle
from typing import NamedTuple

import torch
from torch import Tensor

from gradfree.distributed.evaluator import state_digest
from gradfree.objective.problem import Problem
from gradfree.strategies.base import Strategy


class SeedTask(NamedTuple):
    """A share of a generation described by seeds: what an actor receives each generation (pickled).

    Attributes:
        generation: the driver strategy's ``generation`` (completed tells).
        gen_seed: the pending generation's seed.
        start, stop: the member range.
        step: the mini-batch (``Problem.batch(step)``), ``None`` for all rows.
        catch_up: float64 losses (``P * 8`` raw bytes each) of the generations the replica has not been told
            yet, oldest first; usually exactly one.
        digest: :func:`state_digest` of the driver strategy's state with the generation pending
            (``b""`` skips the check).
    """

    generation: int
    gen_seed: int
    start: int
    stop: int
    step: int | None
    catch_up: tuple[bytes, ...]
    digest: bytes


class VectorTask(NamedTuple):
    """A share of a generation shipped as vectors (strategies without a seed description, e.g. ``ga``)."""

    generation: int
    start: int
    stop: int
    step: int | None
    vectors: Tensor


class ReplicaWorker:
    """The actor: holds the problem, a replica of the strategy, and scores shares. Plain Python (no ray import).

    Args:
        problem: the :class:`Problem` pickled with cloudpickle (as put in the object store by the driver).
        threads: torch intra-op threads in this process.
    """

    def __init__(self, problem: bytes, threads: int) -> None:
        import ray.cloudpickle as cloudpickle  # the worker runs inside Ray, where this is always present

        from gradfree.allocator import keep_freed_memory

        keep_freed_memory()  # the actor owns its process, as the command line does
        torch.set_num_threads(threads)
        self._loads = cloudpickle.loads
        self.problem: Problem = cloudpickle.loads(problem)
        self.loss = self.problem.population_loss()
        self.replica: Strategy | None = None

    def pid(self) -> int:
        """This actor's process id (tests kill it to simulate a crash)."""
        return os.getpid()

    def run(self, message: bytes, sync: bytes | None) -> bytes:
        """Score one share; returns ``pickle(("ok", float64 loss bytes))`` or ``pickle(("desync", reason))``.

        Args:
            message: a pickled :class:`SeedTask` or :class:`VectorTask`.
            sync: the driver's strategy pickled with cloudpickle, replacing the replica, or ``None``.
        """
        task = pickle.loads(message)
        if isinstance(task, VectorTask):
            members = task.vectors
        else:
            reason = self._bring_up_to_date(task, sync)
            if reason:
                self.replica = None
                return pickle.dumps(("desync", reason))
            assert self.replica is not None
            spec = self.replica.population_spec()
            assert spec is not None and self.replica.scale is not None
            members = spec.members(self.replica.mean, self.replica.scale, task.start, task.stop)
        x, y = self.problem.batch(task.step)
        losses = self.loss(members, x, y).detach().to("cpu", torch.float64)
        return pickle.dumps(("ok", losses.numpy().tobytes()), protocol=5)

    def _bring_up_to_date(self, task: SeedTask, sync: bytes | None) -> str:
        """Apply the sync or the catch-up losses; an empty string when the replica matches the driver."""
        if sync is not None:
            self.replica = self._loads(sync)
        elif self.replica is None:
            return "no replica"
        else:
            _tell_all(self.replica, task.catch_up)
        replica = self.replica
        assert replica is not None
        spec = replica.population_spec()
        if spec is None:
            return "the strategy has no seed description"
        if replica.generation != task.generation or spec.gen_seed != task.gen_seed:
            return f"replica at generation {replica.generation} seed {spec.gen_seed}, driver at {task.generation}"
        if task.digest and state_digest(replica.state_dict()) != task.digest:
            return f"replica state differs from the driver's at generation {task.generation}"
        return ""

    def replica_state(self, catch_up: tuple[bytes, ...], pending: bool) -> bytes | None:
        """Tell the replica ``catch_up`` and return its ``state_dict`` pickled (``None`` without a replica)."""
        if self.replica is None:
            return None
        _tell_all(self.replica, catch_up)
        if pending:
            self.replica.population_spec()
        return pickle.dumps(self.replica.state_dict())


def _tell_all(replica: Strategy, catch_up: tuple[bytes, ...]) -> None:
    for data in catch_up:
        replica.ask()  # the pending generation, or the next one drawn from the replica's own generator
        replica.tell(torch.frombuffer(bytearray(data), dtype=torch.float64))
