"""sep-CMA-ES: CMA-ES restricted to a diagonal covariance, linear in the dimension.

Members are ``mean + sigma * sqrt(C) * z_i`` with a diagonal ``C`` (a ``(D,)`` vector). The best
``mu = P // 2`` are recombined with the default positive weights; the rank-one (path ``p_c``) plus rank-mu
updates set ``C``, with ``c_1`` and ``c_mu`` multiplied by ``(D + 2) / 3`` because a diagonal has only ``D``
free parameters to learn. Memory and time are ``O(P * D)`` per generation: no ``D x D`` matrix is ever formed.

The global step size ``sigma`` follows one of two rules (``step_size``):

* ``"csa"``, cumulative step-size adaptation: ``sigma`` grows when the evolution path ``p_sigma`` is longer
  than a random walk's. Its learning rate ``c_sigma ~ mu_eff / D`` makes it slow in large dimension, where
  the covariance learns faster than ``sigma`` and absorbs the step-size decrease instead (at D = 1,000 and
  30,000 evaluations on the sphere, f = 3.1 where pycma reaches 0.04);
* ``"tpa"``, two-point step-size adaptation: members 0 and 1 of every generation are the mirrored pair
  ``mean +- scale * line`` along the last mean shift (``line`` has the length of a standard normal vector,
  the norm of the generation's row 0); when the forward point ranks better than the backward one, steps are
  too short and ``sigma`` grows: ``z = (#{f < f_1} - #{f < f_0}) / (P - 1)``,
  ``s <- (1 - c) s + c sign(z) |z|^(1/2)``, ``sigma <- sigma exp(s / d)`` with ``c = 0.3`` and
  ``d = 0.7 + 2 ln D + 2 ln max(1, P - D)``. Its speed does not depend on ``D``.

``"auto"`` (the default) picks TPA from D = 300 and CSA below, as pycma does (``cma.evolution_strategy.
TPA_dimension``). The cumulation path ``p_sigma`` is kept under both rules: it gates the rank-one update
(``h_sigma``).

References: Ros & Hansen (2008), "A Simple Modification in CMA-ES Achieving Linear Time and Space
Complexity", PPSN X, section 2 (the diagonal update and the ``(D + 2) / 3`` boost); Hansen (2016), "The CMA
Evolution Strategy: A Tutorial", arXiv:1604.00772, Table 1 and Appendix A (default weights and rates, CSA);
Hansen (2008), "CMA-ES with Two-Point Step-Size Adaptation", arXiv:0805.0231, and Hansen, Atamna, Auger
(2014), "How to Assess Step-Size Adaptation Mechanisms in Randomized Search", PPSN XIII, section 2.3 (TPA,
with pycma 4.x's constants ``c``, ``d`` and the square root of ``|z|``, ``cma/sigma_adaptation.py``,
``CMAAdaptSigmaTPA``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from gradfree.strategies.base import STRATEGIES, Strategy, check
from gradfree.strategies.noise import gaussian_rows
from gradfree.strategies.shaping import cma_weights, mu_eff

StepSize = Literal["auto", "csa", "tpa"]
TPA_DIMENSION = 300
"""``step_size="auto"`` uses two-point adaptation from this dimension on (pycma's threshold)."""


def sep_cma_parameters(num_dims: int, popsize: int) -> dict[str, float]:
    """The default learning rates of sep-CMA-ES for dimension ``D`` and population ``P``.

    Returns ``mu_eff, c_sigma, d_sigma, c_c, c_1, c_mu`` (``c_1, c_mu`` already boosted by ``(D + 2) / 3``),
    ``chi_n`` (the expected norm of a ``D``-dimensional standard normal vector) and the two-point adaptation's
    ``tpa_c`` and ``tpa_d``.
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
    tpa_d = 0.7 + 2 * math.log(n) + 2 * math.log(max(1.0, popsize - n))
    return {"mu_eff": mueff, "c_sigma": c_sigma, "d_sigma": d_sigma, "c_c": c_c, "c_1": c_1, "c_mu": c_mu,
            "chi_n": chi_n, "tpa_c": 0.3, "tpa_d": tpa_d}  # fmt: skip


@STRATEGIES.register(
    "sep-cma", summary="sep-CMA-ES: diagonal covariance, linear time/space, CSA or TPA step size (Ros & Hansen 2008)"
)
class SepCMAES(Strategy):
    """Separable CMA-ES with the default parameters of Hansen's tutorial and Ros & Hansen's boost.

    Args:
        num_dims, popsize, init_mean, sigma, seed: see :class:`Strategy`; ``sigma`` is the initial global step
            size (default 0.1). The usual popsize is ``4 + floor(3 ln D)``.
        step_size: ``"csa"``, ``"tpa"`` (two-point adaptation; needs ``popsize >= 3``) or ``"auto"`` (TPA from
            ``D = 300``, CSA below; the default). See the module docstring.

    Attributes:
        weights ``(mu,)``, params (see :func:`sep_cma_parameters`), tpa (whether TPA is on); state ``sigma``
        (float), ``C``, ``p_sigma``, ``p_c``, ``shift`` (the last mean shift; all ``(D,)``), ``tpa_s`` (float).

    Shapes:
        ``ask() -> (P, D)``; ``tell((P,))``.
    """

    _state_attrs = ("sigma", "C", "p_sigma", "p_c", "shift", "tpa_s")

    def __init__(
        self,
        num_dims: int,
        popsize: int,
        *,
        init_mean: Tensor | None = None,
        sigma: float = 0.1,
        seed: int = 0,
        step_size: StepSize = "auto",
    ) -> None:
        super().__init__(num_dims, popsize, init_mean=init_mean, sigma=sigma, seed=seed)
        check(step_size in ("auto", "csa", "tpa"), f"step_size must be auto, csa or tpa, got {step_size!r}")
        self.tpa = step_size == "tpa" or (step_size == "auto" and num_dims >= TPA_DIMENSION)
        check(not self.tpa or popsize >= 3, f"two-point step-size adaptation needs popsize >= 3, got {popsize}")
        self._hyper.update(step_size=step_size)
        self.weights = cma_weights(popsize).to(device=self.device, dtype=self.dtype)
        self.params = sep_cma_parameters(num_dims, popsize)
        self.sigma = float(sigma)
        self.C = torch.ones_like(self._mean)
        self.p_sigma = torch.zeros_like(self._mean)
        self.p_c = torch.zeros_like(self._mean)
        self.shift = torch.zeros_like(self._mean)
        self.tpa_s = 0.0

    @property
    def scale(self) -> Tensor:
        """Per-dimension sampling standard deviations ``sigma * sqrt(C)``, shape ``(D,)``."""
        return self.sigma * self.C.sqrt()

    def _line(self, gen_seed: int) -> Tensor | None:
        """TPA's member-0 perturbation: the last mean shift in sampling units, as long as row 0's vector."""
        if not self.tpa or self.generation == 0:
            return None
        d = self.shift / self.scale
        norm = float(torch.linalg.vector_norm(d))
        if not (norm > 0 and math.isfinite(norm)):
            return None
        row = gaussian_rows(gen_seed, 0, 1, self.num_dims, dtype=self.dtype)
        return d * (float(torch.linalg.vector_norm(row)) / norm)

    def _sample(self, gen_seed: int) -> Tensor:
        return self._spec_members(gen_seed)  # caches the line as _cache["line"] when there is one

    def _update(self, population: Tensor, losses: Tensor) -> None:
        p, mueff = self.params, self.params["mu_eff"]
        cs, cc, c1, cmu = p["c_sigma"], p["c_c"], p["c_1"], p["c_mu"]
        best = torch.argsort(losses, stable=True)[: self.weights.shape[0]].to(self.device)
        z = self._cache["eps"][best]
        sqrt_c = self.C.sqrt()
        y = sqrt_c * z
        z_w, y_w = self.weights @ z, self.weights @ y
        self.shift = self.sigma * y_w
        self._mean = self._mean + self.shift
        self.p_sigma = (1 - cs) * self.p_sigma + math.sqrt(cs * (2 - cs) * mueff) * z_w
        ps_norm = float(torch.linalg.vector_norm(self.p_sigma))
        corrected = ps_norm / math.sqrt(1 - (1 - cs) ** (2 * (self.generation + 1)))
        hsig = float(corrected < (1.4 + 2 / (self.num_dims + 1)) * p["chi_n"])
        self.p_c = (1 - cc) * self.p_c + hsig * math.sqrt(cc * (2 - cc) * mueff) * y_w
        decay = 1 - c1 - cmu + c1 * (1 - hsig) * cc * (2 - cc)  # the weights sum to one
        self.C = decay * self.C + c1 * self.p_c**2 + cmu * (self.weights @ (y * y))
        if not self.tpa:
            self.sigma *= math.exp(cs / p["d_sigma"] * (ps_norm / p["chi_n"] - 1))
        elif "line" in self._cache:  # members 0 and 1 were the mirrored pair along the last shift
            f_forward, f_backward = float(losses[0]), float(losses[1])
            ahead = int((losses < f_backward).sum()) - int((losses < f_forward).sum())
            zt = ahead / (self.popsize - 1)
            self.tpa_s = (1 - p["tpa_c"]) * self.tpa_s + p["tpa_c"] * math.copysign(math.sqrt(abs(zt)), zt)
            self.sigma *= math.exp(self.tpa_s / p["tpa_d"])
