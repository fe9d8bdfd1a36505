"""Evaluate populations on a pool of Ray actors that rebuild members from seeds (the OpenAI-ES trick).

What crosses the wire:

* **once**, at start-up: the :class:`~gradfree.objective.problem.Problem` (model, loss, training batches),
  pickled into the object store; every actor reads it from there;
* **once per actor** (and again only after a failure or a detected divergence): the driver's strategy, pickled
  (its ``state_dict`` contents: mean, algorithm state, generator, pending generation seed), so the actor holds
  a *replica*;
* **every generation, per actor**: a message of a few hundred bytes: the generation number and seed, the
  actor's member range ``[start, stop)``, the mini-batch step, a 16-byte digest of the driver's strategy state
  and the previous generation's ``P`` losses (float64) — nothing of size ``D``. The actor applies
  ``replica.tell(previous losses)`` (strategies are deterministic given their losses), checks that its replica
  now has the driver's state digest and generation seed, rebuilds members ``[start, stop)`` as
  ``mean + scale * eps_i`` from the seed and returns their losses, ``8 * (stop - start)`` bytes.

A replica that disagrees with the driver's digest (different CPU instruction sets can change the last bits
of the noise; a driver that told other losses than it was given; a loaded checkpoint) answers "out of sync"
and the driver re-sends it the full strategy: results stay exact, only that generation costs ``O(D)`` bytes
(counted in :attr:`RayStats.resyncs` and ``sync_bytes``).

Strategies whose members are not ``mean + scale * eps_i`` (``population_spec()`` is ``None``, e.g. ``ga``)
fall back to shipping each actor its rows of ``strategy.ask()``: ``4 * D * (stop - start)`` bytes per share.

Fault tolerance: each generation is cut into contiguous shares handed to idle actors from a queue. When an
actor dies (its process is killed, its node lost), its share goes back to the queue and is run by another
actor, by default a fresh one started in its place and brought up to date from the driver's strategy. A
share's losses are accepted exactly once, so no evaluation is lost or counted twice, and since a member's
loss does not depend on which actor computed it the run equals the run without the failure.

Bytes are measured by serialising exactly what is sent: every message, strategy and problem is pickled here
and handed to Ray as a ``bytes`` object, and the lengths of those objects are what :class:`RayStats` reports
(Ray adds a task header of its own, independent of ``D``).

Reference: Salimans, Ho, Chen, Sidor, Sutskever (2017), "Evolution Strategies as a Scalable Alternative to
Reinforcement Learning", arXiv:1703.03864, section 2.1 and Algorithm 2 (shared random seeds, workers
exchange only scalar returns).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gradfree.distributed.evaluator import Evaluator, check_strategy, state_digest
from gradfree.distributed.ray_worker import ReplicaWorker, SeedTask, VectorTask
from gradfree.errors import ConfigError, GradfreeError
from gradfree.objective.problem import Problem
from gradfree.strategies.base import Strategy


class RayEvaluatorError(GradfreeError, RuntimeError):
    """The pool cannot finish a generation: every actor died, or a replica cannot be brought in sync."""


# ---- bookkeeping -----------------------------------------------------------------------------------------
@dataclass
class GenerationTraffic:
    """What one generation cost on the wire (payload bytes, measured as ``len`` of the pickled objects).

    Attributes:
        generation: the strategy's generation number.
        path: ``"seeds"`` (members rebuilt from seeds) or ``"vectors"`` (rows of the population shipped).
        tasks: share tasks sent (more than the shares when a share is re-run).
        sent_bytes: bytes of the task messages.
        sync_bytes: bytes of strategies put in the object store to (re)build replicas (0 in steady state).
        received_bytes: bytes of the results.
        failures: actors that died during the generation.
        resyncs: tasks that carried a full strategy.
        desyncs: replicas found out of sync (each re-run with a full strategy).
    """

    generation: int
    path: str
    tasks: int = 0
    sent_bytes: int = 0
    sync_bytes: int = 0
    received_bytes: int = 0
    failures: int = 0
    resyncs: int = 0
    desyncs: int = 0


@dataclass
class RayStats:
    """Traffic and failures of a :class:`RayEvaluator`.

    Attributes:
        setup_bytes: the pickled :class:`Problem`, put in the object store once.
        generations: one :class:`GenerationTraffic` per ``evaluate`` call.
        replacements: actors started to replace dead ones.
    """

    setup_bytes: int = 0
    generations: list[GenerationTraffic] = field(default_factory=list)
    replacements: int = 0

    @property
    def failures(self) -> int:
        """Actor deaths seen, over all generations."""
        return sum(t.failures for t in self.generations)

    @property
    def resyncs(self) -> int:
        """Full strategies sent, over all generations (one per actor at start-up)."""
        return sum(t.resyncs for t in self.generations)

    @property
    def desyncs(self) -> int:
        """Replicas found out of sync, over all generations."""
        return sum(t.desyncs for t in self.generations)


@dataclass
class _Slot:
    handle: Any
    pid: Any  # ObjectRef[int]
    alive: bool = True
    synced: int | None = None  # the replica's generation (completed tells) as far as the driver knows


def connect(address: str | None = None, *, num_cpus: int | None = None,
            runtime_env: dict[str, Any] | None = None) -> bool:
    """Make sure this process is connected to Ray; returns whether this call started it.

    Args:
        address: ``None`` or ``"local"`` starts a local Ray (``num_cpus`` CPUs); ``"auto"`` joins the cluster
            this machine is part of (after ``ray start --head`` or ``ray start --address``);
            ``"ray://host:10001"`` connects through Ray Client; ``"host:6379"`` joins a cluster by its GCS
            address. Ignored when this process is already connected.
        num_cpus: CPUs of a local Ray (default: all of this machine's).
        runtime_env: passed to ``ray.init`` (e.g. ``{"pip": ["gradfree"]}`` when the cluster lacks it).

    Raises:
        ConfigError: ray is not installed, or the cluster cannot be reached.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray evaluator needs ray: pip install 'ray[default]'") from None
    if address is not None and not address.strip():
        raise ConfigError("the Ray address is empty; give auto, ray://HOST:10001, HOST:6379 or local")
    if ray.is_initialized():
        return False
    if address == "local":
        address = None
    options: dict[str, Any] = {"logging_level": logging.WARNING}
    if runtime_env is not None:
        options["runtime_env"] = runtime_env
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **options)
        return True
    if num_cpus is not None:
        raise ConfigError("num_cpus applies to a local Ray only; a cluster's CPUs are set by `ray start --num-cpus`")
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ConfigError(
            f"could not connect to the Ray cluster at {address!r} ({err}); start one with `ray start --head` "
            "and pass --ray-address auto on a node of it, or ray://HEAD:10001 from elsewhere"
        ) from None
    return True


