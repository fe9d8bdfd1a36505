"""The optimizer contract, for every name in ``OPTIMIZERS`` (like torch's ``optim_db``).

Zeroth-order optimizers get a plain closure (no backward); the gradient baselines get the usual backprop
closure. Every optimizer must: improve a least-squares problem by a stated factor; be deterministic given
its seed; resume from a saved ``state_dict`` exactly; leave the global RNG alone; honour per-group
hyper-parameters. Zeroth-order ones must also never touch ``.grad`` and run the closure without autograd.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.objective.counter import EvaluationCounter
from gradfree.objective.parameters import ParameterObjective, PopulationCache
from gradfree.optim import build_optimizer, needs_gradient
from gradfree.optim.registry import GRADIENT, ZEROTH_ORDER, load_methods
from gradfree.strategies.adapters.wrapped import pickled_state_allowed


@dataclass(frozen=True)
class Setting:
    """How one optimizer is run on the least-squares problem, and what it must reach."""

    steps: int
    factor: float  # final loss <= initial loss / factor
    options: dict[str, Any] = field(default_factory=dict)


# Initial loss is about 7.2 (D = 27). Achieved reductions over seeds 0..19 when these were set: gradient
# methods 250-540x in 50 steps; zo-sgd >= 35x, zo-adam >= 150x, zo-sign >= 39x, mezo >= 55x.
SETTINGS: dict[str, Setting] = {
    "sgd": Setting(50, 100, {"lr": 0.1}),
    "momentum": Setting(50, 100, {"lr": 0.05}),
    "adam": Setting(50, 100, {"lr": 0.1}),
    "adamw": Setting(50, 100, {"lr": 0.1}),
    "rmsprop": Setting(50, 100, {"lr": 0.02}),
    "zo-sgd": Setting(60, 10, {"lr": 0.05, "num_directions": 10, "seed": 0}),
    "zo-adam": Setting(60, 10, {"lr": 0.1, "num_directions": 10, "seed": 0}),
    "zo-sign": Setting(100, 10, {"lr": 0.02, "num_directions": 10, "seed": 0}),
    "mezo": Setting(150, 10, {"lr": 0.03, "num_directions": 2, "seed": 0}),
    # Population strategies (gradfree.strategies.optimizer; lr=1 is the plain strategy, open-es/pgpe: their own
    # step size). Worst reduction over seeds 0..19 when set: sep-cma 158x, snes 67x, open-es 41x, pgpe 63x,
    # ga 21x, cem 11x, pycma 194x, nevergrad (DiagonalCMA) 218x.
    "sep-cma": Setting(60, 30, {"lr": 1.0, "popsize": 14, "sigma": 0.5, "seed": 0}),
    "snes": Setting(60, 20, {"lr": 1.0, "popsize": 14, "sigma": 0.5, "seed": 0}),
    "open-es": Setting(60, 10, {"lr": 0.1, "popsize": 14, "sigma": 0.1, "seed": 0}),
    "pgpe": Setting(100, 20, {"lr": 0.2, "popsize": 14, "sigma": 0.2, "momentum": 0.5, "seed": 0}),
    "ga": Setting(100, 5, {"lr": 1.0, "popsize": 14, "sigma": 0.1, "seed": 0}),
    "cem": Setting(60, 3, {"lr": 1.0, "popsize": 32, "sigma": 1.0, "elite_frac": 0.5, "seed": 0}),
    "pycma": Setting(60, 50, {"lr": 1.0, "popsize": 14, "sigma": 0.5, "seed": 0}),
    "nevergrad": Setting(60, 50, {"lr": 1.0, "popsize": 14, "sigma": 0.5, "method": "DiagonalCMA", "seed": 0}),
    # Search methods (gradfree.search). Worst reduction over seeds 0..19 when set: rso 84,000x, grid 269x,
    # one-plus-one 14x, hybrid (rso for 200 evaluations, then adam) 1,686x.
    "rso": Setting(60, 1000, {"lr": 1.0, "seed": 0}),
    "grid": Setting(10, 100, {"lr": 1.0, "weight_range": (-3.0, 3.0), "range_size": 61, "weights_per_step": 9,
                              "seed": 0}),
    # (1+1) keeps about a third of its candidates here: with seed 9 the 4th step is accepted, as
    # test_zeroth_order_never_touches_grad needs (its parameters must move).
    "one-plus-one": Setting(300, 10, {"lr": 0.1, "seed": 9}),
    "hybrid": Setting(60, 100, {"lr": 1.0, "switch_after": 200, "second_options": {"lr": 0.1}, "seed": 0}),
}

OPTIMIZERS = load_methods()  # every family that registers optimizers, not only gradfree.optim
NAMES = OPTIMIZERS.names()
ZO_NAMES = OPTIMIZERS.names(kind=ZEROTH_ORDER)


@pytest.fixture(autouse=True)
def _optional_package_installed(request: pytest.FixtureRequest) -> None:
    """Skip an optimizer whose optional package (registry tag ``requires``, e.g. nevergrad) is not installed."""
    import importlib.util

    name = getattr(request.node, "callspec", None) and request.node.callspec.params.get("name")
    requires = OPTIMIZERS.entry(name).tags.get("requires") if name in OPTIMIZERS else None
    if requires and importlib.util.find_spec(requires) is None:
        pytest.skip(f"{name} needs the optional package {requires}")


def _problem(init_seed: int = 1) -> tuple[nn.Linear, Tensor, Tensor]:
    """Noise-free linear regression, 64 samples, 8 inputs, 3 outputs (D = 27); the minimum loss is 0."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    w, b = torch.randn(3, 8, generator=g), torch.randn(3, generator=g)
    model = nn.Linear(8, 3)
    with torch.no_grad():
        init = torch.Generator().manual_seed(init_seed)
        model.weight.copy_(0.3 * torch.randn(3, 8, generator=init))
        model.bias.copy_(0.3 * torch.randn(3, generator=init))
    return model, x, x @ w.T + b


