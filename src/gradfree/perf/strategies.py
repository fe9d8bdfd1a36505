"""``gradfree perf strategies``: our population strategies side by side with pycma, nevergrad and EvoTorch.

Every method minimises the same functions from the same start, at the same evaluation budget:

* functions (``D`` dimensions, float64, minimum 0): ``sphere`` ``sum x_i^2``; ``ellipsoid``
  ``sum 10^(6 (i-1)/(D-1)) x_i^2`` (condition 1e6, axis-parallel); ``rosenbrock``
  ``sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2``; ``rastrigin`` ``10 D + sum x_i^2 - 10 cos(2 pi x_i)``;
* start: ``x0 = 3 + U(-1, 1)^D`` drawn from the seed (the same point for every library), initial step size /
  standard deviation ``sigma0 = 1``;
* budget: the same number of evaluations for every method; a method stops before the generation that would
  pass it (so it uses at most one population fewer);
* population: ``4 + floor(3 ln D)`` (pycma's and the NES default) for every population method, rounded up to
  even for the mirrored ones; nevergrad's optimizers choose their own.

Methods (``--methods``; peers only where their library is installed, ``pip install gradfree[peers]``):

* ours: ``sep-cma`` (defaults: TPA step size from D = 300), ``snes`` (defaults), ``pgpe`` (ClipUp step
  ``lr = sqrt(D) / 30``, i.e. the ClipUp paper's ``radius = 15 max_speed`` for ``sigma0 = 1``; ``lr_sigma``
  0.1, changes of sigma bounded by 0.2), ``cem`` (elite fraction 0.5, its default smoothing 0.7),
  ``open-es`` / ``ga`` (defaults, fixed sigma as published) and ``open-es+sigma`` / ``ga+sigma`` (their
  optional step-size adaptation, ``adapt_sigma=True``);
* pycma: ``pycma`` (full covariance, not run at D >= 10,000) and ``pycma-diagonal`` (``CMA_diagonal=True``);
* nevergrad: ``ng-OnePlusOne``, ``ng-DiagonalCMA`` and ``ng-NGOpt`` (not run at D >= 10,000), asked one
  candidate at a time (``num_workers=1``);
* EvoTorch: ``evotorch-SNES`` (defaults), ``evotorch-PGPE`` (the settings of our ``pgpe``: same
  ClipUp step, ``stdev_learning_rate`` 0.1, ``stdev_max_change`` 0.2) and ``evotorch-CEM``
  (``parenthood_ratio`` 0.5, no smoothing: EvoTorch has none).

Each of our methods is compared with the best peer of its *kind* (``KINDS``): sep-cma with the diagonal
CMA-ESs, snes with EvoTorch's SNES, pgpe with EvoTorch's PGPE, cem with EvoTorch's CEM, open-es and ga with
the plain (1+1)-ES (nevergrad's OnePlusOne). Per (D, function, method) the program prints the medians over
seeds of the best ``f`` evaluated, of the evaluations until the first ``f <= target`` (1e-8 unless
``--target``; ``-`` when the median seed did not get there) and of the ask/tell time per evaluation: the wall
time of the optimisation minus the time spent evaluating ``f``, over the evaluations (library overhead:
sampling, the update, conversions). A ratio below 1 is ours being better (smaller ``f``, fewer evaluations,
less time); the summary gives the evaluations ratio where both medians reached the target, else the best-``f``
ratio. The methods of one (D, function, seed) take turns, a round of ``max popsize`` evaluations each, so load
from elsewhere on a shared machine slows them alike; everything runs on one thread (``torch.set_num_threads(1)``
and, where threadpoolctl is installed, one BLAS thread); the load average is printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.perf.common import Column, environment, int_list, render_table, run_program, set_threads, word_list
from gradfree.strategies import STRATEGIES

Objective = Callable[[Tensor], Tensor]


def sphere(x: Tensor) -> Tensor:
    """``sum x_i^2`` per row; ``(P, D) -> (P,)``."""
    return (x * x).sum(-1)


def ellipsoid(x: Tensor) -> Tensor:
    """``sum 10^(6 (i-1)/(D-1)) x_i^2`` per row (condition 1e6); ``(P, D) -> (P,)``."""
    d = x.shape[-1]
    scales = 1e6 ** (torch.arange(d, dtype=x.dtype) / max(d - 1, 1))
    return (scales * x * x).sum(-1)


def rosenbrock(x: Tensor) -> Tensor:
    """``sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2`` per row; ``(P, D) -> (P,)``."""
    a, b = x[..., :-1], x[..., 1:]
    return (100 * (b - a * a) ** 2 + (1 - a) ** 2).sum(-1)


def rastrigin(x: Tensor) -> Tensor:
    """``10 D + sum x_i^2 - 10 cos(2 pi x_i)`` per row; ``(P, D) -> (P,)``."""
    return 10 * x.shape[-1] + (x * x - 10 * torch.cos(2 * math.pi * x)).sum(-1)


FUNCTIONS: dict[str, Objective] = {"sphere": sphere, "ellipsoid": ellipsoid, "rosenbrock": rosenbrock,
                                   "rastrigin": rastrigin}


@dataclass(frozen=True)
class Setup:
    """One run's problem: dimension, start, seed, budget and the shared population size."""

    dims: int
    x0: Tensor
    seed: int
    budget: int

    @property
    def popsize(self) -> int:
        """``4 + floor(3 ln D)``."""
        return 4 + int(3 * math.log(self.dims))

    @property
    def even_popsize(self) -> int:
        """The population size rounded up to even (mirrored sampling)."""
        return self.popsize + self.popsize % 2


