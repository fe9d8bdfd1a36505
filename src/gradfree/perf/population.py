"""``gradfree perf population``: evaluations per second of batched population evaluation against the loop.

For the 784-32-10 ReLU MLP with cross-entropy on random inputs, every cell (population size ``P``, batch
rows ``N``) times three paths of :class:`gradfree.params.PopulationLoss` on the same ``P`` parameter vectors:

* ``loop``    — write each vector into the module and run it (the reference);
* ``batched`` — ``mode="auto"``, which picks the batched-matmul fast path (``"mlp"``) for this model;
* ``vmap``    — ``torch.func.functional_call`` under ``torch.vmap``.

One evaluation is one forward pass of one parameter vector over the ``N`` rows, so a call scores ``P``
evaluations. In each cell every path gets one untimed warm-up call, then the three paths take turns, one
timed call each per round, until each has at least ``min_time`` seconds and ``min_calls`` calls; a path's rate
is the median over its calls of ``P / seconds``. The batched paths must compute the loop's losses: the largest
absolute difference is reported with every cell.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gradfree.errors import ConfigError
from gradfree.models.mlp import mlp
from gradfree.objective.population import Mode, PopulationLoss
from gradfree.params.flat import FlatParams
from gradfree.perf.common import Column, environment, int_list, render_table, run_program, set_threads, take_turns

MODEL = "784-32-10"
SIZES: tuple[int, ...] = (256, 5000)
POPSIZES: tuple[int, ...] = (1, 8, 32, 128)
MODES: dict[str, Mode] = {"loop": "loop", "batched": "auto", "vmap": "vmap"}
"""Name in the report -> the :class:`PopulationLoss` mode it runs."""


@dataclass(frozen=True)
class PopulationRow:
    """One timed cell: a path of :class:`PopulationLoss` at one population size and batch size.

    Attributes:
        path: ``"loop"``, ``"batched"`` or ``"vmap"``.
        mode: the :class:`PopulationLoss` mode that ran (``"batched"`` resolves ``"auto"`` to ``"mlp"``).
        popsize: ``P``, parameter vectors per call.
        batch: ``N``, input rows per evaluation.
        chunk: population members per chunk the evaluator used (``P`` for the loop: one at a time is its
            nature, the number is only for the table).
        calls: timed calls.
        seconds: their total wall time.
        evals_per_s: median over calls of ``P / call seconds``.
        speedup: ``evals_per_s`` over the loop's in the same cell (1.0 for the loop itself).
        max_abs_diff: largest ``|loss - loop loss|`` over the ``P`` vectors (0.0 for the loop itself).
    """

    path: str
    mode: str
    popsize: int
    batch: int
    chunk: int
    calls: int
    seconds: float
    evals_per_s: float
    speedup: float
    max_abs_diff: float


def run_population(
    *,
    sizes: Sequence[int] = SIZES,
    popsizes: Sequence[int] = POPSIZES,
    min_time: float = 0.4,
    min_calls: int = 3,
    device: str = "cpu",
    seed: int = 0,
) -> list[PopulationRow]:
    """Time the loop, batched and vmap paths on every (P, N) cell; rows in the order N, P, path.

    Args:
        sizes: batch sizes ``N``.
        popsizes: population sizes ``P``.
        min_time: seconds of timed calls per cell (at least).
        min_calls: timed calls per cell (at least).
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:1"`` ...).
        seed: seeds the private generator of inputs, labels and parameter vectors.

    Returns:
        one :class:`PopulationRow` per cell and path.

    Raises:
        ConfigError: for a non-positive size or time, or a CUDA device that is not available.
    """
    if not sizes or not popsizes or min(*sizes, *popsizes) < 1:
        raise ConfigError(f"sizes and popsizes must be positive integers, got {list(sizes)} and {list(popsizes)}")
    if min_time < 0 or min_calls < 1:
        raise ConfigError(f"need min_time >= 0 and min_calls >= 1, got {min_time} and {min_calls}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch.cuda.is_available() is False; use --device cpu")

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    model = mlp(MODEL).to(dev)
    flat = FlatParams(model)
    evaluators = {name: PopulationLoss(flat, F.cross_entropy, mode=mode) for name, mode in MODES.items()}
    gen = torch.Generator().manual_seed(seed)  # drawn on the CPU, then moved: the same numbers on any device
    rows: list[PopulationRow] = []
    for n in sizes:
        x = torch.randn(n, 784, generator=gen).to(dev)
        y = torch.randint(0, 10, (n,), generator=gen).to(dev)
        for p in popsizes:
            # Scaled like PyTorch's default init (1/sqrt(784) ~ 0.036), so the losses are ordinary ones.
            vectors = (0.05 * torch.randn(p, flat.num_dims, generator=gen)).to(dev)
            fns = {name: functools.partial(e, vectors, x, y) for name, e in evaluators.items()}
            timed = take_turns(fns, min_time=min_time, min_calls=min_calls, sync=sync)
            loop_rate = timed["loop"].median_rate(p)
            for name, evaluator in evaluators.items():
                rate = timed[name].median_rate(p)
                rows.append(PopulationRow(
                    path=name, mode=evaluator.mode, popsize=p, batch=n,
                    chunk=p if evaluator.mode == "loop" else min(p, evaluator.chunk_size(x)),
                    calls=len(timed[name].wall), seconds=sum(timed[name].wall), evals_per_s=rate,
                    speedup=rate / loop_rate, max_abs_diff=float((timed[name].last - timed["loop"].last).abs().max()),
                ))
    return rows


def format_table(rows: Sequence[PopulationRow]) -> str:
    """A fixed-width table, one line per (N, P): evaluations/s per path, speedups and loss differences."""
    cells: dict[tuple[int, int], dict[str, PopulationRow]] = {}
    for r in rows:
        cells.setdefault((r.batch, r.popsize), {})[r.path] = r
    columns = [Column("N", 5), Column("P", 4), Column("loop ev/s", 10, bar=True), Column("batched ev/s", 12),
               Column("vmap ev/s", 10), Column("batched/loop", 12, bar=True), Column("vmap/loop", 9),
               Column("chunk", 5, bar=True), Column("max|d| batched", 14, bar=True), Column("max|d| vmap", 11)]
    lines = []
    for (n, p), by_path in cells.items():
        loop, batched, vmap = by_path["loop"], by_path["batched"], by_path["vmap"]
        lines.append([str(n), str(p), f"{loop.evals_per_s:.0f}", f"{batched.evals_per_s:.0f}",
                      f"{vmap.evals_per_s:.0f}", f"{batched.speedup:.1f}x", f"{vmap.speedup:.1f}x", str(batched.chunk),
                      f"{batched.max_abs_diff:.1e}", f"{vmap.max_abs_diff:.1e}"])
    return render_table(columns, lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``gradfree perf population``."""
    parser = argparse.ArgumentParser(
        prog="gradfree perf population",
        description=f"Evaluations/s of PopulationLoss paths (loop, batched, vmap) on the {MODEL} MLP.",
    )
    parser.add_argument("--sizes", type=int_list, default=list(SIZES), help="batch rows N, e.g. 256,5000")
    parser.add_argument("--popsizes", type=int_list, default=list(POPSIZES),
                        help="population sizes P, e.g. 1,8,32,128")
    parser.add_argument("--min-time", type=float, default=0.4, help="seconds of timed calls per cell (default 0.4)")
    parser.add_argument("--min-calls", type=int, default=3, help="timed calls per cell, at least (default 3)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs and vectors (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line and print the table; returns the exit status."""
    args = build_parser().parse_args(argv)

    def body() -> None:
        set_threads(args.threads)
        rows = run_population(sizes=args.sizes, popsizes=args.popsizes, min_time=args.min_time,
                              min_calls=args.min_calls, device=args.device, seed=args.seed)
        print(f"PopulationLoss on the {MODEL} ReLU MLP ({FlatParams(mlp(MODEL)).num_dims} parameters), "
              "cross-entropy, random inputs; ev/s = median over calls of P / seconds")
        print(format_table(rows))
        worst = max(r.max_abs_diff for r in rows)
        print(f"max |loss - loop loss| over all cells and paths: {worst:.1e}")
        print(environment(device=args.device))

    return run_program(body)


if __name__ == "__main__":
    raise SystemExit(main())
