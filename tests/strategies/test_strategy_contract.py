"""Contract tests run over every registered strategy (in the manner of torch's ``optim_db``).

Each strategy has one row in ``CASES``: the hyper-parameters used here and the budgets/thresholds it must
meet.
All numbers were measured over seeds 0..4 and are set with a margin of at least ~3x over the worst seed;
a broken update (wrong sign, no adaptation) misses them by orders of magnitude.

Sphere ``f(x) = ||x||^2``, D = 20, from ``mean = 3 * ones`` (f0 = 180); final ``f(mean)`` after the budget:

=========  ====  ===========================================  ======  =========  ==========
strategy   P     hyper                                        budget  threshold  worst seen
=========  ====  ===========================================  ======  =========  ==========
sep-cma    16    sigma=1                                      3000    1e-6       4.5e-9
snes       16    sigma=1                                      3000    1e-3       2.3e-5
open-es    16    sigma=0.1, lr=0.03                           6000    2e-2       1.7e-3
pgpe       16    sigma=1, lr=0.05                             6000    0.5        0.16
ga         16    sigma=0.05                                   6000    0.2        4.5e-2
cem        64    sigma=5, elite_frac=0.5                      6000    1e-2       3.9e-4
=========  ====  ===========================================  ======  =========  ==========

Rotated ellipsoid, D = 10, condition 1e3, fixed seeded rotation, from ``3 * ones`` (f0 ~ 1.8e4), budget 3000;
``f(mean) / f0`` must fall below: sep-cma 1e-2 (worst seen 1.8e-3), snes 1e-2 (1.5e-3), open-es 2e-2 (3.8e-3),
pgpe 5e-3 (5.4e-4), ga 3e-2 (4.6e-3), cem 0.1 (1.3e-2).

Variant cases (``VARIANTS``, options that change the algorithm), same measurement:

===============  ====  ==========================================  ======  =========  ==========
case             P     hyper                                       budget  threshold  worst seen
===============  ====  ==========================================  ======  =========  ==========
sep-cma[tpa]     16    sigma=1, step_size="tpa"                    3000    1e-9       1.8e-11
open-es[adapt]   16    sigma=1, lr=0.03, adapt_sigma=True          6000    0.2        5.3e-2
ga[adapt]        16    sigma=1, adapt_sigma=True                   6000    2e-3       3.6e-4
===============  ====  ==========================================  ======  =========  ==========

and on the rotated ellipsoid: sep-cma[tpa] 3e-3 (worst seen 8.0e-4), open-es[adapt] 3e-3 (6.7e-4), ga[adapt] 0.2
(5.4e-2).

Fixed-step methods (open-es, pgpe, ga) stall at a noise floor set by their step size; CEM's plain maximum-
likelihood refit shrinks its spread fast, so it needs a large population and initial spread to travel far.
"""

from __future__ import annotations

import io
import math
import pickle
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.strategies import STRATEGIES, AskTellError, Strategy


@dataclass(frozen=True)
class Case:
    popsize: int
    hyper: dict[str, Any]
    sphere_budget: int
    sphere_threshold: float
    ellipsoid_ratio: float
    ellipsoid_budget: int = 3000
    extra: dict[str, Any] = field(default_factory=dict)
    strategy: str | None = None  # the registered name, for a variant case ("sep-cma[tpa]"); default the key


CASES: dict[str, Case] = {
    "sep-cma": Case(16, {"sigma": 1.0}, 3000, 1e-6, 1e-2),
    "snes": Case(16, {"sigma": 1.0}, 3000, 1e-3, 1e-2),
    "open-es": Case(16, {"sigma": 0.1, "lr": 0.03}, 6000, 2e-2, 2e-2),
    "pgpe": Case(16, {"sigma": 1.0, "lr": 0.05}, 6000, 0.5, 5e-3),
    "ga": Case(16, {"sigma": 0.05}, 6000, 0.2, 3e-2),
    "cem": Case(64, {"sigma": 5.0, "elite_frac": 0.5}, 6000, 1e-2, 0.1),
}
NAMES = STRATEGIES.names()
VARIANTS: dict[str, Case] = {
    "sep-cma[tpa]": Case(16, {"sigma": 1.0, "step_size": "tpa"}, 3000, 1e-9, 3e-3,
                         strategy="sep-cma"),
    "open-es[adapt]": Case(16, {"sigma": 1.0, "lr": 0.03, "adapt_sigma": True}, 6000, 0.2, 3e-3,
                           strategy="open-es"),
    "ga[adapt]": Case(16, {"sigma": 1.0, "adapt_sigma": True}, 6000, 2e-3, 0.2,
                      strategy="ga"),
}
"""Non-default options that change the algorithm (two-point step size, step-size adaptation): every contract
test runs on them too."""
CASES.update(VARIANTS)
CASE_NAMES = list(CASES)