class Runner(Protocol):
    """One optimiser at work: ``step(f)`` asks ``batch`` points, scores them with ``f`` and tells the scores."""

    batch: int

    def step(self, f: Objective) -> None: ...


class StrategyRunner:
    """Our ask/tell strategies."""

    def __init__(self, name: str, setup: Setup, popsize: int, **hyper: Any) -> None:
        self.strategy = STRATEGIES.get(name)(setup.dims, popsize, init_mean=setup.x0.clone(), sigma=1.0,
                                             seed=setup.seed, **hyper)
        self.batch = popsize

    def step(self, f: Objective) -> None:
        self.strategy.tell(f(self.strategy.ask()))


class PyCMARunner:
    """pycma's ``CMAEvolutionStrategy``; its termination criteria are never consulted."""

    def __init__(self, setup: Setup, *, diagonal: bool) -> None:
        import cma

        opts = {"CMA_diagonal": diagonal, "seed": setup.seed + 1, "verbose": -9}  # pycma's seed 0 is "random"
        self.es = cma.CMAEvolutionStrategy(setup.x0.numpy(), 1.0, opts)
        self.batch = int(self.es.popsize)

    def step(self, f: Objective) -> None:
        import numpy as np

        xs = self.es.ask()
        values = f(torch.from_numpy(np.asarray(xs)))
        self.es.tell(xs, values.tolist())


class NevergradRunner:
    """A nevergrad optimiser by name, one candidate per ask."""

    batch = 1

    def __init__(self, name: str, setup: Setup) -> None:
        import nevergrad as ng
        import numpy as np

        param = ng.p.Array(init=setup.x0.numpy()).set_mutation(sigma=1.0)
        param.random_state = np.random.RandomState(setup.seed)
        self.opt = ng.optimizers.registry[name](parametrization=param, budget=setup.budget, num_workers=1)

    def step(self, f: Objective) -> None:
        candidate = self.opt.ask()
        value = f(torch.from_numpy(candidate.value[None]))
        self.opt.tell(candidate, float(value[0]))


class EvoTorchRunner:
    """An EvoTorch Gaussian search algorithm (``SNES``, ``PGPE``, ``CEM``); ``step`` is its own ``step()``."""

    def __init__(self, name: str, setup: Setup, popsize: int, **options: Any) -> None:
        import evotorch.algorithms as algorithms
        from evotorch import Problem

        logging.getLogger("evotorch").setLevel(logging.WARNING)
        self._f: Objective = sphere
        problem = Problem("min", lambda x: self._f(x), solution_length=setup.dims, initial_bounds=(-1.0, 1.0),
                          dtype=torch.float64, vectorized=True, seed=setup.seed)
        self.searcher = getattr(algorithms, name)(problem, popsize=popsize, stdev_init=1.0,
                                                  center_init=setup.x0.clone(), **options)
        self.batch = popsize

    def step(self, f: Objective) -> None:
        self._f = f
        self.searcher.step()


