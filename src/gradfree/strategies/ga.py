"""A simple real-valued genetic algorithm: selection, elitism, uniform crossover, Gaussian mutation.

The first generation is ``mean + sigma * z_i``. Every later generation keeps the ``elite`` best members of the
previous one unchanged and fills the rest with children: two parents are picked by tournament (or uniformly
from the best ``truncation`` fraction), mixed by uniform crossover with probability ``crossover`` (else the
child copies the first parent) and mutated by ``sigma * z_i``. Elites are *re-evaluated*: they are members of
the new population and count as evaluations, which keeps the contract simple (every member of every ask gets a
fresh loss) and lets a noisy (mini-batch) loss correct a lucky elite. ``mean`` is the best member of the last
told generation.

Reference: Holland (1975), "Adaptation in Natural and Artificial Systems"; the real-coded setting with
truncation selection and Gaussian mutation of Such et al. (2017), "Deep Neuroevolution: Genetic Algorithms
Are a Competitive Alternative for Training Deep Neural Networks", arXiv:1712.06567, section 3.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradfree.strategies.base import STRATEGIES, Strategy, check


@STRATEGIES.register("ga", summary="Genetic algorithm: tournament/truncation, elitism, crossover, mutation")
class GA(Strategy):
    """Elitist real-valued genetic algorithm with Gaussian mutation.

    Args:
        num_dims, popsize, init_mean, sigma, seed: see :class:`Strategy`; ``sigma`` is the fixed mutation
            standard deviation (default 0.1).
        elite: best members copied unchanged into the next generation (default 1; ``0 <= elite < popsize``).
        selection: ``"tournament"`` (default) or ``"truncation"``.
        tournament_size: members per tournament (default 3).
        truncation: fraction of the population eligible as parents under truncation selection (default 0.25).
        crossover: probability that a child is a uniform crossover of its two parents (default 0.0).

    Shapes:
        ``ask() -> (P, D)``; ``tell((P,))``; state ``parents (P, D)``, ``parent_losses (P,)`` float64.
    """

    _state_attrs = ("parents", "parent_losses")

    def __init__(
        self,
        num_dims: int,
        popsize: int,
        *,
        init_mean: Tensor | None = None,
        sigma: float = 0.1,
        seed: int = 0,
        elite: int = 1,
        selection: str = "tournament",
        tournament_size: int = 3,
        truncation: float = 0.25,
        crossover: float = 0.0,
    ) -> None:
        super().__init__(num_dims, popsize, init_mean=init_mean, sigma=sigma, seed=seed)
        check(0 <= elite < popsize, f"elite must be in [0, popsize), got {elite}")
        check(
            selection in ("tournament", "truncation"),
            f"selection must be tournament/truncation: {selection!r}",
        )
        check(tournament_size >= 1, f"tournament_size must be >= 1, got {tournament_size}")
        check(0 < truncation <= 1, f"truncation must be in (0, 1], got {truncation}")
        check(0 <= crossover <= 1, f"crossover must be in [0, 1], got {crossover}")
        self._hyper.update(
            elite=elite, selection=selection, tournament_size=tournament_size, truncation=truncation,
            crossover=crossover,
        )  # fmt: skip
        self.parents = torch.empty(0, num_dims, device=self.device, dtype=self.dtype)
        self.parent_losses = torch.empty(0, device=self.device, dtype=torch.float64)

    def _pick(self, gen: torch.Generator, count: int) -> Tensor:
        """Indices ``(count,)`` of selected parents (CPU)."""
        h, losses = self._hyper, self.parent_losses.cpu()
        if h["selection"] == "truncation":
            pool = torch.argsort(losses, stable=True)[: max(1, math.ceil(h["truncation"] * self.popsize))]
            return pool[torch.randint(0, pool.shape[0], (count,), generator=gen)]
        entrants = torch.randint(0, self.popsize, (count, h["tournament_size"]), generator=gen)
        return entrants.gather(1, losses[entrants].argmin(dim=1, keepdim=True)).squeeze(1)

    def _sample(self, gen_seed: int) -> Tensor:
        sigma, z = self._hyper["sigma"], self.noise(gen_seed, 0, self.popsize)
        if self.generation == 0:
            return self._mean + sigma * z
        h, n_elite = self._hyper, self._hyper["elite"]
        gen = torch.Generator().manual_seed(gen_seed)
        n_child = self.popsize - n_elite
        first, second = self._pick(gen, n_child), self._pick(gen, n_child)
        children = self.parents[first]
        if h["crossover"] > 0:
            mix = torch.rand(n_child, 1, generator=gen) < h["crossover"]
            mask = (torch.rand(n_child, self.num_dims, generator=gen) < 0.5) & mix
            children = torch.where(mask.to(self.device), self.parents[second], children)
        elites = self.parents[torch.argsort(self.parent_losses.cpu(), stable=True)[:n_elite]]
        return torch.cat([elites, children + sigma * z[n_elite:]])

    def _update(self, population: Tensor, losses: Tensor) -> None:
        self.parents = population.clone()
        self.parent_losses = losses.to(self.device)
        self._mean = population[int(torch.argmin(losses))].clone()
