"""Ask/tell population strategies over flat parameter vectors, minimising a loss.

Each algorithm lives in its own module and registers itself in :data:`STRATEGIES`; importing this package
imports them all. Every strategy is built as ``STRATEGIES.get(name)(num_dims, popsize, *, init_mean, sigma,
seed, **hyper)`` and used as::

    strategy = STRATEGIES.get("sep-cma")(num_dims, popsize, init_mean=x0, sigma=0.5)
    for _ in range(generations):
        population = strategy.ask()          # (popsize, num_dims)
        strategy.tell(loss(population))      # (popsize,)
    deploy(strategy.mean)

Gaussian strategies also describe a pending population by seeds (:meth:`Strategy.population_spec`), so a
remote worker can rebuild members ``[start, stop)`` from ``mean``, ``scale`` and the spec alone.
"""

from __future__ import annotations

from gradfree.strategies import cem, ga, open_es, pgpe, sep_cma, snes  # noqa: F401  (registration)
from gradfree.strategies.base import STRATEGIES, AskTellError, Strategy
from gradfree.strategies.noise import PopulationSpec, gaussian_rows

__all__ = ["STRATEGIES", "AskTellError", "PopulationSpec", "Strategy", "gaussian_rows"]