def _pgpe_lr(setup: Setup) -> float:
    return math.sqrt(setup.dims) / 30


@dataclass(frozen=True)
class Method:
    """A method of the benchmark: its library, kind, whether it is ours, the largest dimension it runs at, and
    how to build it."""

    library: str
    kind: str
    build: Callable[[Setup], Runner]
    ours: bool = False
    max_dims: int | None = None
    requires: str | None = None


FULL_MAX = 9_999  # full-covariance and portfolio methods are not run at D >= 10,000
METHODS: dict[str, Method] = {
    "sep-cma": Method("gradfree", "diagonal CMA", lambda s: StrategyRunner("sep-cma", s, s.popsize), ours=True),
    "snes": Method("gradfree", "SNES", lambda s: StrategyRunner("snes", s, s.popsize), ours=True),
    "pgpe": Method("gradfree", "PGPE", lambda s: StrategyRunner("pgpe", s, s.even_popsize, lr=_pgpe_lr(s)),
                   ours=True),
    "cem": Method("gradfree", "CEM", lambda s: StrategyRunner("cem", s, s.popsize, elite_frac=0.5), ours=True),
    "open-es": Method("gradfree", "plain ES/GA", lambda s: StrategyRunner("open-es", s, s.even_popsize),
                      ours=True),
    "open-es+sigma": Method("gradfree", "plain ES/GA",
                            lambda s: StrategyRunner("open-es", s, s.even_popsize, adapt_sigma=True), ours=True),
    "ga": Method("gradfree", "plain ES/GA", lambda s: StrategyRunner("ga", s, s.popsize), ours=True),
    "ga+sigma": Method("gradfree", "plain ES/GA", lambda s: StrategyRunner("ga", s, s.popsize, adapt_sigma=True),
                       ours=True),
    "pycma": Method("pycma", "full CMA", lambda s: PyCMARunner(s, diagonal=False), max_dims=FULL_MAX,
                    requires="cma"),
    "pycma-diagonal": Method("pycma", "diagonal CMA", lambda s: PyCMARunner(s, diagonal=True), requires="cma"),
    "ng-OnePlusOne": Method("nevergrad", "plain ES/GA", lambda s: NevergradRunner("OnePlusOne", s),
                            requires="nevergrad"),
    "ng-DiagonalCMA": Method("nevergrad", "diagonal CMA", lambda s: NevergradRunner("DiagonalCMA", s),
                             requires="nevergrad"),
    "ng-NGOpt": Method("nevergrad", "portfolio", lambda s: NevergradRunner("NGOpt", s), max_dims=FULL_MAX,
                       requires="nevergrad"),
    "evotorch-SNES": Method("evotorch", "SNES", lambda s: EvoTorchRunner("SNES", s, s.popsize),
                            requires="evotorch"),
    "evotorch-PGPE": Method("evotorch", "PGPE", lambda s: EvoTorchRunner(
        "PGPE", s, s.even_popsize, center_learning_rate=_pgpe_lr(s), stdev_learning_rate=0.1,
        stdev_max_change=0.2), requires="evotorch"),
    "evotorch-CEM": Method("evotorch", "CEM", lambda s: EvoTorchRunner("CEM", s, s.popsize, parenthood_ratio=0.5),
                           requires="evotorch"),
}
"""Every method by name; see the module docstring for their settings."""


@dataclass(frozen=True)
class Size:
    """A named size: dimensions with their budgets, and seeds."""

    budgets: dict[int, int]
    seeds: int


SIZES: dict[str, Size] = {
    "quick": Size({10: 400}, 1),
    "small": Size({100: 20_000, 1000: 20_000}, 1),
    "full": Size({100: 50_000, 1000: 30_000, 10_000: 30_000}, 3),
}
"""``quick``: a smoke run (seconds without the slow peers); ``small``: one seed at D = 100 and 1,000;
``full``: the issue's D = 100, 1,000 and 10,000 with 3 seeds (hours with every peer: nevergrad's DiagonalCMA
and pycma's full CMA cost milliseconds per evaluation at D = 1,000 and up)."""