def sphere(x: Tensor) -> Tensor:
    return (x.double() ** 2).sum(-1)


def make_ellipsoid(num_dims: int, condition: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(num_dims, num_dims, generator=g, dtype=torch.float64))
    scales = condition ** (torch.arange(num_dims, dtype=torch.float64) / (num_dims - 1))
    # broadcast instead of ``x @ rotation.T``: tiny multi-threaded BLAS calls can stall on a busy 2-core box
    return lambda x: (scales * (x.double()[..., None, :] * rotation).sum(-1) ** 2).sum(-1)


def build(name: str, num_dims: int = 20, seed: int = 0, **over: Any) -> Strategy:
    case = CASES[name]
    kwargs = {"init_mean": torch.full((num_dims,), 3.0), "seed": seed, **case.hyper, **over}
    return STRATEGIES.get(case.strategy or name)(num_dims, case.popsize, **kwargs)


def run(s: Strategy, f, budget: int) -> Strategy:
    while s.evaluations + s.popsize <= budget:
        s.tell(f(s.ask()))
    return s


def trajectory(s: Strategy, f, generations: int) -> list[Tensor]:
    out = []
    for _ in range(generations):
        x = s.ask()
        out.append(x.clone())
        s.tell(f(x))
        out.append(s.mean.clone())
    return out


def test_every_strategy_has_a_case() -> None:
    assert set(CASES) - set(VARIANTS) == set(NAMES) == {"cem", "ga", "open-es", "pgpe", "sep-cma", "snes"}


