"""The shared pieces of the eps-bounded attacks: batched estimates against their formulas and autograd,
projections, steps and score losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from attack_models import F64, images, smooth_model

from gradfree.attacks.base import Goal, Session, margins
from gradfree.attacks.steps import (
    antithetic_gaussian,
    descent_step,
    gaussian_directions,
    project,
    score_loss,
    sphere_forward,
)


def test_estimates_are_exact_on_linear_functions() -> None:
    """For f(x) = a . x, central and forward differences are exact along each direction, so the estimates
    equal (1/q) sum (a.u) u (Gaussian) and (D/q) sum (a.u) u (sphere)."""
    g = torch.Generator().manual_seed(0)
    n, q, d = 3, 7, 10
    a = torch.randn(n, d, generator=g, dtype=F64)
    x = torch.randn(n, d, generator=g, dtype=F64)
    u = gaussian_directions(n, q, d, generator=g, dtype=F64, device=torch.device("cpu"))
    f = lambda p: (a.unsqueeze(1) * p).sum(dim=2)  # noqa: E731
    sigma = 0.01
    est = antithetic_gaussian(f(x.unsqueeze(1) + sigma * u), f(x.unsqueeze(1) - sigma * u), u, sigma)
    expected = torch.einsum("nq,nqd->nd", (a.unsqueeze(1) * u).sum(dim=2), u) / q
    assert torch.allclose(est, expected, rtol=1e-10)
    us = gaussian_directions(n, q, d, generator=g, dtype=F64, device=torch.device("cpu"), sphere=True)
    assert torch.allclose(us.norm(dim=2), torch.ones(n, q, dtype=F64))
    est = sphere_forward((a * x).sum(dim=1), f(x.unsqueeze(1) + sigma * us), us, sigma)
    expected = d * torch.einsum("nq,nqd->nd", (a.unsqueeze(1) * us).sum(dim=2), us) / q
    assert torch.allclose(est, expected, rtol=1e-10)


def test_nes_estimate_converges_to_autograd() -> None:
    model = smooth_model()
    x = images(1, shape=(1, 4, 4)).flatten(1)
    y = torch.tensor([0])

    def loss(p: torch.Tensor) -> torch.Tensor:
        return -margins(model(p.reshape(-1, 1, 4, 4)), y.expand(p.shape[0]), None)

    xx = x.clone().requires_grad_(True)
    (true,) = torch.autograd.grad(loss(xx).sum(), xx)
    g = torch.Generator().manual_seed(1)
    q = 4000
    u = gaussian_directions(1, q, 16, generator=g, dtype=F64, device=torch.device("cpu"))
    with torch.no_grad():
        plus = loss((x.unsqueeze(1) + 1e-3 * u).reshape(-1, 16)).reshape(1, q)
        minus = loss((x.unsqueeze(1) - 1e-3 * u).reshape(-1, 16)).reshape(1, q)
    est = antithetic_gaussian(plus, minus, u, 1e-3)
    assert F.cosine_similarity(est, true).item() > 0.98


def test_projection_lands_in_the_ball_and_the_box() -> None:
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(5, 1, 6, 6, generator=g, dtype=F64)
    far = x0 + 3 * torch.randn(5, 1, 6, 6, generator=g, dtype=F64)
    p = project(far, x0, 0.1, "linf")
    assert ((p - x0).abs() <= 0.1 + 1e-12).all() and (p >= 0).all() and (p <= 1).all()
    p = project(far, x0, 0.5, "l2")
    assert ((p - x0).flatten(1).norm(dim=1) <= 0.5 + 1e-12).all() and (p >= 0).all() and (p <= 1).all()
    inside = x0 + 1e-3
    assert torch.allclose(project(inside.clamp(0, 1), x0, 0.5, "l2"), inside.clamp(0, 1))


def test_descent_steps_have_the_step_size_under_their_norm() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 10, generator=g, dtype=F64)
    grad = torch.randn(4, 10, generator=g, dtype=F64)
    step = descent_step(x, grad, 0.05, "linf") - x
    assert torch.allclose(step, -0.05 * grad.sign())
    step = descent_step(x, grad, torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64), "l2") - x
    assert torch.allclose(step.norm(dim=1), torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64))
    assert (F.cosine_similarity(step, -grad) > 1 - 1e-12).all()


def test_score_losses_match_their_definitions() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2]], dtype=F64)
    x = torch.full((2, 1, 1, 1), 0.5, dtype=F64)
    y = torch.tensor([0, 1])
    for access, out in (("logits", logits), ("probabilities", logits.softmax(dim=1))):
        s = Session(lambda z: z, x, y, goal=Goal(), targets=None, budget=None, access=access,
                    generator=torch.Generator())
        owners = torch.arange(2)
        assert torch.allclose(score_loss(s, out, owners, "margin"), torch.tensor([1.5, 0.1], dtype=F64))
        assert torch.allclose(score_loss(s, out, owners, "ce"), logits.log_softmax(dim=1)[[0, 1], [0, 1]])
        t = Session(lambda z: z, x, y, goal=Goal(targeted=True), targets=torch.tensor([2, 0]), budget=None,
                    access=access, generator=torch.Generator())
        assert torch.allclose(score_loss(t, out, owners, "ce"), -logits.log_softmax(dim=1)[[0, 1], [2, 0]])
        assert torch.allclose(score_loss(t, out, owners, "margin"), torch.tensor([3.0, 0.2], dtype=F64))