@dataclass(frozen=True)
class StrategyRow:
    """One run: a method on a function at one dimension and seed.

    Attributes:
        method, library, kind, ours: see :data:`METHODS`.
        dims, function, seed, budget: the problem.
        evaluations: evaluations made (at most ``budget``).
        best_f: the smallest ``f`` evaluated.
        evals_to_target: evaluations until the first ``f <= target`` (``None``: not reached).
        target: the target ``f``.
        overhead_s: wall seconds outside ``f`` (ask, tell, conversions); ``wall_s``: the whole run (building
            the optimiser left out of both).
        error: the exception that ended the run early (a peer's bug), else ``None``.
    """

    method: str
    library: str
    kind: str
    ours: bool
    dims: int
    function: str
    seed: int
    budget: int
    evaluations: int
    best_f: float
    evals_to_target: int | None
    target: float
    overhead_s: float
    wall_s: float
    error: str | None = None

    @property
    def us_per_eval(self) -> float:
        """Ask/tell microseconds per evaluation."""
        return 1e6 * self.overhead_s / max(self.evaluations, 1)


def start_point(dims: int, seed: int) -> Tensor:
    """``3 + U(-1, 1)^D`` from a private generator seeded with ``seed``, float64."""
    gen = torch.Generator().manual_seed(10_007 * seed + dims)
    return 3 + 2 * torch.rand(dims, generator=gen, dtype=torch.float64) - 1


def available(name: str) -> bool:
    """Whether method ``name``'s library is installed."""
    need = METHODS[name].requires
    return need is None or importlib.util.find_spec(need) is not None


def runs_at(name: str, dims: int) -> bool:
    """Whether method ``name`` is run at dimension ``dims`` (its ``max_dims``)."""
    limit = METHODS[name].max_dims
    return limit is None or dims <= limit


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Limit BLAS/OpenMP pools to one thread where threadpoolctl is installed (numpy-based peers)."""
    if importlib.util.find_spec("threadpoolctl") is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


class _Run:
    """One method's run in progress: its runner, and what its evaluations of ``f`` have shown so far."""

    def __init__(self, name: str, function: str, setup: Setup, target: float) -> None:
        self.name, self.function, self.setup, self.target = name, function, setup, target
        self.fn = FUNCTIONS[function]
        self.evals, self.best = 0, math.inf
        self.hit: int | None = None
        self.f_seconds = self.step_seconds = 0.0
        self.error: str | None = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.runner = METHODS[name].build(setup)  # not timed: the first build of a peer imports its library

    def tracked(self, x: Tensor) -> Tensor:
        """``f`` with the bookkeeping: counts, best value, first hit of the target, time spent in ``f``."""
        t = time.perf_counter()
        with torch.no_grad():
            values = self.fn(x.to(torch.float64))
        low = float(values.min())
        if self.hit is None and low <= self.target:
            self.hit = self.evals + int(torch.nonzero(values <= self.target)[0, 0]) + 1
        self.best = min(self.best, low)
        self.evals += x.shape[0]
        self.f_seconds += time.perf_counter() - t
        return values

    def can_step(self, limit: int) -> bool:
        """Whether one more step stays within ``limit`` evaluations (and the budget) and the run has not failed."""
        return self.error is None and self.evals + self.runner.batch <= min(limit, self.setup.budget)

    def step(self) -> None:
        """One step of the runner, timed; a peer's exception ends the run and is kept."""
        t = time.perf_counter()
        try:
            with warnings.catch_warnings():  # peers warn about their internals (pycma's large z^2, ...)
                warnings.simplefilter("ignore")
                self.runner.step(self.tracked)
        except Exception as err:  # a peer's own failure is a result of the benchmark, not a reason to stop it
            self.error = f"{type(err).__name__}: {err}"
        self.step_seconds += time.perf_counter() - t

    def row(self) -> StrategyRow:
        """The finished run's row."""
        m, s = METHODS[self.name], self.setup
        return StrategyRow(self.name, m.library, m.kind, m.ours, s.dims, self.function, s.seed, s.budget,
                           self.evals, self.best, self.hit, self.target, self.step_seconds - self.f_seconds,
                           self.step_seconds, self.error)


