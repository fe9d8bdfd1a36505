"""Method specifics: SPSA convergence, ZO-SGD/ZO-Adam = estimate + torch.optim rule, exact sign steps,
MeZO's update and restore, NaN handling, and the option errors of ``build_optimizer``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch
from torch import Tensor, nn

from gradfree.errors import ConfigError
from gradfree.optim import OPTIMIZERS, MeZO, build_optimizer, needs_gradient

ZO_BASE = ["zo-sgd", "zo-adam", "zo-sign"]  # the estimator + update-rule optimizers (not MeZO)


def _quadratic(d: int = 20) -> tuple[nn.Parameter, Callable[[], Tensor], Tensor, Tensor]:
    """``f(theta) = 0.5 sum a_i (theta_i - c_i)^2`` in float64, minimum 0 at ``c``."""
    g = torch.Generator().manual_seed(0)
    a = torch.linspace(0.5, 2.0, d, dtype=torch.float64)
    c = torch.randn(d, generator=g, dtype=torch.float64)
    theta = nn.Parameter(torch.zeros(d, dtype=torch.float64))

    def f() -> Tensor:
        return 0.5 * (a * (theta - c) ** 2).sum()

    return theta, f, a, c


def _recording(f: Callable[[], Tensor], params: Sequence[Tensor]) -> tuple[Callable[[], Tensor], list[Tensor]]:
    """A closure that also records the flat parameter vector it was evaluated at."""
    seen: list[Tensor] = []

    def closure() -> Tensor:
        seen.append(torch.cat([p.detach().reshape(-1) for p in params]).clone())
        return f()

    return closure, seen


def _flat(params: Sequence[Tensor]) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params]).clone()


# ------------------------------------------------------------------ ZO-SGD / ZO-Adam / ZO-sign


def test_spsa_zo_sgd_converges_on_a_quadratic() -> None:
    theta, f, _, c = _quadratic()
    q = 4
    opt = build_optimizer("zo-sgd", [theta], lr=0.1, estimator="rademacher", difference="central",
                          num_directions=q, seed=0)
    before = float(f().detach())
    for _ in range(200):
        opt.step(f)
        assert opt.last_estimate is not None and opt.last_estimate.evaluations == 2 * q
    assert float(f().detach()) < 1e-7 * before
    assert float((theta.detach() - c).abs().max()) < 1e-3


def test_spsa_step_is_the_central_difference_estimate() -> None:
    """Rebuild one ZO-SGD step from the points the closure saw: x +- mu u_i with u_i in {-1, 1}^D."""
    theta, f, a, c = _quadratic()
    with torch.no_grad():
        theta.copy_(torch.randn(20, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    mu, lr, q = 1e-3, 0.05, 3
    opt = build_optimizer("zo-sgd", [theta], lr=lr, estimator="rademacher", difference="central",
                          num_directions=q, smoothing=mu, seed=4)
    x = _flat([theta])
    closure, seen = _recording(f, [theta])
    opt.step(closure)
    assert len(seen) == 2 * q
    grad = a * (x - c)  # exact; central differences are exact on a quadratic
    estimate = torch.zeros_like(x)
    for plus, minus in zip(seen[0::2], seen[1::2], strict=True):
        u = (plus - minus) / (2 * mu)
        torch.testing.assert_close(u.abs(), torch.ones_like(u), rtol=0, atol=1e-9)  # Rademacher
        torch.testing.assert_close(plus, x + mu * u, rtol=0, atol=1e-12)
        estimate += (grad @ u) * u / q
    torch.testing.assert_close(_flat([theta]) - x, -lr * estimate, rtol=1e-7, atol=1e-10)


def _two_tensor_problem() -> tuple[list[nn.Parameter], Callable[[], Tensor]]:
    g = torch.Generator().manual_seed(2)
    w = nn.Parameter(torch.randn(4, 3, generator=g, dtype=torch.float64))
    b = nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64))
    x = torch.randn(16, 3, generator=g, dtype=torch.float64)
    y = torch.randn(16, 4, generator=g, dtype=torch.float64)

    def f() -> Tensor:
        return ((x @ w.T + b - y) ** 2).mean()

    return [w, b], f


@pytest.mark.parametrize(("name", "options", "reference"), [
    ("zo-sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("zo-sgd", {"lr": 0.05, "momentum": 0.5, "dampening": 0.3},
     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.5, dampening=0.3)),
    ("zo-adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1},
     lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    ("zo-adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled": True},
     lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1)),
], ids=["sgd-nesterov", "sgd-dampening", "adam-l2", "adamw"])
def test_update_rule_matches_torch_optim_on_the_estimate(name: str, options: dict, reference) -> None:
    """ZO-X is "estimator + X": feeding its own estimates to torch.optim.X gives the same parameters."""
    params, f = _two_tensor_problem()
    opt = build_optimizer(name, params, num_directions=5, seed=3, **options)
    twins = [p.detach().clone().requires_grad_() for p in params]
    ref = reference(twins)
    for _ in range(6):
        opt.step(f)
        assert opt.last_estimate is not None
        g = opt.last_estimate.grad
        offset = 0
        for t in twins:
            t.grad = g[offset : offset + t.numel()].view_as(t).clone()
            offset += t.numel()
        ref.step()
        for p, t in zip(params, twins, strict=True):
            torch.testing.assert_close(p.detach(), t.detach(), rtol=1e-10, atol=1e-12)
    assert not torch.equal(_flat(params), _flat(_two_tensor_problem()[0]))


def test_zo_sign_moves_every_coordinate_by_exactly_lr() -> None:
    params, f = _two_tensor_problem()
    groups = [{"params": [params[0]], "lr": 0.01}, {"params": [params[1]], "lr": 0.001}]
    opt = build_optimizer("zo-sign", groups, num_directions=4, seed=5)
    for _ in range(5):
        before = [p.detach().clone() for p in params]
        opt.step(f)
        assert opt.last_estimate is not None
        g = opt.last_estimate.grad
        offset = 0
        for p, b, lr in zip(params, before, (0.01, 0.001), strict=True):
            delta = p.detach() - b
            torch.testing.assert_close(delta.abs(), torch.full_like(delta, lr), rtol=0, atol=1e-12)
            assert torch.equal(torch.sign(delta), -torch.sign(g[offset : offset + p.numel()].view_as(p)))
            offset += p.numel()


def test_zo_sign_momentum_takes_the_sign_of_the_average() -> None:
    params, f = _two_tensor_problem()
    lr, beta = 0.01, 0.6
    opt = build_optimizer("zo-sign", params, lr=lr, momentum=beta, num_directions=2, seed=6)
    buf = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64)
    for _ in range(6):
        before = _flat(params)
        opt.step(f)
        assert opt.last_estimate is not None
        buf = beta * buf + (1 - beta) * opt.last_estimate.grad
        torch.testing.assert_close(_flat(params) - before, -lr * torch.sign(buf), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ZO_BASE)
@pytest.mark.parametrize("where", ["perturbed", "everywhere"])
def test_non_finite_losses_skip_the_step(name: str, where: str) -> None:
    params, f = _two_tensor_problem()
    start = _flat(params)

    def poisoned() -> Tensor:
        if where == "everywhere" or not torch.equal(_flat(params), start):
            return torch.tensor(float("nan"), dtype=torch.float64)
        return f()

    q = 4
    opt = build_optimizer(name, params, lr=0.01, num_directions=q, seed=7)
    start_loss = f().detach()
    for _ in range(3):
        loss = opt.step(poisoned)
        if where == "everywhere":
            assert torch.isnan(loss)
        else:  # the point itself was fine: its loss is still reported
            torch.testing.assert_close(loss, start_loss, rtol=0, atol=0)
        assert opt.last_estimate is not None
        assert opt.last_estimate.rejected == q
    assert torch.equal(_flat(params), start)
    assert not opt.state  # no moments or momentum built from a NaN step
    # the optimizer is not poisoned: with a finite closure it goes on normally
    before = float(f().detach())
    for _ in range(20):
        assert torch.isfinite(opt.step(f))
    assert float(f().detach()) < before
    assert all(bool(torch.isfinite(p).all()) for p in params)


def test_step_needs_a_closure() -> None:
    params, _ = _two_tensor_problem()
    for name in [*ZO_BASE, "mezo"]:
        with pytest.raises(ConfigError, match="closure"):
            build_optimizer(name, params).step()


# ------------------------------------------------------------------ MeZO


def _linear_loss(d: int = 50) -> tuple[list[nn.Parameter], Tensor, Callable[[], Tensor]]:
    g = torch.Generator().manual_seed(8)
    params = [nn.Parameter(torch.randn(d, generator=g, dtype=torch.float64)),
              nn.Parameter(torch.randn(5, 4, generator=g, dtype=torch.float64))]
    w = torch.randn(d + 20, generator=g, dtype=torch.float64)

    def f() -> Tensor:
        return w @ torch.cat([p.reshape(-1) for p in params])

    return params, w, f


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_mezo_update_is_minus_lr_projected_times_z(weight_decay: float) -> None:
    params, w, f = _linear_loss()
    eps, lr = 1e-3, 0.01
    opt = MeZO(params, lr=lr, smoothing=eps, weight_decay=weight_decay, seed=9)
    previous: Tensor | None = None
    for _ in range(3):
        theta = _flat(params)
        closure, seen = _recording(f, params)
        opt.step(closure)
        assert len(seen) == 2
        plus, minus = seen
        z = (plus - minus) / (2 * eps)
        torch.testing.assert_close(plus, theta + eps * z, rtol=0, atol=1e-12)
        torch.testing.assert_close(minus, theta - eps * z, rtol=0, atol=1e-12)
        assert abs(float(z.mean())) < 0.5 and 0.6 < float(z.std()) < 1.4  # a N(0, I) draw, not a tiny one
        projected = float(w @ z)  # (l+ - l-) / (2 eps), exact for a linear loss
        expected = -lr * (projected * z + weight_decay * theta)
        torch.testing.assert_close(_flat(params) - theta, expected, rtol=1e-8, atol=1e-12)
        if previous is not None:
            assert not torch.allclose(z, previous)  # a fresh direction every step
        previous = z


def test_mezo_averages_num_directions() -> None:
    params, w, f = _linear_loss()
    eps, lr, n = 1e-3, 0.01, 3
    opt = MeZO(params, lr=lr, smoothing=eps, num_directions=n, seed=10)
    theta = _flat(params)
    closure, seen = _recording(f, params)
    opt.step(closure)
    assert len(seen) == 2 * n
    zs = [(p - m) / (2 * eps) for p, m in zip(seen[0::2], seen[1::2], strict=True)]
    expected = -lr * sum((float(w @ z) / n) * z for z in zs)
    torch.testing.assert_close(_flat(params) - theta, expected, rtol=1e-8, atol=1e-12)


def test_mezo_restores_parameters_when_projection_is_zero() -> None:
    params, _, _ = _linear_loss()
    theta = _flat(params)
    opt = MeZO(params, lr=0.1, smoothing=1e-3, num_directions=2, seed=11)
    closure, seen = _recording(lambda: torch.tensor(3.0, dtype=torch.float64), params)
    for _ in range(5):
        assert float(opt.step(closure)) == 3.0
    assert len(seen) == 20
    assert all(float((s - theta).abs().max()) > 1e-4 for s in seen)  # it really perturbed
    # +eps z, -2 eps z, +eps z cancels up to float rounding only
    torch.testing.assert_close(_flat(params), theta, rtol=0, atol=1e-12)


@pytest.mark.parametrize("where", ["perturbed", "everywhere"])
def test_mezo_rejects_non_finite_directions(where: str) -> None:
    params, _, f = _linear_loss()
    theta = _flat(params)

    def poisoned() -> Tensor:
        if where == "everywhere" or float((_flat(params) - theta).abs().max()) > 1e-9:
            return torch.tensor(float("inf") if where == "everywhere" else float("nan"))
        return f()

    opt = MeZO(params, lr=0.1, num_directions=2, seed=12)
    for _ in range(3):
        assert torch.isnan(opt.step(poisoned))
    assert opt.rejected == 6
    torch.testing.assert_close(_flat(params), theta, rtol=0, atol=1e-12)
    assert opt.state_dict()["gradfree"]["rejected"] == 6


def test_mezo_rejects_bad_hyper_parameters() -> None:
    params, _, _ = _linear_loss()
    for bad in ({"lr": 0.0}, {"smoothing": -1.0}, {"num_directions": 0}):
        with pytest.raises(ConfigError, match="mezo"):
            build_optimizer("mezo", params, **bad)


# ------------------------------------------------------------------ options and names


def test_estimator_option_it_does_not_take_is_config_error() -> None:
    params, _ = _two_tensor_problem()
    with pytest.raises(ConfigError, match=r"takes no option bogus.*num_directions"):
        build_optimizer("zo-sgd", params, estimator_options={"bogus": 1})
    with pytest.raises(ConfigError, match=r"coordinate.*num_directions.*num_coordinates"):
        build_optimizer("zo-adam", params, estimator="coordinate", estimator_options={"num_directions": 3})
    with pytest.raises(ConfigError, match="unknown estimator 'gausian'"):
        build_optimizer("zo-sgd", params, estimator="gausian")


def test_coordinate_estimator_through_estimator_options() -> None:
    params, f = _two_tensor_problem()
    opt = build_optimizer("zo-sgd", params, lr=0.05, estimator="coordinate",
                          estimator_options={"num_coordinates": 5}, seed=13)
    before_loss, before = float(f().detach()), _flat(params)
    opt.step(f)
    assert opt.last_estimate is not None and opt.last_estimate.evaluations == 6
    assert int((_flat(params) != before).sum()) == 5  # only the sampled coordinates move
    for _ in range(30):
        opt.step(f)
    assert float(f().detach()) < before_loss


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_unknown_option_lists_the_known_ones(name: str) -> None:
    params, _ = _two_tensor_problem()
    with pytest.raises(ConfigError, match=rf"optimizer '{name}' takes no option lrr; it takes: ") as info:
        build_optimizer(name, params, lrr=0.1)
    assert "lr" in str(info.value).split("it takes: ")[1].split(", ")
    if name in ZO_BASE:  # the estimator settings it forwards to its base count as known options
        assert "num_directions" in str(info.value) and "seed" in str(info.value)
    # only what a user may pass: not the arguments a subclass fills in for its base
    assert "defaults" not in str(info.value) and "update_rule" not in str(info.value)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_bad_lr_is_config_error(name: str) -> None:
    params, _ = _two_tensor_problem()
    with pytest.raises(ConfigError, match=name):
        build_optimizer(name, params, lr=-1.0)


def test_needs_gradient() -> None:
    assert {n for n in OPTIMIZERS.names() if needs_gradient(n)} == {"sgd", "momentum", "adam", "adamw",
                                                                   "rmsprop"}
    assert not any(needs_gradient(n) for n in ["zo-sgd", "zo-adam", "zo-sign", "mezo"])
    with pytest.raises(ConfigError, match="Did you mean zo-sgd"):
        needs_gradient("zo_sgd")
    with pytest.raises(ConfigError, match="unknown optimizer"):
        build_optimizer("lbfgs", [nn.Parameter(torch.zeros(2))])