def _closure(name: str, model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor,
             grad_enabled: list[bool] | None = None) -> Callable[[], Tensor]:
    if needs_gradient(name):
        def backprop() -> Tensor:
            opt.zero_grad()
            with torch.enable_grad():
                loss = F.mse_loss(model(x), y)
                loss.backward()
            return loss

        return backprop

    def forward_only() -> Tensor:
        if grad_enabled is not None:
            grad_enabled.append(torch.is_grad_enabled())
        return F.mse_loss(model(x), y)

    return forward_only


def _loss(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float(F.mse_loss(model(x), y))


def _options(name: str, **override: Any) -> dict[str, Any]:
    return {**SETTINGS[name].options, **override}


def _run(name: str, steps: int, **override: Any) -> tuple[nn.Linear, float, float]:
    model, x, y = _problem()
    opt = build_optimizer(name, model.parameters(), **_options(name, **override))
    before = _loss(model, x, y)
    closure = _closure(name, model, opt, x, y)
    for _ in range(steps):
        opt.step(closure)
    return model, before, _loss(model, x, y)


def _params(model: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _equal(a: list[Tensor], b: list[Tensor]) -> bool:
    return all(torch.equal(s, t) for s, t in zip(a, b, strict=True))


def test_every_optimizer_has_a_setting() -> None:
    assert set(SETTINGS) == set(NAMES), "add a row to SETTINGS for each registered optimizer"
    assert set(ZO_NAMES) >= {"zo-sgd", "zo-adam", "zo-sign", "mezo", "open-es", "snes", "pgpe", "sep-cma", "ga",
                             "cem", "nevergrad", "pycma"}


@pytest.mark.parametrize("name", NAMES)
def test_kind_tag_matches_the_optimizer(name: str) -> None:
    kind = OPTIMIZERS.entry(name).tags["kind"]
    assert kind in (GRADIENT, ZEROTH_ORDER)
    assert needs_gradient(name) == (kind == GRADIENT)
    model, _, _ = _problem()
    opt = build_optimizer(name, model.parameters(), **_options(name))
    assert isinstance(opt, torch.optim.Optimizer)
    assert getattr(opt, "zeroth_order", False) == (kind == ZEROTH_ORDER)


@pytest.mark.parametrize("name", NAMES)
def test_improves_least_squares(name: str) -> None:
    setting = SETTINGS[name]
    _, before, after = _run(name, setting.steps)
    assert before > 5.0
    assert after <= before / setting.factor, f"{name}: {before:.3f} -> {after:.4f}, wanted /{setting.factor}"


@pytest.mark.parametrize("name", NAMES)
def test_negligible_lr_does_not_improve(name: str) -> None:
    """The same harness with lr = 1e-12 must not pass the improvement bar: the test above can fail."""
    setting = SETTINGS[name]
    _, before, after = _run(name, setting.steps, lr=1e-12)
    assert after >= before * (1 - 1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_parameters(name: str) -> None:
    first, _, _ = _run(name, 5)
    second, _, _ = _run(name, 5)
    assert _equal(_params(first), _params(second))
    if name in ZO_NAMES:
        other, _, _ = _run(name, 5, seed=1)
        assert not any(torch.equal(a, b) for a, b in zip(_params(first), _params(other), strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_resume_is_exact(name: str) -> None:
    k, m = 3, 4
    model, x, y = _problem()
    opt = build_optimizer(name, model.parameters(), **_options(name))
    closure = _closure(name, model, opt, x, y)
    for _ in range(k):
        opt.step(closure)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, buffer)
    for _ in range(m):
        opt.step(closure)
    uninterrupted = _params(model)

    # A fresh model and optimizer, deliberately different (initial values, seed), then loaded.
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model2, _, _ = _problem(init_seed=7)
    override = {"seed": 12345} if name in ZO_NAMES else {}
    opt2 = build_optimizer(name, model2.parameters(), **_options(name, **override))
    model2.load_state_dict(saved["model"])
    with pickled_state_allowed():  # the adapters' wrapped optimizers travel as a pickle: trusted here
        opt2.load_state_dict(saved["optimizer"])
    closure2 = _closure(name, model2, opt2, x, y)
    for _ in range(m):
        opt2.step(closure2)
    assert _equal(_params(model2), uninterrupted)
    # a resume that forgot the optimizer state does not reproduce the run (so the check above can fail)
    if name not in ("sgd",):  # plain SGD has no state
        model3, _, _ = _problem(init_seed=7)
        opt3 = build_optimizer(name, model3.parameters(), **_options(name, **override))
        model3.load_state_dict(saved["model"])
        closure3 = _closure(name, model3, opt3, x, y)
        for _ in range(m):
            opt3.step(closure3)
        assert not _equal(_params(model3), uninterrupted)


@pytest.mark.parametrize("name", ZO_NAMES)
def test_zeroth_order_never_touches_grad(name: str) -> None:
    model, x, y = _problem()
    opt = build_optimizer(name, model.parameters(), **_options(name))
    enabled: list[bool] = []
    closure = _closure(name, model, opt, x, y, grad_enabled=enabled)
    with torch.enable_grad():  # the optimizer itself must switch autograd off
        for _ in range(3):
            opt.step(closure)
    assert len(enabled) >= 6 and not any(enabled)
    assert all(p.grad is None for p in model.parameters())
    # a .grad that is already there is neither read into the update nor changed
    sentinels = [torch.full_like(p, 1e6) for p in model.parameters()]
    for p, s in zip(model.parameters(), sentinels, strict=True):
        p.grad = s
    before = _params(model)
    opt.step(closure)
    for p, s in zip(model.parameters(), sentinels, strict=True):
        assert p.grad is s and bool((s == 1e6).all())
    change = max(float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before, strict=True))
    assert 0 < change < 10


@pytest.mark.parametrize("name", NAMES)
def test_global_rng_untouched(name: str) -> None:
    model, x, y = _problem()
    torch.manual_seed(2024)
    state = torch.get_rng_state()
    opt = build_optimizer(name, model.parameters(), **_options(name))
    closure = _closure(name, model, opt, x, y)
    for _ in range(3):
        opt.step(closure)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", NAMES)
def test_param_groups_with_own_lr(name: str) -> None:
    model, x, y = _problem()
    groups = [{"params": [model.weight]}, {"params": [model.bias], "lr": 0.0}]
    opt = build_optimizer(name, groups, **_options(name))
    assert [g["lr"] for g in opt.param_groups] == [SETTINGS[name].options["lr"], 0.0]
    weight, bias = model.weight.detach().clone(), model.bias.detach().clone()
    before = _loss(model, x, y)
    closure = _closure(name, model, opt, x, y)
    for _ in range(10):
        opt.step(closure)
    if name == "mezo":
        # MeZO moves to theta + eps z, theta - eps z and back in place: the restore is exact only up to
        # float rounding (a few ulps per step), which is the price of not storing a copy.
        torch.testing.assert_close(model.bias.detach(), bias, rtol=0, atol=1e-6)
    else:
        assert torch.equal(model.bias.detach(), bias)
    assert float((model.weight.detach() - weight).abs().max()) > 1e-3
    assert _loss(model, x, y) < before


# ------------------------------------------------------------------ closures with a batched .batch


def _mlp() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(8, 4), nn.Tanh(), nn.Linear(4, 3))


def _linear() -> nn.Module:
    torch.manual_seed(3)
    return nn.Linear(8, 3)


@pytest.mark.parametrize("make", [_linear, _mlp], ids=["linear-vmap", "mlp-bmm"])
@pytest.mark.parametrize("name", ["zo-sgd", "zo-adam", "zo-sign"])
def test_batch_closure_equals_plain_closure(name: str, make: Callable[[], nn.Module]) -> None:
    _, x, y = _problem()
    q, steps = 6, 5
    options = _options(name, num_directions=q)

    plain_model = make()
    plain_opt = build_optimizer(name, plain_model.parameters(), **options)
    calls = 0

    def plain() -> Tensor:
        nonlocal calls
        calls += 1
        return F.mse_loss(plain_model(x), y)

    batch_model = make()
    batch_opt = build_optimizer(name, batch_model.parameters(), **options)
    counter = EvaluationCounter()
    objective = ParameterObjective(batch_model, F.mse_loss, x, y, populations=PopulationCache(batch_model, F.mse_loss),
                               counter=counter)
    batches = 0
    original = objective.population

    def counting_batch(vectors: Tensor, tensors: list[Tensor]) -> Tensor:
        nonlocal batches
        batches += 1
        return original(vectors, tensors)

    objective.population = counting_batch  # type: ignore[method-assign]
    for _ in range(steps):
        loss_plain = plain_opt.step(plain)
        loss_batch = batch_opt.step(objective)
        torch.testing.assert_close(loss_batch, loss_plain, rtol=1e-5, atol=1e-6)
    for a, b in zip(_params(batch_model), _params(plain_model), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert not _equal(_params(batch_model), _params(make()))  # it did move
    assert calls == steps * (q + 1)
    assert batches == steps  # one batched call per step, never the plain closure
    assert counter.evaluations == steps * (q + 1)
    assert batch_opt.last_estimate is not None and batch_opt.last_estimate.evaluations == q + 1