def run_together(names: Sequence[str], function: str, setup: Setup, *, target: float) -> list[StrategyRow]:
    """Run methods ``names`` on ``function`` from ``setup`` *taking turns*, until each one's next step would
    pass the budget; one row each.

    The runs advance in rounds of ``max batch`` evaluations: in each round every method steps until it has
    made that many more, so a burst of load from elsewhere slows all of them alike (as
    :func:`gradfree.perf.common.take_turns` does for rates) instead of whichever happened to be running.
    """
    runs = [_Run(name, function, setup, target) for name in names]
    chunk = max(r.runner.batch for r in runs)
    limit = 0
    while any(r.can_step(setup.budget) for r in runs):
        limit += chunk
        for r in runs:
            while r.can_step(limit):
                r.step()
    return [r.row() for r in runs]


def run_strategies(*, budgets: dict[int, int], seeds: Sequence[int], methods: Sequence[str] | None = None,
                   functions: Sequence[str] = tuple(FUNCTIONS), target: float = 1e-8,
                   progress: Callable[[StrategyRow], None] | None = None) -> list[StrategyRow]:
    """Every (dimension, function, method, seed) run; methods whose library is missing or whose ``max_dims``
    is below a dimension are left out. The methods of one (dimension, function, seed) run together, taking
    turns (:func:`run_together`).

    Args:
        budgets: evaluation budget by dimension ``D``.
        seeds: seeds of the start points and of every method.
        methods: names from :data:`METHODS` (default: all installed).
        functions: names from :data:`FUNCTIONS`.
        target: the ``f`` whose first evaluation counts as reaching the target.
        progress: called with each row as it is finished.

    Raises:
        ConfigError: for an unknown method or function, or a budget or dimension below 2.
    """
    names = [n for n in METHODS if available(n)] if methods is None else list(methods)
    unknown = [n for n in names if n not in METHODS] + [f for f in functions if f not in FUNCTIONS]
    if unknown:
        raise ConfigError(f"unknown method or function {unknown}; methods: {', '.join(METHODS)}; "
                          f"functions: {', '.join(FUNCTIONS)}")
    missing = [n for n in names if not available(n)]
    if missing:
        raise ConfigError(f"{missing} need libraries that are not installed; pip install gradfree[peers]")
    if not budgets or min(budgets) < 2 or min(budgets.values()) < 2 or not seeds:
        raise ConfigError(f"need dimensions and budgets >= 2 and at least one seed, got {budgets} and {seeds}")
    rows = []
    with one_blas_thread():
        for dims, budget in budgets.items():
            here = [n for n in names if runs_at(n, dims)]
            for function in functions if here else ():
                for seed in seeds:
                    setup = Setup(dims, start_point(dims, seed), seed, budget)
                    for row in run_together(here, function, setup, target=target):
                        rows.append(row)
                        if progress is not None:
                            progress(row)
    return rows


@dataclass(frozen=True)
class Cell:
    """Medians over seeds of one method on one (dimension, function), and its ratios to the best peer of its
    kind (``None`` for peers, or where no peer of the kind ran)."""

    method: str
    library: str
    kind: str
    ours: bool
    dims: int
    function: str
    seeds: int
    best_f: float
    evals_to_target: float  # inf: the median seed did not reach the target
    reached: int
    us_per_eval: float
    peer: str | None = None
    f_ratio: float | None = None
    evals_ratio: float | None = None
    us_ratio: float | None = None

    @property
    def ratio(self) -> tuple[str, float] | None:
        """The evaluations ratio where both reached the target, else the best-``f`` ratio."""
        if self.evals_ratio is not None:
            return "ev", self.evals_ratio
        return ("f", self.f_ratio) if self.f_ratio is not None else None


