"""Step-size rules: sep-CMA's two-point adaptation (TPA), open-es's sigma gradient and the GA's success rule.

Each rule is checked against a hand computation of its formula, and for its effect: TPA's mirrored pair lies
on the last mean shift; open-es and ga with ``adapt_sigma`` close in on the optimum where their fixed-sigma
versions stay at the initial scale.
"""

from __future__ import annotations

import math

import pytest
import torch

from gradfree.errors import ConfigError
from gradfree.strategies import STRATEGIES, PopulationSpec, gaussian_rows
from gradfree.strategies.open_es import sigma_factor
from gradfree.strategies.sep_cma import TPA_DIMENSION, sep_cma_parameters


def sphere(x: torch.Tensor) -> torch.Tensor:
    return (x.double() ** 2).sum(-1)


# ---- sep-CMA: two-point step-size adaptation -----------------------------------------------------------
def test_auto_switches_to_tpa_at_pycma_threshold() -> None:
    sep = STRATEGIES.get("sep-cma")
    assert TPA_DIMENSION == 300
    assert not sep(TPA_DIMENSION - 1, 8).tpa and sep(TPA_DIMENSION, 8).tpa
    assert sep(10, 8, step_size="tpa").tpa and not sep(400, 8, step_size="csa").tpa
    with pytest.raises(ConfigError, match="step_size"):
        sep(10, 8, step_size="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="popsize >= 3"):
        sep(10, 2, step_size="tpa")


def test_first_two_members_are_the_mirrored_last_shift() -> None:
    d = 30
    s = STRATEGIES.get("sep-cma")(d, 10, init_mean=torch.full((d,), 2.0, dtype=torch.float64), sigma=0.5,
                                  step_size="tpa", seed=1)
    x = s.ask()
    assert not torch.allclose(x[0] - s.mean, -(x[1] - s.mean))  # generation 0: no shift yet, plain samples
    for _ in range(3):
        before = s.mean.clone()
        s.tell(sphere(s.ask()))
        shift = s.mean - before
        x = s.ask()
        eps0, eps1 = (x[0] - s.mean) / s.scale, (x[1] - s.mean) / s.scale
        torch.testing.assert_close(eps0, -eps1, rtol=0, atol=1e-12)
        direction = shift / s.scale
        cosine = float(eps0 @ direction / (eps0.norm() * direction.norm()))
        assert cosine == pytest.approx(1.0, abs=1e-12)
        row0 = gaussian_rows(s.pending_seed, 0, 1, d, dtype=torch.float64)
        assert float(eps0.norm()) == pytest.approx(float(row0.norm()), rel=1e-12)  # chi-distributed length
        others = (x[2:] - s.mean) / s.scale
        torch.testing.assert_close(others, gaussian_rows(s.pending_seed, 2, 10, d, dtype=torch.float64),
                                   rtol=0, atol=1e-12)


def test_tpa_sigma_update_follows_the_rank_difference() -> None:
    d, p = 12, 8
    s = STRATEGIES.get("sep-cma")(d, p, init_mean=torch.ones(d, dtype=torch.float64), sigma=0.3,
                                  step_size="tpa", seed=2)
    s.tell(sphere(s.ask()))  # generation 0: no line, sigma unchanged by TPA
    assert s.sigma == 0.3 and s.tpa_s == 0.0
    params = sep_cma_parameters(d, p)
    assert params["tpa_c"] == 0.3 and params["tpa_d"] == pytest.approx(0.7 + 2 * math.log(d))
    state = 0.0
    for losses in ([0.0, 7, 1, 2, 3, 4, 5, 6], [5.0, 1, 2, 3, 0, 4, 6, 7], [3.0, 3, 1, 2, 4, 5, 6, 7]):  # up, down, tie
        s.ask()
        sigma = s.sigma
        s.tell(torch.tensor(losses))
        t = torch.tensor(losses)
        z = (int((t < t[1]).sum()) - int((t < t[0]).sum())) / (p - 1)
        state = 0.7 * state + 0.3 * math.copysign(math.sqrt(abs(z)), z)
        assert s.tpa_s == pytest.approx(state, abs=1e-15)
        assert s.sigma == pytest.approx(sigma * math.exp(state / params["tpa_d"]), rel=1e-14)


def test_tpa_spec_rebuilds_members_and_ignores_the_line_in_equality() -> None:
    s = STRATEGIES.get("sep-cma")(20, 9, init_mean=torch.full((20,), 3.0), sigma=1.0, step_size="tpa", seed=4)
    for _ in range(3):
        s.tell(sphere(s.ask()))
    spec = s.population_spec()
    assert spec is not None and spec.line is not None
    population = s.ask()
    assert torch.equal(spec.members(s.mean, s.scale), population)
    for start, stop in [(0, 1), (1, 2), (1, 5), (2, 9), (0, 9)]:
        assert torch.equal(spec.members(s.mean, s.scale, start, stop), population[start:stop])
    assert spec == PopulationSpec(spec.gen_seed, 9, False)


def test_tpa_keeps_pace_in_high_dimension_where_csa_lags() -> None:
    # D = 400, popsize 21, 6,000 evaluations on the sphere from 3 * ones, sigma 1; measured best f over seeds
    # 0..2: tpa 7.7-11.9, csa 67-88, pycma CMA_diagonal (TPA at this dimension) 8.1-10.4.
    d, budget = 400, 6000
    best = {}
    for rule in ("tpa", "csa"):
        values = []
        for seed in range(3):
            s = STRATEGIES.get("sep-cma")(d, 21, init_mean=torch.full((d,), 3.0, dtype=torch.float64), sigma=1.0,
                                          seed=seed, step_size=rule)
            while s.evaluations + s.popsize <= budget:
                s.tell(sphere(s.ask()))
            values.append(s.best_loss)
        best[rule] = sorted(values)[1]
    assert best["tpa"] < 20 and best["csa"] > 4 * best["tpa"], best


# ---- open-es: the sigma gradient ------------------------------------------------------------------------
def _mirrored(z: torch.Tensor) -> torch.Tensor:
    return torch.stack([z, -z], 1).reshape(-1, z.shape[1])


def test_open_es_sigma_factor_matches_the_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(6, 50, generator=gen, dtype=torch.float64)
    eps = _mirrored(z)
    u = torch.linspace(-0.5, 0.5, 12, dtype=torch.float64)[torch.randperm(12, generator=gen)]
    g = 0.0
    for k in range(6):
        g += (float(u[2 * k]) + float(u[2 * k + 1])) / 2 * (float(z[k] @ z[k]) - 50)
    g /= 6 * math.sqrt(100)
    assert sigma_factor(u, eps, lr=0.2, max_change=0.5) == pytest.approx(math.exp(-0.2 * g), rel=1e-12)
    assert sigma_factor(u, eps, lr=1e3, max_change=0.2) in (pytest.approx(0.8), pytest.approx(1.2))


def test_open_es_sigma_shrinks_when_far_members_score_worse() -> None:
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(8, 40, generator=gen, dtype=torch.float64)
    eps = _mirrored(z)
    norms = (eps * eps).sum(1)
    from gradfree.strategies.shaping import centered_ranks

    worse_far = centered_ranks(norms)  # loss grows with the distance: sigma too large
    assert sigma_factor(worse_far, eps, lr=0.2, max_change=0.2) < 1
    assert sigma_factor(-worse_far, eps, lr=0.2, max_change=0.2) > 1


def test_open_es_adapt_sigma_is_off_by_default_and_needs_pairs() -> None:
    s = STRATEGIES.get("open-es")(10, 8, sigma=0.5)
    s.tell(sphere(s.ask()))
    assert s.scale == 0.5 and "adapt_sigma" not in s.state_dict()["hyper"]
    with pytest.raises(ConfigError, match="antithetic"):
        STRATEGIES.get("open-es")(10, 8, adapt_sigma=True, antithetic=False)


# ---- ga: the success rule --------------------------------------------------------------------------------
def test_ga_success_rule_on_a_flat_loss_decays_by_the_formula() -> None:
    # Constant losses: no child is strictly better than its parent, so the success rate decays geometrically
    # from its target value and sigma shrinks by the closed-form factor every generation.
    d, p, elite = 30, 10, 1
    s = STRATEGIES.get("ga")(d, p, sigma=1.0, elite=elite, adapt_sigma=True, seed=3)
    lam = p - elite
    p_t = 1 / (5 + math.sqrt(lam) / 2)
    c_p, damping = p_t * lam / (2 + p_t * lam), 1 + d / (2 * lam)
    s.ask()
    s.tell(torch.ones(p))  # generation 0 has no parents: no update
    assert s.sigma == 1.0
    sigma, rate = 1.0, p_t
    for _ in range(5):
        s.ask()
        s.tell(torch.ones(p))
        rate = (1 - c_p) * rate
        sigma *= math.exp((rate - p_t) / (damping * (1 - p_t)))
        assert s.success_rate == pytest.approx(rate, rel=1e-12)
        assert s.sigma == pytest.approx(sigma, rel=1e-12)


@pytest.mark.parametrize("name", ["open-es", "ga"])
def test_adapt_sigma_closes_in_where_a_fixed_sigma_stalls(name: str) -> None:
    # D = 20, sigma 1, 6,000 evaluations on the sphere from 3 * ones (f0 = 180), seed 0: the best member
    # evaluated (open-es with lr 0.03). Measured: open-es fixed 4.8, adaptive 1.4e-2; ga fixed 8.9, adaptive
    # 3.6e-5.
    best = {}
    hyper = {"lr": 0.03} if name == "open-es" else {}
    for adapt in (False, True):
        s = STRATEGIES.get(name)(20, 16, init_mean=torch.full((20,), 3.0), sigma=1.0, seed=0, adapt_sigma=adapt,
                                 **hyper)
        while s.evaluations + 16 <= 6000:
            s.tell(sphere(s.ask()))
        best[adapt] = s.best_loss
    assert best[False] > 1.0 and best[True] < 0.2 and best[True] < best[False] / 20, best