class RayEvaluator(Evaluator):
    """Evaluates generations on a pool of Ray actors that rebuild members from generation seeds.

    Args:
        problem: the model, loss and data, shipped once to every actor.
        num_actors: actors in the pool (default: the cluster's CPUs // ``num_cpus_per_actor``).
        address: Ray to use when this process is not connected yet (see :func:`connect`); ``None`` starts a
            local one with ``num_cpus`` CPUs.
        num_cpus: CPUs of a Ray started here (``address=None`` only).
        num_cpus_per_actor: CPUs Ray reserves for each actor.
        threads_per_actor: torch threads in each actor (default ``num_cpus_per_actor``).
        shares_per_actor: each generation is cut into ``shares_per_actor * live actors`` shares (at most ``P``)
            that idle actors take from a queue; more shares balance uneven actors at more messages.
        replace_failed: start a new actor when one dies (else the survivors take over its shares).
        max_replacements: give up after this many replacements (default ``4 * num_actors``).
        history: generations of losses kept to bring a lagging replica up to date without a full strategy.
        check_replicas: compare a digest of each replica's state with the driver's every generation (costs
            one hash of the state per generation on each side); off, a divergence would go unnoticed.
        runtime_env: passed to ``ray.init`` when this evaluator connects.
        startup_timeout: seconds to wait for the actors to start.
        on_dispatch: ``fn(evaluator, generation)`` called once per generation right after its first tasks are
            sent (for monitoring, and for tests that inject failures mid-generation).

    Attributes:
        stats: traffic and failures (:class:`RayStats`).
        evaluations: members scored and accepted, counted here at the driver.
    """

    def __init__(
        self,
        problem: Problem,
        *,
        num_actors: int | None = None,
        address: str | None = None,
        num_cpus: int | None = None,
        num_cpus_per_actor: float = 1,
        threads_per_actor: int | None = None,
        shares_per_actor: int = 1,
        replace_failed: bool = True,
        max_replacements: int | None = None,
        history: int = 8,
        check_replicas: bool = True,
        runtime_env: dict[str, Any] | None = None,
        startup_timeout: float = 120.0,
        on_dispatch: Callable[[RayEvaluator, int], None] | None = None,
    ) -> None:
        if num_actors is not None and num_actors < 1:
            raise ConfigError(f"num_actors must be >= 1, got {num_actors}")
        if num_cpus_per_actor <= 0 or shares_per_actor < 1 or history < 1:
            raise ConfigError("num_cpus_per_actor must be > 0, shares_per_actor and history >= 1")
        self._owns_ray = connect(address, num_cpus=num_cpus, runtime_env=runtime_env)
        import ray
        import ray.cloudpickle as cloudpickle

        self._ray, self._dumps = ray, cloudpickle.dumps
        if num_actors is None:
            cpus = float(ray.cluster_resources().get("CPU", 1))
            num_actors = max(1, int(cpus // num_cpus_per_actor))
        self.problem = problem
        self.evaluations = 0
        self.num_actors = num_actors
        self.stats = RayStats()
        self.shares_per_actor, self.replace_failed = shares_per_actor, replace_failed
        self.max_replacements = 4 * num_actors if max_replacements is None else max_replacements
        self.history, self.check_replicas, self.on_dispatch = history, check_replicas, on_dispatch
        threads = threads_per_actor if threads_per_actor is not None else max(1, int(num_cpus_per_actor))
        problem_bytes = cloudpickle.dumps(problem)
        self.stats.setup_bytes = len(problem_bytes)
        self._problem_ref = ray.put(problem_bytes)
        self._actor_cls: Any = ray.remote(num_cpus=num_cpus_per_actor, max_restarts=0, max_task_retries=0)(
            ReplicaWorker
        )
        self._threads = threads
        self._losses: dict[int, bytes] = {}  # generation -> float64 losses returned, for replicas to catch up
        self._closed = False
        self._strategy: Callable[[], Strategy | None] = lambda: None  # a weak reference to the last strategy
        self._slots: list[_Slot] = [self._spawn() for _ in range(num_actors)]
        ready, _ = ray.wait([s.pid for s in self._slots], num_returns=num_actors, timeout=startup_timeout)
        if len(ready) < num_actors:
            self.close()
            raise ConfigError(
                f"only {len(ready)} of {num_actors} Ray actors started within {startup_timeout:.0f} s; the cluster "
                f"has {ray.cluster_resources().get('CPU', 0)} CPUs and each actor asks for {num_cpus_per_actor}: "
                "use fewer actors or add nodes"
            )
        try:
            ray.get(ready)
        except ray.exceptions.RayError as err:
            self.close()
            raise ConfigError(
                f"the Ray actors failed to start ({type(err).__name__}: {str(err).splitlines()[0]}); every node "
                "needs the same torch and gradfree as this one (install them, or pass runtime_env=), and the "
                "problem's loss function must be importable there"
            ) from None

    # ---- the pool ---------------------------------------------------------------------------------------
    def _spawn(self) -> _Slot:
        handle = self._actor_cls.remote(self._problem_ref, self._threads)
        return _Slot(handle, handle.pid.remote())

    def pids(self) -> list[int]:
        """Process ids of the live actors, in pool order."""
        return [int(p) for p in self._ray.get([s.pid for s in self._slots if s.alive])]

    def actors(self) -> list[Any]:
        """Handles of the live actors, in pool order."""
        return [s.handle for s in self._slots if s.alive]

    def _retire(self, slot: _Slot) -> None:
        slot.alive, slot.synced = False, None
        with contextlib.suppress(Exception):  # already gone
            self._ray.kill(slot.handle, no_restart=True)
        if self.replace_failed and self.stats.replacements < self.max_replacements:
            self._slots.append(self._spawn())
            self.stats.replacements += 1

    # ---- evaluation -------------------------------------------------------------------------------------
    def evaluate(self, strategy: Strategy, *, step: int | None = None) -> Tensor:
        """Losses ``(P,)`` float64 of the pending generation, scored by the actors (see the module docstring)."""
        if self._closed:
            raise ConfigError("this RayEvaluator is closed; build a new one")
        check_strategy(strategy, self.problem)
        if strategy.device.type != "cpu":
            raise ConfigError("the Ray evaluator runs on CPU; build the strategy with a CPU init_mean")
        if self._strategy() is not strategy:  # another strategy object: no replica can be assumed current
            self._strategy = weakref.ref(strategy)  # (not id(): a new object may reuse a freed object's id)
            for slot in self._slots:
                slot.synced = None
        spec = strategy.population_spec()
        g = strategy.generation
        traffic = GenerationTraffic(g, "seeds" if spec is not None else "vectors")
        self.stats.generations.append(traffic)
        if spec is None:
            population = strategy.ask()

            def message(slot: _Slot, start: int, stop: int) -> tuple[bytes, bool]:
                # clone: pickling a view would ship the whole population's storage
                task = VectorTask(g, start, stop, step, population[start:stop].clone())
                return pickle.dumps(task, protocol=5), False
        else:
            digest = state_digest(strategy.state_dict()) if self.check_replicas else b""

            def message(slot: _Slot, start: int, stop: int) -> tuple[bytes, bool]:
                k = slot.synced
                if k is not None and k <= g and all(i in self._losses for i in range(k, g)):
                    catch_up, sync = tuple(self._losses[i] for i in range(k, g)), False
                else:
                    catch_up, sync = (), True
                task = SeedTask(g, spec.gen_seed, start, stop, step, catch_up, digest)
                return pickle.dumps(task, protocol=5), sync

        losses = self._run(strategy, message, traffic, seeds=spec is not None)
        self._losses[g] = losses.numpy().tobytes()
        for old in [i for i in self._losses if i <= g - self.history]:
            del self._losses[old]
        self.evaluations += int(losses.shape[0])
        return losses

    def _run(self, strategy: Strategy, message: Callable[[_Slot, int, int], tuple[bytes, bool]],
             traffic: GenerationTraffic, *, seeds: bool) -> Tensor:
        """Hand the shares to idle actors until every member has exactly one accepted loss."""
        ray = self._ray
        p = strategy.popsize
        live = sum(s.alive for s in self._slots)
        n_shares = max(1, min(p, self.shares_per_actor * max(live, 1)))
        bounds = [round(i * p / n_shares) for i in range(n_shares + 1)]
        queue = deque(zip(bounds[:-1], bounds[1:], strict=True))
        out = torch.full((p,), float("nan"), dtype=torch.float64)
        done = torch.zeros(p, dtype=torch.bool)
        inflight: dict[Any, tuple[_Slot, tuple[int, int], bool]] = {}
        sync_ref: Any = None
        notified = False
        while queue or inflight:
            busy = {id(slot) for slot, _, _ in inflight.values()}
            for slot in [s for s in self._slots if s.alive and id(s) not in busy]:
                if not queue:
                    break
                start, stop = queue.popleft()
                payload, sync = message(slot, start, stop)
                if sync and sync_ref is None:
                    blob = self._dumps(strategy)
                    sync_ref = ray.put(blob)
                    traffic.sync_bytes += len(blob)
                traffic.tasks += 1
                traffic.sent_bytes += len(payload)
                traffic.resyncs += int(sync)
                ref = slot.handle.run.remote(payload, sync_ref if sync else None)
                inflight[ref] = (slot, (start, stop), sync)
            if not notified and self.on_dispatch is not None:
                notified = True
                self.on_dispatch(self, strategy.generation)
            if not inflight:
                raise RayEvaluatorError(
                    f"every Ray actor died and {self.stats.replacements} replacements were started (limit "
                    f"{self.max_replacements}); {len(queue)} share(s) of generation {traffic.generation} are left"
                )
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                slot, share, synced = inflight.pop(ref)
                try:
                    blob = ray.get(ref)
                except ray.exceptions.RayActorError:
                    traffic.failures += 1
                    self._retire(slot)
                    queue.appendleft(share)
                    continue
                except Exception:
                    slot.synced = None  # the replica may be half-updated
                    raise
                traffic.received_bytes += len(blob)
                status, data = pickle.loads(blob)
                if status != "ok":
                    if synced:
                        raise RayEvaluatorError(f"a replica rebuilt from the driver's strategy disagrees: {data}")
                    traffic.desyncs += 1
                    slot.synced = None
                    queue.appendleft(share)
                    continue
                start, stop = share
                if bool(done[start:stop].any()):  # cannot happen: each share is queued once at a time
                    raise AssertionError(f"members {start}..{stop} were scored twice")
                out[start:stop] = torch.frombuffer(bytearray(data), dtype=torch.float64)
                done[start:stop] = True
                if seeds:
                    slot.synced = strategy.generation
        return out

    # ---- checks -----------------------------------------------------------------------------------------
    def replica_states(self, strategy: Strategy) -> list[dict[str, Any]]:
        """Bring every live replica to ``strategy``'s state with the losses it was told; their ``state_dict``.

        For verification: each should equal ``strategy.state_dict()`` bit for bit. Actors without a replica
        are skipped.
        """
        g = strategy.generation
        if self._strategy() is not strategy:
            return []
        refs = []
        for slot in self._slots:
            k = slot.synced
            if not slot.alive or k is None or not all(i in self._losses for i in range(k, g)):
                continue
            catch_up = tuple(self._losses[i] for i in range(k, g))
            refs.append(slot.handle.replica_state.remote(catch_up, strategy.pending_seed is not None))
            slot.synced = g
        return [pickle.loads(b) for b in self._ray.get(refs) if b is not None]

    def close(self) -> None:
        """Kill the actors, and shut Ray down if this evaluator started it."""
        if self._closed:
            return
        self._closed = True
        for slot in getattr(self, "_slots", []):
            if slot.alive:
                with contextlib.suppress(Exception):  # already gone
                    self._ray.kill(slot.handle, no_restart=True)
                slot.alive = False
        if self._owns_ray:
            self._ray.shutdown()

    def __repr__(self) -> str:
        live = sum(s.alive for s in getattr(self, "_slots", []))
        return f"RayEvaluator(num_dims={self.problem.num_dims}, actors={live}/{self.num_actors})"
