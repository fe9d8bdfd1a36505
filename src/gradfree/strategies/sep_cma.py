"""sep-CMA-ES: CMA-ES restricted to a diagonal covariance, linear in the dimension.

Members are ``mean + sigma * sqrt(C) * z_i`` with a diagonal ``C`` (a ``(D,)`` vector). The best
``mu = P // 2`` are recombined with the default positive weights; cumulative step-size adaptation (path
``p_sigma``) sets ``sigma`` and the rank-one (path ``p_c``) plus rank-mu updates set ``C``, with ``c_1`` and
``c_mu`` multiplied by ``(D + 2) / 3`` because a diagonal has only ``D`` free parameters to learn. Memory and
time are ``O(P * D)`` per generation: no ``D x D`` matrix is ever formed.

References: Ros & Hansen (2008), "A Simple Modification in CMA-ES Achieving Linear Time and Space
Complexity", PPSN X, section 2 (the diagonal update and the ``(D + 2) / 3`` boost); Hansen (2016), "The CMA
Evolution Strategy: A Tutorial", arXiv:1604.00772, Table 1 and Appendix A (default weights and rates).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradfree.strategies.base import STRATEGIES, Strategy
from gradfree.strategies.shaping import cma_weights, mu_eff


def sep_cma_parameters(num_dims: int, popsize: int) -> dict[str, float]:
    """The default learning rates of sep-CMA-ES for dimension ``D`` and population ``P``.

    Returns ``mu_eff, c_sigma, d_sigma, c_c, c_1, c_mu`` (``c_1, c_mu`` already boosted by ``(D + 2) / 3``)
    and ``chi_n`` (the expected norm of a ``D``-dimensional standard normal vector).
    """
    n, mueff = float(num_dims), mu_eff(cma_weights(popsize))
    c_sigma = (mueff + 2) / (n + mueff + 5)
    d_sigma = 1 + 2 * max(0.0, math.sqrt((mueff - 1) / (n + 1)) - 1) + c_sigma
    c_c = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
    c_1 = 2 / ((n + 1.3) ** 2 + mueff)
    c_mu = min(1 - c_1, 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))
    boost = (n + 2) / 3
    c_1, c_mu = c_1 * boost, c_mu * boost
    if c_1 + c_mu > 1:  # keep C's decay factor non-negative in small dimension
        c_1, c_mu = c_1 / (c_1 + c_mu), c_mu / (c_1 + c_mu)
    chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
    return {"mu_eff": mueff, "c_sigma": c_sigma, "d_sigma": d_sigma, "c_c": c_c, "c_1": c_1, "c_mu": c_mu,
            "chi_n": chi_n}  # fmt: skip


@STRATEGIES.register(
    "sep-cma", summary="sep-CMA-ES: diagonal covariance, linear time/space (Ros & Hansen 2008)"
)
class SepCMAES(Strategy):
    """Separable CMA-ES with the default parameters of Hansen's tutorial and Ros & Hansen's boost.

    Args:
        num_dims, popsize, init_mean, sigma, seed: see :class:`Strategy`; ``sigma`` is the initial global step
            size (default 0.1). The usual popsize is ``4 + floor(3 ln D)``.

    Attributes:
        weights ``(mu,)``, params (see :func:`sep_cma_parameters`); state ``sigma`` (float), ``C``,
        ``p_sigma``, ``p_c`` (all ``(D,)``).

    Shapes:
        ``ask() -> (P, D)``; ``tell((P,))``.
    """

    _state_attrs = ("sigma", "C", "p_sigma", "p_c")

    def __init__(
        self,
        num_dims: int,
        popsize: int,
        *,
        init_mean: Tensor | None = None,
        sigma: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_dims, popsize, init_mean=init_mean, sigma=sigma, seed=seed)
        self.weights = cma_weights(popsize).to(device=self.device, dtype=self.dtype)
        self.params = sep_cma_parameters(num_dims, popsize)
        self.sigma = float(sigma)
        self.C = torch.ones_like(self._mean)
        self.p_sigma = torch.zeros_like(self._mean)
        self.p_c = torch.zeros_like(self._mean)

    @property
    def scale(self) -> Tensor:
        """Per-dimension sampling standard deviations ``sigma * sqrt(C)``, shape ``(D,)``."""
        return self.sigma * self.C.sqrt()

    def _sample(self, gen_seed: int) -> Tensor:
        return self._spec_members(gen_seed)

    def _update(self, population: Tensor, losses: Tensor) -> None:
        p, mueff = self.params, self.params["mu_eff"]
        cs, cc, c1, cmu = p["c_sigma"], p["c_c"], p["c_1"], p["c_mu"]
        best = torch.argsort(losses, stable=True)[: self.weights.shape[0]].to(self.device)
        z = self._cache["eps"][best]
        y = self.C.sqrt() * z
        z_w, y_w = self.weights @ z, self.weights @ y
        self._mean = self._mean + self.sigma * y_w
        self.p_sigma = (1 - cs) * self.p_sigma + math.sqrt(cs * (2 - cs) * mueff) * z_w
        ps_norm = float(torch.linalg.vector_norm(self.p_sigma))
        corrected = ps_norm / math.sqrt(1 - (1 - cs) ** (2 * (self.generation + 1)))
        hsig = float(corrected < (1.4 + 2 / (self.num_dims + 1)) * p["chi_n"])
        self.p_c = (1 - cc) * self.p_c + hsig * math.sqrt(cc * (2 - cc) * mueff) * y_w
        decay = 1 - c1 - cmu + c1 * (1 - hsig) * cc * (2 - cc)  # the weights sum to one
        self.C = decay * self.C + c1 * self.p_c**2 + cmu * (self.weights @ (y * y))
        self.sigma *= math.exp(cs / p["d_sigma"] * (ps_norm / p["chi_n"] - 1))
