"""``gradfree perf incremental``: single-weight evaluations per second, incremental engines against the rest.

On the MDP task — the 784-32-10 ReLU MLP (``mlp:784-32-10``) with cross-entropy on 5,000 stratified MNIST
training images — every method scores the same list of single-weight changes (a random weight of any layer,
candidate values ``w + d`` (K=1) or ``w + d, w - d`` (K=2, as RSO tries them) with ``d`` drawn at the scale of
the weight's tensor):

* ``forward``     — write the weight, run the module on the batch, take the loss (one evaluation per call);
* ``reference``   — :class:`~gradfree.objective.coordinates.PopulationCoordinateEvaluator` (K full vectors
  in one batched call);
* ``torch-incr``  — :class:`~gradfree.engines.incremental.sequential.SequentialCoordinateEvaluator` (the changed
  unit carried through the network in torch);
* ``numba-incr``  — :class:`~gradfree.engines.incremental.mlp.MLPCoordinateEvaluator` (what
  :func:`~gradfree.engines.incremental.selection.coordinate_evaluator` picks for this model);
* ``numba-accept`` — :meth:`MLPCoordinateEvaluator.set_value`, accepts per second (one accept per call);
* ``numba-pass``  — :meth:`MLPCoordinateEvaluator.greedy_pass`, RSO's loop in one compiled call: for each of
  200 distinct random weights, try ``w + d, w - d`` and keep the best of the three (the accepts are in the
  time; the fraction of weights changed is printed, high from a random start and lower late in training);
* ``numba-pass-rso`` — the same in RSO's own order (storage order: a unit's incoming weights in a row): one
  pass over all 784 first-layer weights of a random unit. Staying on one unit, the pass defers the move every
  background row shares (:mod:`gradfree.engines.incremental.kernels.greedy_pass`).

One evaluation is one candidate value. The methods take turns, a chunk of calls each per round, until each
has ``min_time`` seconds; a rate is the median over chunks. Rates are given per wall-clock second and per
second of CPU time of the measuring thread: on a shared machine the wall-clock rate falls with the load (the
load average is printed), the CPU-time rate much less. Every engine's losses are compared with the module's
own forward pass on a sample of the changes.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.data.ragged import dense
from gradfree.errors import ConfigError, GradfreeError
from gradfree.objective.coordinates import PopulationCoordinateEvaluator
from gradfree.params.flat import FlatParams
from gradfree.perf.common import Column, environment, int_list, render_table, run_program, set_threads, take_turns

MODEL = "mlp:784-32-10"
TRAIN_IMAGES = 5000
METHODS = ("forward", "reference", "torch-incr", "numba-incr", "numba-accept", "numba-pass", "numba-pass-rso")


@dataclass(frozen=True)
class IncrementalRow:
    """One timed method at one number of candidates per call.

    Attributes:
        method: one of :data:`METHODS`.
        k: candidate values per call (1 for ``forward`` and ``numba-accept``).
        calls: timed calls; evaluations: candidate values scored in them (accepts for ``numba-accept``).
        seconds, cpu_seconds: their wall-clock and thread CPU time.
        evals_per_s, cpu_evals_per_s: median over chunks of evaluations per wall / CPU second.
        vs_forward: ``evals_per_s`` over ``forward``'s (wall clock).
        max_abs_diff: largest ``|loss - forward loss|`` over the checked sample (NaN where not checked).
        changed: for ``numba-pass``, the fraction of the weights tried that a pass changed (else NaN).
    """

    method: str
    k: int
    calls: int
    evaluations: int
    seconds: float
    cpu_seconds: float
    evals_per_s: float
    cpu_evals_per_s: float
    vs_forward: float
    max_abs_diff: float
    changed: float = math.nan


def default_data_dir() -> Path:
    """``$GRADFREE_DATA``, else ``<repository>/../shared/data``."""
    env = os.environ.get("GRADFREE_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def synthetic_batch(n: int, *, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` random MNIST-shaped rows ``(n, 784)`` with about 80% zeros (the rest uniform in (0, 1]) and
    random labels 0..9, drawn from a private generator."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 784, generator=g)
    x[torch.rand(n, 784, generator=g) < 0.8] = 0.0
    return x, torch.randint(0, 10, (n,), generator=g)


INPUTS = {"standardised": "standardised as the task uses them", "uncentred": "divided by the std but not centred "
          "(task mdp-mnist-uncentred)", "raw": "raw pixels in [0, 1]"}
"""The forms of the MDP task's images the benchmark can measure on, and how its header describes each."""