def _ratio(mine: float, theirs: float) -> float | None:
    if not (math.isfinite(mine) and math.isfinite(theirs)):
        return None
    if theirs == 0:
        return 1.0 if mine == 0 else math.inf
    return mine / theirs


def summarise(rows: Sequence[StrategyRow]) -> list[Cell]:
    """Median cells per (dimension, function, method), our methods with their best-peer ratios."""
    groups: dict[tuple[int, str, str], list[StrategyRow]] = {}
    for r in rows:
        groups.setdefault((r.dims, r.function, r.method), []).append(r)
    cells = []
    for (dims, function, method), every in groups.items():
        first, rs = every[0], [r for r in every if r.error is None]
        if not rs:
            continue  # every seed failed: listed under the tables, no cell
        cells.append(Cell(method, first.library, first.kind, first.ours, dims, function, len(rs),
                          statistics.median(r.best_f for r in rs),
                          statistics.median(math.inf if r.evals_to_target is None else r.evals_to_target
                                            for r in rs),
                          sum(r.evals_to_target is not None for r in rs),
                          statistics.median(r.us_per_eval for r in rs)))
    out = []
    for c in cells:
        peers = [p for p in cells if not p.ours and p.kind == c.kind and (p.dims, p.function) == (c.dims, c.function)]
        if not c.ours or not peers:
            out.append(c)
            continue
        by_f = min(peers, key=lambda p: p.best_f)
        by_ev = min(peers, key=lambda p: p.evals_to_target)
        out.append(Cell(**{**asdict(c), "peer": by_f.method, "f_ratio": _ratio(c.best_f, by_f.best_f),
                           "evals_ratio": _ratio(c.evals_to_target, by_ev.evals_to_target),
                           "us_ratio": _ratio(c.us_per_eval, min(p.us_per_eval for p in peers))}))
    return out


def _num(x: float | None, spec: str = ".3g") -> str:
    if x is None:
        return ""
    return "-" if not math.isfinite(x) else f"{x:{spec}}"


def format_failures(rows: Sequence[StrategyRow]) -> str:
    """One line per failed run (left out of the medians), or an empty string."""
    return "\n".join(f"failed: D={r.dims} {r.function} {r.method} seed {r.seed} after {r.evaluations} "
                     f"evaluations: {r.error}" for r in rows if r.error is not None)


def format_tables(cells: Sequence[Cell], *, target: float) -> str:
    """One table per (dimension, function), then the summary of our methods' ratios."""
    columns = [Column("method", 15, "<"), Column("library", 9, "<"), Column("kind", 12, "<"),
               Column("best f", 9, bar=True), Column(f"ev to {target:.0e}", 11), Column("reached", 7),
               Column("us/eval", 8), Column("best peer", 15, "<", bar=True), Column("f ratio", 8),
               Column("ev ratio", 8), Column("us ratio", 8)]
    blocks = []
    keys = sorted({(c.dims, c.function) for c in cells}, key=lambda k: (k[0], list(FUNCTIONS).index(k[1])))
    for dims, function in keys:
        mine = [c for c in cells if (c.dims, c.function) == (dims, function)]
        lines = [[c.method, c.library, c.kind, _num(c.best_f, ".2e"), _num(c.evals_to_target, ".0f"),
                  f"{c.reached}/{c.seeds}", _num(c.us_per_eval, ".0f"), c.peer or "", _num(c.f_ratio, ".3g"),
                  _num(c.evals_ratio, ".3g"), _num(c.us_ratio, ".3g")] for c in mine]
        blocks.append(f"D = {dims}, {function} (medians over {max(c.seeds for c in mine)} seeds)\n"
                      + render_table(columns, lines))
    ours = sorted({(c.method, c.dims) for c in cells if c.ours and c.peer is not None},
                  key=lambda k: (list(METHODS).index(k[0]), k[1]))
    if ours:
        fns = [f for f in FUNCTIONS if any(c.function == f for c in cells)]
        cols = [Column("ours", 13, "<"), Column("D", 6), Column("best peer of its kind", 30, "<"),
                *(Column(f, 11) for f in fns), Column("us ratio", 8, bar=True)]
        lines = []
        for method, dims in ours:
            row = {c.function: c for c in cells if (c.method, c.dims) == (method, dims)}
            peers = sorted({c.peer for c in row.values() if c.peer})
            ratios = [row[f].ratio if f in row else None for f in fns]
            us = [u for f in fns if f in row for u in [row[f].us_ratio] if u is not None]
            lines.append([method, str(dims), ", ".join(str(p) for p in peers),
                          *("" if r is None else f"{_num(r[1], '.3g')} ({r[0]})" for r in ratios),
                          _num(statistics.median(us), ".2f") if us else ""])
        blocks.append("Ours / best peer of its kind: evaluations to target (ev) where both medians reached it, "
                      "else best f (f); below 1 is better\n" + render_table(cols, lines))
    return "\n\n".join(blocks)


