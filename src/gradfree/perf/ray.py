"""``gradfree perf ray``: evaluations/s of the local and the Ray evaluator, and bytes sent per generation.

Throughput: OpenAI-ES (``open-es``) on the 784-32-10 ReLU MLP (25,450 parameters), cross-entropy on one
random batch of ``N`` rows (full batch every generation), population ``P``. Each configuration — local
(in-process, batched) and Ray with 1, 2 ... actors — starts from the same seed, runs one untimed warm-up
generation (for Ray it ships each actor the strategy), then ``G`` timed generations of evaluate + tell; its
rate is ``P * G / seconds``, the median over ``repeats`` rounds (configurations take turns within a round so
that load from elsewhere on the machine hits them alike). Actor start-up is not timed. Every configuration
must end at the local run's mean; the largest difference is printed.

Bytes: for each model (default a 25k and a 1M parameter MLP), ``open-es`` (members rebuilt from seeds) and
``ga`` (no seed description: the rows of the population are shipped) run a few generations on a pool; the
table shows the one-off bytes (the problem; the strategy sent to each actor at the first generation) and the
bytes per generation after that, measured as the length of the pickled messages the driver hands to Ray.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from gradfree.distributed.evaluator import Evaluator, LocalEvaluator
from gradfree.distributed.evolve import evolve
from gradfree.errors import ConfigError
from gradfree.models.mlp import mlp
from gradfree.models.registry import build_model
from gradfree.objective.problem import Problem
from gradfree.params.flat import FlatParams
from gradfree.perf.common import environment, int_list, run_program, set_threads, word_list
from gradfree.strategies import STRATEGIES, Strategy

MODEL = "784-32-10"
BYTES_MODELS: tuple[str, ...] = ("784-32-10", "784-1024-192-10")  # 25,450 and 1,002,570 parameters
STRATEGY = "open-es"


@dataclass(frozen=True)
class ThroughputRow:
    """One evaluator configuration of the throughput table.

    Attributes:
        config: ``"local"`` or ``"ray-K"``.
        actors: Ray actors (0 for local).
        generations: timed generations per round.
        evals_per_s: median over rounds of ``P * G / seconds``.
        seconds_per_generation: median over rounds of ``seconds / G``.
        max_abs_diff: largest ``|mean - local mean|`` at the end of the runs (0.0 for local).
        sent_per_generation: mean payload bytes sent per timed generation (0 for local).
    """

    config: str
    actors: int
    generations: int
    evals_per_s: float
    seconds_per_generation: float
    max_abs_diff: float
    sent_per_generation: float


@dataclass(frozen=True)
class BytesRow:
    """Traffic of one (model, strategy) run on a Ray pool.

    Attributes:
        model: MLP widths; params: its parameter count ``D``.
        strategy: the strategy; path: ``"seeds"`` or ``"vectors"``.
        actors: actors in the pool.
        setup_bytes: the pickled problem (model + data), put in the object store once.
        startup_sync_bytes: strategies sent at the first generation (put once, read by every actor).
        sent_per_generation: mean task-message bytes per generation after the first.
        received_per_generation: mean result bytes per generation after the first.
        sync_after_startup: strategy bytes sent after the first generation (0 when replicas stay in step).
    """

    model: str
    params: int
    strategy: str
    path: str
    actors: int
    setup_bytes: int
    startup_sync_bytes: int
    sent_per_generation: float
    received_per_generation: float
    sync_after_startup: int


def _random_problem(widths: str, rows: int, seed: int) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, int(widths.split("-")[0]), generator=gen)
    y = torch.randint(0, int(widths.split("-")[-1]), (rows,), generator=gen)
    return Problem.of(build_model(f"mlp:{widths}", seed=seed), F.cross_entropy, x, y, batch_size=None)


def _strategy(name: str, problem: Problem, popsize: int, seed: int) -> Strategy:
    return STRATEGIES.get(name)(problem.num_dims, popsize, init_mean=problem.flat.get(), sigma=0.02, seed=seed)


def run_throughput(
    *,
    actors: Sequence[int] = (1, 2),
    popsize: int = 32,
    batch: int = 256,
    generations: int = 30,
    repeats: int = 3,
    cpus_per_actor: float = 1,
    seed: int = 0,
) -> list[ThroughputRow]:
    """Time local and Ray evaluation of ``open-es`` on the 784-32-10 MLP; Ray must already be connected.

    Returns:
        one :class:`ThroughputRow` per configuration, local first.
    """
    from gradfree.distributed.ray_evaluator import RayEvaluator

    if popsize < 2 or batch < 1 or generations < 1 or repeats < 1 or not actors or min(actors) < 1:
        raise ConfigError("popsize >= 2, batch, generations, repeats and actors >= 1 are required")
    problem = _random_problem(MODEL, batch, seed)
    configs = [0, *actors]
    rates: dict[int, list[float]] = {k: [] for k in configs}
    per_gen: dict[int, list[float]] = {k: [] for k in configs}
    sent: dict[int, list[float]] = {k: [] for k in configs}
    means: dict[int, torch.Tensor] = {}
    for _ in range(repeats):
        for k in configs:
            evaluator: Evaluator = (LocalEvaluator(problem) if k == 0 else
                                    RayEvaluator(problem, num_actors=k, num_cpus_per_actor=cpus_per_actor))
            try:
                strategy = _strategy(STRATEGY, problem, popsize, seed)
                evolve(strategy, evaluator, 1)  # warm-up: first-call costs, the strategy shipped to each actor
                start = time.perf_counter()
                evolve(strategy, evaluator, generations)
                seconds = time.perf_counter() - start
            finally:
                evaluator.close()
            rates[k].append(popsize * generations / seconds)
            per_gen[k].append(seconds / generations)
            if isinstance(evaluator, RayEvaluator):
                timed = evaluator.stats.generations[1:]
                sent[k].append(sum(t.sent_bytes + t.sync_bytes for t in timed) / len(timed))
            means[k] = strategy.mean
    return [
        ThroughputRow(
            config="local" if k == 0 else f"ray-{k}", actors=k, generations=generations,
            evals_per_s=statistics.median(rates[k]), seconds_per_generation=statistics.median(per_gen[k]),
            max_abs_diff=float((means[k] - means[0]).abs().max()),
            sent_per_generation=statistics.median(sent[k]) if sent[k] else 0.0,
        )
        for k in configs
    ]


def run_bytes(
    *,
    models: Sequence[str] = BYTES_MODELS,
    strategies: Sequence[str] = ("open-es", "ga"),
    popsize: int = 32,
    rows: int = 64,
    generations: int = 3,
    actors: int = 2,
    cpus_per_actor: float = 1,
    seed: int = 0,
) -> list[BytesRow]:
    """Payload bytes per generation on a pool of ``actors``, per model and strategy; Ray must be connected."""
    from gradfree.distributed.ray_evaluator import RayEvaluator

    if generations < 2:
        raise ConfigError("bytes need at least 2 generations (the first one ships the strategies)")
    out = []
    for widths in models:
        problem = _random_problem(widths, rows, seed)
        with RayEvaluator(problem, num_actors=actors, num_cpus_per_actor=cpus_per_actor) as evaluator:
            for name in strategies:
                seen = len(evaluator.stats.generations)
                evolve(_strategy(name, problem, popsize, seed), evaluator, generations)
                first, *steady = evaluator.stats.generations[seen:]
                out.append(BytesRow(
                    model=widths, params=problem.num_dims, strategy=name, path=first.path, actors=actors,
                    setup_bytes=evaluator.stats.setup_bytes, startup_sync_bytes=first.sync_bytes,
                    sent_per_generation=statistics.mean(t.sent_bytes for t in steady),
                    received_per_generation=statistics.mean(t.received_bytes for t in steady),
                    sync_after_startup=sum(t.sync_bytes for t in steady),
                ))
    return out


def format_throughput(rows: Sequence[ThroughputRow], *, popsize: int, batch: int) -> str:
    """The throughput table."""
    header = (f"{'config':>7} {'actors':>6} | {'ev/s':>8} {'s/gen':>8} {'vs local':>8} | "
              f"{'sent B/gen':>10} | {'max|mean-local|':>15}")
    local = rows[0].evals_per_s
    lines = [f"open-es on mlp {MODEL} ({FlatParams(mlp(MODEL)).num_dims} params), P={popsize}, random batch "
             f"N={batch}, full batch every generation; G={rows[0].generations} timed generations of "
             "evaluate + tell, median over rounds", header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.config:>7} {r.actors:>6} | {r.evals_per_s:>8.0f} {r.seconds_per_generation:>8.4f} "
                     f"{r.evals_per_s / local:>7.2f}x | {r.sent_per_generation:>10.0f} | {r.max_abs_diff:>15.1e}")
    return "\n".join(lines)


def format_bytes(rows: Sequence[BytesRow], *, popsize: int) -> str:
    """The bytes table."""
    header = (f"{'model':>16} {'params':>9} {'strategy':>8} {'path':>7} | {'setup B':>10} {'start sync B':>12} | "
              f"{'sent B/gen':>11} {'recv B/gen':>10} {'sync B later':>12} | {'sent/(4D)':>9}")
    lines = [f"payload bytes on a pool of {rows[0].actors} actors, P={popsize}; setup = pickled problem (once); "
             "start sync = strategy sent at generation 0; per generation = mean over the later generations",
             header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.model:>16} {r.params:>9} {r.strategy:>8} {r.path:>7} | {r.setup_bytes:>10} "
            f"{r.startup_sync_bytes:>12} | {r.sent_per_generation:>11.0f} {r.received_per_generation:>10.0f} "
            f"{r.sync_after_startup:>12} | {r.sent_per_generation / (4 * r.params):>9.2e}"
        )
    return "\n".join(lines)


def ray_environment(ray: Any) -> str:
    """Versions, CPUs and threads the numbers were taken with (the driver's threads, 1 per actor)."""
    resources = ray.cluster_resources()
    return environment(extras=[f"ray {ray.__version__}", f"Ray cluster CPUs {resources.get('CPU', 0):g}",
                               "1 torch thread per actor"])


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``gradfree perf ray``."""
    p = argparse.ArgumentParser(
        prog="gradfree perf ray",
        description="Evaluations/s of the local vs the Ray evaluator, and bytes sent per generation.",
    )
    p.add_argument("--address", default=None,
                   help="Ray cluster (auto, ray://HOST:10001); default: start a local Ray with this machine's CPUs")
    p.add_argument("--actors", type=int_list, default=[1, 2], help="pool sizes to time, e.g. 1,2 (default)")
    p.add_argument("--popsize", type=int, default=32, help="population size P (default 32)")
    p.add_argument("--batch", type=int, default=256, help="rows N of the random batch (default 256)")
    p.add_argument("--generations", type=int, default=30, help="timed generations per round (default 30)")
    p.add_argument("--repeats", type=int, default=3, help="rounds; the median is reported (default 3)")
    p.add_argument("--cpus-per-actor", type=float, default=1, help="CPUs Ray reserves per actor (default 1)")
    p.add_argument("--bytes-models", type=word_list, default=list(BYTES_MODELS),
                   help="MLP widths for the bytes table (default 784-32-10,784-1024-192-10); 'none' skips it")
    p.add_argument("--bytes-actors", type=int, default=2, help="pool size for the bytes table (default 2)")
    p.add_argument("--bytes-generations", type=int, default=3, help="generations per bytes run (default 3)")
    p.add_argument("--threads", type=int, default=None, help="driver torch threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, model and strategy (default 0)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print the tables; returns the exit status (2 for a usage error)."""
    args = build_parser().parse_args(argv)
    return run_program(lambda: _main(args))


def _main(args: argparse.Namespace) -> None:
    from gradfree.distributed.ray_evaluator import connect

    set_threads(args.threads)
    started = connect(args.address, num_cpus=os.cpu_count() if args.address is None else None)
    import ray

    try:
        print(ray_environment(ray))
        rows = run_throughput(actors=args.actors, popsize=args.popsize, batch=args.batch,
                              generations=args.generations, repeats=args.repeats,
                              cpus_per_actor=args.cpus_per_actor, seed=args.seed)
        print(format_throughput(rows, popsize=args.popsize, batch=args.batch))
        if args.bytes_models != ["none"]:
            brows = run_bytes(models=args.bytes_models, popsize=args.popsize, generations=args.bytes_generations,
                              actors=args.bytes_actors, cpus_per_actor=args.cpus_per_actor, seed=args.seed)
            print(format_bytes(brows, popsize=args.popsize))
    finally:
        if started:
            ray.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