@pytest.mark.parametrize("name", CASE_NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solves_sphere(name: str, seed: int) -> None:
    case = CASES[name]
    s = run(build(name, seed=seed), sphere, case.sphere_budget)
    final, start = float(sphere(s.mean)), 180.0
    assert s.evaluations <= case.sphere_budget
    assert final < case.sphere_threshold, f"{name}: f(mean)={final:.3g} after {s.evaluations} evaluations"
    assert start / final > 100
    assert s.best_loss <= float(sphere(s.best_x)) + 1e-9 and s.best_loss < start


@pytest.mark.parametrize("name", CASE_NAMES)
@pytest.mark.parametrize("seed", [0, 1])
def test_improves_rotated_ellipsoid(name: str, seed: int) -> None:
    case = CASES[name]
    f = make_ellipsoid(10, 1e3, seed=1234)
    s = build(name, num_dims=10, seed=seed)
    start = float(f(s.mean))
    run(s, f, case.ellipsoid_budget)
    ratio = float(f(s.mean)) / start
    assert ratio < case.ellipsoid_ratio, f"{name}: f(mean)/f0={ratio:.3g}"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_seed_determines_trajectory(name: str) -> None:
    a = trajectory(build(name, seed=7), sphere, 5)
    b = trajectory(build(name, seed=7), sphere, 5)
    c = trajectory(build(name, seed=8), sphere, 5)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def _roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # tensors and plain values only


@pytest.mark.parametrize("name", CASE_NAMES)
@pytest.mark.parametrize("pending", [False, True])
def test_resume_is_bit_identical(name: str, pending: bool) -> None:
    s = build(name, seed=3)
    trajectory(s, sphere, 4)
    if pending:
        s.ask()
    state = _roundtrip(s.state_dict())
    expected = trajectory(s, sphere, 5)
    fresh = build(name, seed=99)  # the seed is overwritten by the loaded generator
    fresh.load_state_dict(state)
    got = trajectory(fresh, sphere, 5)
    assert all(torch.equal(x, y) for x, y in zip(expected, got, strict=True))
    assert (fresh.generation, fresh.evaluations, fresh.best_loss) == (
        s.generation,
        s.evaluations,
        s.best_loss,
    )
    assert torch.equal(fresh.best_x, s.best_x)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_load_rejects_other_configuration(name: str) -> None:
    state = build(name).state_dict()
    with pytest.raises(ConfigError):
        build(name, num_dims=21).load_state_dict(state)


@pytest.mark.parametrize("name", CASE_NAMES)
@pytest.mark.parametrize("pending", [False, True])
def test_pickle_roundtrip(name: str, pending: bool) -> None:
    s = build(name, seed=5)
    trajectory(s, sphere, 3)
    if pending:
        s.ask()
    copy = pickle.loads(pickle.dumps(s))
    assert all(
        torch.equal(x, y) for x, y in zip(trajectory(s, sphere, 3), trajectory(copy, sphere, 3), strict=True)
    )


@pytest.mark.parametrize("name", CASE_NAMES)
def test_non_finite_losses_rank_last_and_are_counted(name: str) -> None:
    a, b = build(name, seed=2), build(name, seed=2)
    trajectory(a, sphere, 2)
    trajectory(b, sphere, 2)
    losses = sphere(a.ask())
    bad = losses.clone()
    bad[0], bad[3] = math.nan, math.inf
    worse = losses.clone()
    worse[0] = worse[3] = 1e30  # tied and last, like NaN and inf (ties are broken by index)
    b.ask()
    a.tell(bad)
    b.tell(worse)
    assert a.rejected == 2 and b.rejected == 0 and a.evaluations == b.evaluations
    assert torch.equal(a.mean, b.mean) and torch.equal(a.ask(), b.ask())
    assert math.isfinite(a.best_loss)


@pytest.mark.parametrize("name", NAMES)
def test_ask_tell_order(name: str) -> None:
    s = build(name)
    with pytest.raises(AskTellError, match="ask"):
        s.tell(torch.zeros(s.popsize))
    x = s.ask()
    assert torch.equal(s.ask(), x)  # asking again returns the pending population
    with pytest.raises(ConfigError, match="losses"):
        s.tell(torch.zeros(s.popsize + 1))
    s.tell(sphere(x).tolist())
    with pytest.raises(AskTellError):
        s.tell(sphere(x))
    assert (s.generation, s.evaluations) == (1, s.popsize)


@pytest.mark.parametrize("name", NAMES)
def test_follows_dtype_and_shapes(name: str) -> None:
    s = build(name, num_dims=7, init_mean=torch.zeros(7, dtype=torch.float64))
    x = s.ask()
    assert x.shape == (s.popsize, 7) and x.dtype == torch.float64
    s.tell(sphere(x))
    assert s.mean.dtype == torch.float64 and s.mean.shape == (7,)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_population_spec_rebuilds_members(name: str) -> None:
    s = build(name, seed=4)
    trajectory(s, sphere, 2)
    spec = s.population_spec()
    population = s.ask()
    if (CASES[name].strategy or name) == "ga":
        assert spec is None
        return
    assert spec is not None and spec.popsize == s.popsize and spec.gen_seed == s.pending_seed
    assert s.scale is not None
    assert torch.equal(spec.members(s.mean, s.scale), population)
    for start, stop in [(0, 1), (3, 8), (5, 6), (1, s.popsize)]:
        assert torch.equal(spec.members(s.mean, s.scale, start, stop), population[start:stop])


@pytest.mark.parametrize("name", NAMES)
def test_bad_arguments(name: str) -> None:
    cls = STRATEGIES.get(name)
    for kwargs in ({"popsize": 1}, {"sigma": -1.0}, {"sigma": math.nan}, {"init_mean": torch.zeros(3)}):
        args = {"popsize": 8, **kwargs}
        popsize = args.pop("popsize")
        with pytest.raises(ConfigError):
            cls(5, popsize, **args)
    with pytest.raises(ConfigError):
        cls(0, 8)


def test_even_popsize_for_mirrored_sampling() -> None:
    with pytest.raises(ConfigError, match="even"):
        STRATEGIES.get("open-es")(5, 7)
    with pytest.raises(ConfigError, match="even"):
        STRATEGIES.get("pgpe")(5, 7)
    STRATEGIES.get("open-es")(5, 7, antithetic=False)


def test_mirrored_members_are_mirrored() -> None:
    for name in ("open-es", "pgpe"):
        s = build(name)
        x = s.ask() - s.mean
        assert torch.allclose(x[0::2], -x[1::2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_follows_mean_and_matches_cpu_noise(name: str) -> None:
    cpu = build(name, seed=1)
    gpu = build(name, seed=1, init_mean=torch.full((20,), 3.0, device="cuda"))
    x = gpu.ask()
    assert x.device.type == "cuda"
    assert torch.allclose(x.cpu(), cpu.ask(), rtol=1e-5, atol=1e-6)
    gpu.tell(sphere(x))
    assert gpu.mean.device.type == "cuda"
    resumed = build(name, seed=0, init_mean=torch.zeros(20, device="cuda"))
    resumed.load_state_dict(gpu.state_dict())
    assert torch.equal(resumed.ask(), gpu.ask())


def test_spec_first_then_tell_without_ask() -> None:
    """The remote-evaluator flow: ship the spec, rebuild members elsewhere, tell; same as ask/tell."""
    a, b = build("open-es", seed=6), build("open-es", seed=6)
    for _ in range(3):
        spec = a.population_spec()
        assert spec is not None
        halves = [spec.members(a.mean.clone(), a.scale, lo, hi) for lo, hi in ((0, 5), (5, 16))]
        a.tell(torch.cat([sphere(h) for h in halves]))
        b.tell(sphere(b.ask()))
        assert torch.equal(a.mean, b.mean)