def _budgets(args: argparse.Namespace) -> dict[int, int]:
    size = SIZES[args.size]
    dims = args.dims if args.dims is not None else list(size.budgets)
    return {d: args.budget if args.budget is not None else size.budgets.get(d, max(size.budgets.values()))
            for d in dims}


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``gradfree perf strategies``."""
    parser = argparse.ArgumentParser(
        prog="gradfree perf strategies",
        description="Our population strategies against pycma, nevergrad and EvoTorch on sphere, ellipsoid, "
                    "Rosenbrock and Rastrigin at equal evaluation budgets: medians of best f, evaluations to "
                    "target and ask/tell microseconds per evaluation, and each of our methods' ratio to the "
                    "best peer of its kind.")
    parser.add_argument("--size", choices=list(SIZES), default="full",
                        help="quick (a smoke run), small (1 seed, D=100 and 1000) or full (3 seeds, D=100, "
                             "1000, 10000; the default)")
    parser.add_argument("--quick", action="store_const", const="quick", dest="size", help="shortcut for --size quick")
    parser.add_argument("--dims", type=int_list, default=None, help="dimensions, e.g. 100,1000 (default: the size's)")
    parser.add_argument("--budget", type=int, default=None, help="evaluations per run (default: the size's)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..K-1 (default: the size's)")
    parser.add_argument("--methods", type=word_list, default=None,
                        help=f"comma-separated names (default: all installed): {', '.join(METHODS)}")
    parser.add_argument("--functions", type=word_list, default=list(FUNCTIONS),
                        help=f"comma-separated names (default: all): {', '.join(FUNCTIONS)}")
    parser.add_argument("--target", type=float, default=1e-8, help="target f for evaluations to target (1e-8)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and the environment here")
    parser.add_argument("--verbose", action="store_true", help="print one line per finished run")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line and print the tables; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_program(lambda: _main(args))


def _main(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    seeds = args.seeds if args.seeds is not None else SIZES[args.size].seeds
    if seeds < 1:
        raise ConfigError("--seeds must be >= 1")

    def progress(r: StrategyRow) -> None:
        if args.verbose:
            print(f"  D={r.dims} {r.function} {r.method} seed {r.seed}: best f {r.best_f:.3g}, "
                  f"{r.evaluations} evaluations, {r.us_per_eval:.0f} us/eval, {r.wall_s:.1f} s", flush=True)

    budgets = _budgets(args)
    rows = run_strategies(budgets=budgets, seeds=range(seeds), methods=args.methods, functions=args.functions,
                          target=args.target, progress=progress)
    print(f"Strategies at equal budgets {budgets} (evaluations by D), x0 = 3 + U(-1, 1)^D, sigma0 = 1, float64, "
          f"{seeds} seed(s); us/eval = ask/tell wall time outside f per evaluation")
    print(format_tables(summarise(rows), target=args.target))
    failures = format_failures(rows)
    if failures:
        print(failures)
    versions = [f"{lib} {_version(lib)}" for lib in ("cma", "nevergrad", "evotorch") if _version(lib)]
    line = environment(extras=versions)
    print(line)
    if args.json is not None:
        from gradfree.train.files import save_json
        from gradfree.train.provenance import provenance

        save_json({"rows": [asdict(r) for r in rows], "environment": line, "provenance": provenance("cpu"),
                   "budgets": budgets, "target": args.target}, args.json)


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