def mnist_batch(data_dir: Path, *, inputs: str = "standardised") -> tuple[Tensor, Tensor]:
    """The 5,000 stratified MNIST training images of the MDP task (``load_mnist(train_subset=5000,
    seed=0)``) in the form ``inputs`` names (:data:`INPUTS`): standardised as task "mdp-mnist" trains on them,
    divided by the std only as task "mdp-mnist-uncentred" does (blank pixels 0), or raw in [0, 1].

    Raises:
        DataError: MNIST is not in ``data_dir`` (nothing is downloaded).
    """
    from gradfree.data.mnist import MNIST_STD, load_mnist

    split = load_mnist(data_dir=data_dir, download=False, train_subset=TRAIN_IMAGES, seed=0,
                       centre=inputs == "standardised").train
    x = split.x * MNIST_STD if inputs == "raw" else split.x
    return x.contiguous(), dense(split.y)


def _changes(flat: FlatParams, count: int, k: int, *, seed: int) -> list[tuple[int, Tensor]]:
    """``count`` random (flat index, ``k`` candidate values): a uniformly drawn weight of any layer, values
    ``w + d`` (and ``w - d``) with ``d ~ N(0, std of the weight's tensor)``."""
    g = torch.Generator().manual_seed(seed)
    vector = flat.get()
    stds = torch.cat([torch.full((s.numel,), float(t.detach().std()) if t.numel() > 1 else 0.1)
                      for s, t in zip(flat.slots, flat.tensors, strict=True)])
    out = []
    for index in torch.randint(flat.num_dims, (count,), generator=g).tolist():
        d = float(torch.randn(1, generator=g)) * float(stds[index])
        w = float(vector[index])
        values = [w + d, w - d][:k]
        out.append((index, torch.tensor(values, dtype=flat.dtype)))
    return out


def _cycle(items: Sequence[tuple[int, Tensor]]) -> Callable[[], tuple[int, Tensor]]:
    position = 0

    def next_item() -> tuple[int, Tensor]:
        nonlocal position
        item = items[position % len(items)]
        position += 1
        return item

    return next_item


