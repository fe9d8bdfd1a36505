"""A simple real-valued genetic algorithm: selection, elitism, uniform crossover, Gaussian mutation.

The first generation is ``mean + sigma * z_i``. Every later generation keeps the ``elite`` best members of the
previous one unchanged and fills the rest with children: two parents are picked by tournament (or uniformly
from the best ``truncation`` fraction), mixed by uniform crossover with probability ``crossover`` (else the
child copies the first parent) and mutated by ``sigma * z_i``. Elites are *re-evaluated*: they are members of
the new population and count as evaluations, which keeps the contract simple (every member of every ask gets a
fresh loss) and lets a noisy (mini-batch) loss correct a lucky elite. ``mean`` is the best member of the last
told generation. The mutation scale ``sigma`` is fixed, as in Such et al.

With ``adapt_sigma=True`` (off by default) ``sigma`` follows the success rule of the elitist (1+lambda)-ES: a
child succeeds when its loss is below its (first) parent's; over the ``lambda = P - elite`` children of a
generation the smoothed success rate is ``p <- (1 - c_p) p + c_p * successes / lambda`` and
``sigma <- sigma * exp((p - p_t) / (d (1 - p_t)))``, with the target rate ``p_t = 1 / (5 + sqrt(lambda) / 2)``,
``c_p = p_t lambda / (2 + p_t lambda)`` and damping ``d = 1 + D / (2 lambda)``: fewer successes than
``p_t`` mean steps too long for the landscape at hand, and ``sigma`` shrinks, so the search keeps closing in
instead of stalling at its initial ``sigma``.

Reference: Holland (1975), "Adaptation in Natural and Artificial Systems"; the real-coded setting with
truncation selection and Gaussian mutation of Such et al. (2017), "Deep Neuroevolution: Genetic Algorithms
Are a Competitive Alternative for Training Deep Neural Networks", arXiv:1712.06567, section 3; the success
rule of ``adapt_sigma``: Rechenberg (1973), "Evolutionsstrategie" (the 1/5 rule), in the form of Igel, Hansen,
Roth (2007), "Covariance Matrix Adaptation for Multi-objective Optimization", Evolutionary Computation 15(1),
section 3.1 (procedure updateStepSize and its constants).
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
        adapt_sigma: adapt ``sigma`` by the success rule (default False: the fixed ``sigma`` of Such et al.).

    Shapes:
        ``ask() -> (P, D)``; ``tell((P,))``; state ``parents (P, D)``, ``parent_losses (P,)`` float64,
        ``sigma`` and ``success_rate`` (floats).
    """

    _state_attrs = ("parents", "parent_losses", "sigma", "success_rate")

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
        adapt_sigma: bool = False,
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
        if adapt_sigma:  # only then, so that state_dicts of fixed-sigma runs keep their old hyper-parameters
            self._hyper.update(adapt_sigma=True)
        self.parents = torch.empty(0, num_dims, device=self.device, dtype=self.dtype)
        self.parent_losses = torch.empty(0, device=self.device, dtype=torch.float64)
        self.sigma = float(sigma)
        lam = popsize - elite
        self.target_rate = 1 / (5 + math.sqrt(lam) / 2)
        self.success_rate = self.target_rate

    def _pick(self, gen: torch.Generator, count: int) -> Tensor:
        """Indices ``(count,)`` of selected parents (CPU)."""
        h, losses = self._hyper, self.parent_losses.cpu()
        if h["selection"] == "truncation":
            pool = torch.argsort(losses, stable=True)[: max(1, math.ceil(h["truncation"] * self.popsize))]
            return pool[torch.randint(0, pool.shape[0], (count,), generator=gen)]
        entrants = torch.randint(0, self.popsize, (count, h["tournament_size"]), generator=gen)
        return entrants.gather(1, losses[entrants].argmin(dim=1, keepdim=True)).squeeze(1)

    def _sample(self, gen_seed: int) -> Tensor:
        sigma, z = self.sigma, self.noise(gen_seed, 0, self.popsize)
        if self.generation == 0:
            return self._mean + sigma * z
        h, n_elite = self._hyper, self._hyper["elite"]
        gen = torch.Generator().manual_seed(gen_seed)
        n_child = self.popsize - n_elite
        first, second = self._pick(gen, n_child), self._pick(gen, n_child)
        self._cache["first"] = first
        children = self.parents[first]
        if h["crossover"] > 0:
            mix = torch.rand(n_child, 1, generator=gen) < h["crossover"]
            mask = (torch.rand(n_child, self.num_dims, generator=gen) < 0.5) & mix
            children = torch.where(mask.to(self.device), self.parents[second], children)
        elites = self.parents[torch.argsort(self.parent_losses.cpu(), stable=True)[:n_elite]]
        return torch.cat([elites, children + sigma * z[n_elite:]])

    def _update(self, population: Tensor, losses: Tensor) -> None:
        if self._hyper.get("adapt_sigma", False) and "first" in self._cache:
            n_elite = self._hyper["elite"]
            lam = self.popsize - n_elite
            wins = int((losses[n_elite:] < self.parent_losses.cpu()[self._cache["first"]]).sum())
            p_t = self.target_rate
            c_p, damping = p_t * lam / (2 + p_t * lam), 1 + self.num_dims / (2 * lam)
            self.success_rate = (1 - c_p) * self.success_rate + c_p * wins / lam
            self.sigma *= math.exp((self.success_rate - p_t) / (damping * (1 - p_t)))
        self.parents = population.clone()
        self.parent_losses = losses.to(self.device)
        self._mean = population[int(torch.argmin(losses))].clone()