def run_incremental(*, x: Tensor, y: Tensor, seed: int = 0, ks: Sequence[int] = (1, 2), min_time: float = 1.0,
                    min_chunks: int = 3, changes: int = 2000, check: int = 40,
                    methods: Sequence[str] = METHODS) -> list[IncrementalRow]:
    """Time every method of :data:`METHODS` on the 784-32-10 MLP (weights from ``seed``) and the batch.

    Args:
        x, y: the batch, ``(N, 784)`` (or images) and labels.
        seed: seeds the model and the changes.
        ks: candidate values per call to time.
        min_time: seconds of timed chunks per method and ``k`` (at least).
        min_chunks: timed chunks per method and ``k`` (at least).
        changes: distinct (weight, values) changes cycled through.
        check: changes whose losses are compared with the module's forward pass.
        methods: the subset of :data:`METHODS` to run (``forward`` is always run: the others are compared
            with it).

    Returns:
        one :class:`IncrementalRow` per method and ``k`` (one for ``forward`` and ``numba-accept``).
    """
    from gradfree.engines.incremental.mlp import MLPCoordinateEvaluator
    from gradfree.engines.incremental.selection import clear_cache, warm_up
    from gradfree.engines.incremental.sequential import SequentialCoordinateEvaluator
    from gradfree.models import build_model

    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not ks or min(ks) < 1 or min_time < 0 or min_chunks < 1 or changes < 1 or check < 0:
        raise ConfigError(f"bad benchmark settings: methods {list(methods)} (known: {', '.join(METHODS)}), "
                          f"ks {list(ks)}, min_time {min_time}, min_chunks {min_chunks}, changes {changes}")
    model = build_model(MODEL, seed=seed)
    flat = FlatParams(model)
    loss_fn = F.cross_entropy
    clear_cache()
    engines: dict[str, Callable[[], object]] = {
        "reference": lambda: PopulationCoordinateEvaluator(flat, loss_fn, x, y),
        "torch-incr": lambda: SequentialCoordinateEvaluator(flat, loss_fn, x, y),
        "numba-incr": lambda: MLPCoordinateEvaluator(flat, loss_fn, x, y),
    }
    warm_up()  # every kernel compiled (or loaded) before anything is timed, the accept and pass rows included
    built = {name: make() for name, make in engines.items() if name in methods}
    rows: list[IncrementalRow] = []
    fns: dict[str, tuple[Callable[[int], int], int]] = {}
    tags: dict[str, tuple[str, int]] = {}
    samples: dict[int, list[tuple[int, Tensor]]] = {k: _changes(flat, changes, k, seed=seed + k) for k in ks}

    fns["forward"], tags["forward"] = (_forward_runner(model, flat, loss_fn, x, y, samples[ks[0]]), 4), ("forward", 1)
    chunk_calls = {"reference": 4, "torch-incr": 20, "numba-incr": 200}
    for name, ev in built.items():
        for k in ks:
            key = f"{name} K={k}"
            fns[key], tags[key] = (_try_runner(ev, samples[k]), chunk_calls[name]), (name, k)
    # One chunk of calls per turn; an untimed warm-up chunk of a quarter of the calls first.
    timed = take_turns({key: functools.partial(run, calls) for key, (run, calls) in fns.items()},
                       warmup={key: functools.partial(run, max(1, calls // 4)) for key, (run, calls) in fns.items()},
                       min_time=min_time, min_calls=min_chunks)
    diffs = _max_abs_diffs(model, flat, loss_fn, x, y, built, samples, check)
    forward_rate = timed["forward"].median_rate(float)
    for key, chunks in timed.items():
        name, k = tags[key]
        rate = chunks.median_rate(float)
        evaluations = sum(chunks.results)
        rows.append(IncrementalRow(
            method=name, k=k, calls=evaluations // k, evaluations=evaluations, seconds=sum(chunks.wall),
            cpu_seconds=sum(chunks.cpu), evals_per_s=rate, cpu_evals_per_s=chunks.median_rate(float, cpu=True),
            vs_forward=rate / forward_rate, max_abs_diff=diffs.get((name, k), math.nan),
        ))
    if "numba-accept" in methods:
        rows.append(_time_accepts(flat, loss_fn, x, y, samples[ks[0]], min_time=min_time,
                                  forward_rate=forward_rate))
    for method in ("numba-pass", "numba-pass-rso"):
        if method in methods:
            rows.append(_time_passes(flat, loss_fn, x, y, seed=seed, min_time=min_time, forward_rate=forward_rate,
                                     in_unit_order=method == "numba-pass-rso"))
    return rows


def _forward_runner(model: nn.Module, flat: FlatParams, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor,
                    y: Tensor, items: Sequence[tuple[int, Tensor]]) -> Callable[[int], int]:
    """``run(calls)``: write the next change's first value, forward pass and loss, restore; per call."""
    nxt = _cycle(items)

    @torch.no_grad()
    def run(calls: int) -> int:
        for _ in range(calls):
            index, values = nxt()
            view, i = _element(flat, index)
            saved = view[i].clone()
            view[i] = values[0]
            loss_fn(model(x), y)
            view[i] = saved
        return calls

    return run


def _try_runner(evaluator: object, items: Sequence[tuple[int, Tensor]]) -> Callable[[int], int]:
    """``run(calls)``: ``try_values`` of the next changes; returns the candidate values scored."""
    nxt = _cycle(items)

    def run(calls: int) -> int:
        done = 0
        for _ in range(calls):
            index, values = nxt()
            evaluator.try_values(index, values)  # type: ignore[attr-defined]
            done += int(values.shape[0])
        return done

    return run


def _element(flat: FlatParams, index: int) -> tuple[Tensor, int]:
    for slot, tensor in zip(flat.slots, flat.tensors, strict=True):
        if slot.offset <= index < slot.stop:
            return tensor.view(-1), index - slot.offset
    raise IndexError(index)


def _max_abs_diffs(model: nn.Module, flat: FlatParams, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor,
                   y: Tensor, built: dict[str, object], samples: dict[int, list[tuple[int, Tensor]]],
                   check: int) -> dict[tuple[str, int], float]:
    """Largest ``|engine loss - forward loss|`` per engine and ``k`` over the first ``check`` changes."""
    out: dict[tuple[str, int], float] = {}
    with torch.no_grad():
        for k, items in samples.items():
            wanted = []
            for index, values in items[:check]:
                view, i = _element(flat, index)
                saved = view[i].clone()
                row = []
                for v in values:
                    view[i] = v
                    row.append(float(loss_fn(model(x), y)))
                view[i] = saved
                wanted.append(row)
            for name, ev in built.items():
                worst = 0.0
                for (index, values), want in zip(items[:check], wanted, strict=True):
                    got = ev.try_values(index, values).tolist()  # type: ignore[attr-defined]
                    worst = max(worst, *(abs(a - b) for a, b in zip(got, want, strict=True)))
                out[(name, k)] = worst
    return out


def _time_accepts(flat: FlatParams, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor,
                  items: list[tuple[int, Tensor]], *, min_time: float, forward_rate: float) -> IncrementalRow:
    """Accepts per second of the numba engine: each accept moves its weight by the change's step, ``+d`` on
    even passes over ``items`` and ``-d`` on odd ones (every accept is a real change, and the weights stay
    near their start); checked against a forward pass at the end."""
    from gradfree.engines.incremental.mlp import MLPCoordinateEvaluator

    ev = MLPCoordinateEvaluator(flat, loss_fn, x, y)
    saved = flat.get()
    steps = [(index, float(values[0]) - float(saved[index])) for index, values in items]
    walls: list[float] = []
    cpus: list[float] = []
    done = 0
    try:
        while sum(walls) < min_time or len(walls) < 3:
            batch = []
            for j in range(done, done + 50):
                index, d = steps[j % len(steps)]
                view, i = _element(flat, index)
                batch.append((index, float(view[i].detach()) + (d if (j // len(steps)) % 2 == 0 else -d)))
            wall, cpu = time.perf_counter(), time.thread_time()
            for index, value in batch:
                ev.set_value(index, value, None)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.thread_time() - cpu)
            done += len(batch)
        with torch.no_grad():
            diff = abs(ev.loss() - float(loss_fn(flat.module(x), y)))  # type: ignore[misc]
    finally:
        flat.set_(saved)
    rate = statistics.median(50 / w for w in walls)
    return IncrementalRow(method="numba-accept", k=1, calls=done, evaluations=done, seconds=sum(walls),
                          cpu_seconds=sum(cpus), evals_per_s=rate,
                          cpu_evals_per_s=statistics.median(50 / max(c, 1e-9) for c in cpus),
                          vs_forward=rate / forward_rate, max_abs_diff=diff)


def _unit_block(flat: FlatParams, g: torch.Generator) -> Tensor:
    """The flat indices of one random row of the first parameter (a ``Linear`` weight: one unit's incoming
    weights), in the order RSO visits them."""
    tensor = flat.tensors[0]
    units, fan_in = tensor.shape[0], tensor[0].numel()
    unit = int(torch.randint(units, (1,), generator=g))
    first = flat.slots[0].offset + unit * fan_in
    return torch.arange(first, first + fan_in)


def _time_passes(flat: FlatParams, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor, *,
                 seed: int, min_time: float, forward_rate: float, size: int = 200,
                 in_unit_order: bool = False) -> IncrementalRow:
    """Evaluations per second of the numba engine's greedy pass as RSO makes it: ``size`` distinct random
    weights per pass (``in_unit_order``: all the incoming weights of one unit, :func:`_unit_block`), candidates
    ``w + d, w - d`` with ``d ~ N(0, std of the weight's tensor)``, the best of the three kept; checked
    against a forward pass at the end, and the weights restored."""
    from gradfree.engines.incremental.mlp import MLPCoordinateEvaluator

    ev = MLPCoordinateEvaluator(flat, loss_fn, x, y)
    saved = flat.get()
    stds = torch.cat([torch.full((s.numel,), float(t.detach().std()) if t.numel() > 1 else 0.1)
                      for s, t in zip(flat.slots, flat.tensors, strict=True)]).double()
    g = torch.Generator().manual_seed(seed)
    walls: list[float] = []
    cpus: list[float] = []
    changed = done = 0
    try:
        while sum(walls) < min_time or len(walls) < 3:
            indices = _unit_block(flat, g) if in_unit_order else torch.randperm(flat.num_dims, generator=g)[:size]
            w = flat.get().double()[indices]
            d = torch.randn(indices.numel(), generator=g, dtype=torch.float64) * stds[indices]
            candidates = torch.stack([w + d, w - d], 1).to(flat.dtype)
            wall, cpu = time.perf_counter(), time.thread_time()
            choices = ev.greedy_pass(indices, candidates).choices
            walls.append(time.perf_counter() - wall)
            cpus.append(time.thread_time() - cpu)
            changed += int((choices >= 0).sum())
            done += indices.numel()
        with torch.no_grad():
            diff = abs(ev.loss() - float(loss_fn(flat.module(x), y)))  # type: ignore[misc]
    finally:
        flat.set_(saved)
    per_pass = 2 * done / len(walls)
    rate = statistics.median(per_pass / w for w in walls)
    return IncrementalRow(method="numba-pass-rso" if in_unit_order else "numba-pass", k=2, calls=done,
                          evaluations=2 * done, seconds=sum(walls), cpu_seconds=sum(cpus), evals_per_s=rate,
                          cpu_evals_per_s=statistics.median(per_pass / max(c, 1e-9) for c in cpus),
                          vs_forward=rate / forward_rate, max_abs_diff=diff, changed=changed / done)


def format_table(rows: Sequence[IncrementalRow]) -> str:
    """A fixed-width table, one line per method and ``k``."""
    columns = [Column("method", 14, "<"), Column("K", 2), Column("ev/s wall", 10, bar=True), Column("ev/s cpu", 10),
               Column("x forward", 9, bar=True), Column("evals", 7, bar=True), Column("seconds", 7),
               Column("max|d| vs forward", 17, bar=True)]
    return render_table(columns, [
        [r.method, str(r.k), f"{r.evals_per_s:.0f}", f"{r.cpu_evals_per_s:.0f}", f"{r.vs_forward:.1f}x",
         str(r.evaluations), f"{r.seconds:.2f}", "" if math.isnan(r.max_abs_diff) else f"{r.max_abs_diff:.1e}"]
        for r in rows])


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``gradfree perf incremental``."""
    parser = argparse.ArgumentParser(
        prog="gradfree perf incremental",
        description=f"Single-weight evaluations/s on the MDP task ({MODEL}, cross-entropy, {TRAIN_IMAGES} "
                    "MNIST images): full forward, reference, torch and numba incremental engines.")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding mnist/ (default: $GRADFREE_DATA, else <repo>/../shared/data)")
    parser.add_argument("--synthetic", action="store_true",
                        help="random MNIST-shaped inputs with ~80%% zeros instead of MNIST")
    parser.add_argument("--raw-pixels", action="store_true",
                        help="MNIST pixels in [0, 1] (81%% zeros) instead of standardised as the task uses")
    parser.add_argument("--uncentred", action="store_true",
                        help="MNIST pixels divided by the std but not centred, as task mdp-mnist-uncentred has "
                             "them (blank pixels 0)")
    parser.add_argument("--ks", default="1,2", help="candidate values per call, e.g. 1,2 (default)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per method and K (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1: the engines run on one thread, and on a shared "
                             "machine a second torch thread can slow the forward pass down)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and the changes (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line and print the table; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_program(lambda: _main(args))


def _main(args: argparse.Namespace) -> None:
    import numba

    try:
        ks = int_list(args.ks)
    except argparse.ArgumentTypeError as err:
        raise ConfigError(f"--ks: {err} (e.g. 1,2)") from None
    set_threads(args.threads)
    if args.raw_pixels and args.uncentred:
        raise ConfigError("--raw-pixels and --uncentred are two forms of the inputs; pass one")
    inputs = "raw" if args.raw_pixels else "uncentred" if args.uncentred else "standardised"
    if args.synthetic:
        x, y = synthetic_batch(TRAIN_IMAGES, seed=args.seed)
        what = f"synthetic inputs ({TRAIN_IMAGES} rows, ~80% zeros)"
    else:
        data_dir = args.data_dir or default_data_dir()
        try:
            x, y = mnist_batch(data_dir, inputs=inputs)
        except GradfreeError as err:
            raise ConfigError(f"MNIST not found ({err}). Pass --data-dir DIR (a folder with mnist/ or the four .gz "
                              "files), set GRADFREE_DATA, or run with --synthetic.") from None
        zeros = float((x == x.min()).double().mean())
        what = (f"MNIST, {x.shape[0]} stratified training images, "
                + INPUTS[inputs]
                + f" ({100 * zeros:.0f}% of entries at the blank value {float(x.min()):.3f})")
    rows = run_incremental(x=x, y=y, seed=args.seed, ks=ks, min_time=args.min_time)
    print(f"Single-weight evaluations on {MODEL} (ReLU, 25,450 weights), cross-entropy, {what}.")
    print("Changes: a uniformly random weight of any layer, values w+d (K=1) or w+d, w-d (K=2), d ~ N(0, std of "
          "its tensor).")
    print(format_table(rows))
    by = {(r.method, r.k): r for r in rows}
    if ("numba-pass", 2) in by:
        print(f"numba-pass: one greedy_pass call per 200 random weights (tries and accepts in the time); it "
              f"changed {100 * by[('numba-pass', 2)].changed:.0f}% of the weights it tried.")
    if ("numba-pass-rso", 2) in by:
        rso = by[("numba-pass-rso", 2)]
        print(f"numba-pass-rso: one greedy_pass call per unit, over its incoming weights in RSO's order; it "
              f"changed {100 * rso.changed:.0f}% of them"
              + (f"; {rso.cpu_evals_per_s / by[('numba-pass', 2)].cpu_evals_per_s:.2f}x numba-pass (cpu)."
                 if ("numba-pass", 2) in by else "."))
    for k in ks:
        if ("numba-incr", k) in by and ("reference", k) in by:
            n, ref = by[("numba-incr", k)], by[("reference", k)]
            print(f"K={k}: numba-incr / reference = {n.evals_per_s / ref.evals_per_s:.1f}x (wall), "
                  f"{n.cpu_evals_per_s / ref.cpu_evals_per_s:.1f}x (cpu); numba-incr / forward = "
                  f"{n.vs_forward:.1f}x")
    print(environment(extras=[f"numba {numba.__version__} (kernels single-threaded)"]))


if __name__ == "__main__":
    raise SystemExit(main())
