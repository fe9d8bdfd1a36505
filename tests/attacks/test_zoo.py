"""ZOO's pieces: its coordinate estimates against autograd, the attack space (dimension reduction,
hierarchical growth, importance sampling), the binary search over c and the early abort."""

from __future__ import annotations

import pytest
import torch
from attack_models import F64, images, linear_model, smooth_model

from gradfree.attacks import build_attack
from gradfree.attacks.attack_space import AttackSpace, importance_probabilities, initial_side, sample_coordinates
from gradfree.attacks.base import Goal, Session, margins
from gradfree.attacks.cw_objective import ConstantSearch, EarlyAbort, from_tanh_space, to_tanh_space
from gradfree.attacks.zoo import coordinate_derivatives, coordinate_losses
from gradfree.errors import ConfigError

SHAPE = (1, 4, 4)


def _session(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, access: str = "logits") -> Session:
    return Session(model, x, y, goal=Goal(norm="l2"), targets=None, budget=None, access=access,
                   generator=torch.Generator().manual_seed(0), stop_on_success=False)


def _objective(model: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor, m: torch.Tensor, c: torch.Tensor,
               kappa: float) -> torch.Tensor:
    """The ZOO objective of each image as a differentiable function of its variable ``m``."""
    x = from_tanh_space(to_tanh_space(x0) + m.reshape(x0.shape))
    f = torch.clamp(-margins(model(x), y, None), min=-kappa)
    return ((x - x0) ** 2).flatten(1).sum(dim=1) + c * f


@pytest.mark.parametrize("access", ["logits", "probabilities"])
def test_coordinate_estimates_match_autograd(access: str) -> None:
    model = smooth_model()
    x0 = images(2, shape=SHAPE)
    with torch.no_grad():
        y = model(x0).argmax(dim=1)
    g = torch.Generator().manual_seed(4)
    m = 0.3 * torch.randn(2, 16, generator=g, dtype=F64)
    coords = torch.stack([torch.randperm(16, generator=g)[:5] for _ in range(2)])
    c = torch.tensor([0.7, 2.0], dtype=F64)
    kappa = 50.0  # large: f stays on its smooth branch
    s = _session(model, x0, y, access=access)
    loss, margin, _ = coordinate_losses(s, m, torch.arange(2), coords, w0=to_tanh_space(x0), const=c, h=1e-4,
                                        confidence=kappa, space=AttackSpace(SHAPE))
    grad, hess = coordinate_derivatives(loss, 1e-4)
    assert torch.equal(s.queries, torch.tensor([11, 11]))  # 2k + 1 per image

    mm = m.clone().requires_grad_(True)
    value = _objective(model, x0, y, mm, c, kappa)
    (full,) = torch.autograd.grad(value.sum(), mm, create_graph=True)
    assert torch.allclose(loss[:, 0], value.detach(), rtol=1e-9, atol=1e-9)
    assert torch.allclose(grad, full.detach().gather(1, coords), rtol=1e-5, atol=1e-7)
    second = torch.stack([torch.autograd.grad(full[i, coords[i, j]], mm, retain_graph=True)[0][i, coords[i, j]]
                          for i in range(2) for j in range(5)]).reshape(2, 5)
    assert torch.allclose(hess, second, rtol=1e-3, atol=1e-4)


def test_fast_rows_equal_the_general_path() -> None:
    """Full-size spaces change one pixel per row; the result equals mapping every row through tanh."""
    model = smooth_model()
    x0 = images(3, shape=SHAPE)
    y = torch.zeros(3, dtype=torch.int64)
    g = torch.Generator().manual_seed(1)
    m = 0.2 * torch.randn(3, 16, generator=g, dtype=F64)
    coords = torch.stack([torch.randperm(16, generator=g)[:4] for _ in range(3)])
    c = torch.tensor([1.0, 0.1, 3.0], dtype=F64)
    s = _session(model, x0, y)
    loss, _, dist = coordinate_losses(s, m, torch.arange(3), coords, w0=to_tanh_space(x0), const=c, h=1e-3,
                                      confidence=0.0, space=AttackSpace(SHAPE))
    rows = m.unsqueeze(1).repeat(1, 9, 1)
    for i in range(3):
        for j in range(4):
            rows[i, 1 + j, coords[i, j]] += 1e-3
            rows[i, 5 + j, coords[i, j]] -= 1e-3
    x = from_tanh_space(to_tanh_space(x0).flatten(1).unsqueeze(1) + rows)
    with torch.no_grad():
        f = torch.clamp(-margins(model(x.reshape(27, *SHAPE)), y.repeat_interleave(9), None), min=0).reshape(3, 9)
    sq = ((x - x0.flatten(1).unsqueeze(1)) ** 2).sum(dim=2)
    assert torch.allclose(loss, sq + c.reshape(-1, 1) * f, rtol=1e-12, atol=1e-12)
    assert torch.allclose(dist, sq.sqrt(), rtol=1e-9)


def test_attack_space_rules() -> None:
    assert initial_side((1, 28, 28), None) is None  # MNIST and CIFAR-10 are never upsampled
    assert initial_side((3, 32, 32), None) is None
    assert initial_side((3, 64, 64), None) == 32 and initial_side((3, 299, 299), None) == 32
    space = AttackSpace((3, 64, 64), 32)
    assert space.reduced and space.shape == (3, 32, 32) and space.size == 3 * 32 * 32
    m = torch.randn(2, space.size, dtype=F64)
    assert space.to_image(m).shape == (2, 3, 64, 64)
    constant = torch.full((1, space.size), 0.25, dtype=F64)
    assert torch.allclose(space.to_image(constant), torch.full((1, 3, 64, 64), 0.25, dtype=F64))
    bigger = space.grown(64)
    assert not bigger.reduced and bigger.shape == (3, 64, 64)
    assert torch.allclose(space.carry(constant, bigger), torch.full((1, bigger.size), 0.25, dtype=F64))
    with pytest.raises(ConfigError):
        AttackSpace((1, 8, 8), 9)
    with pytest.raises(ConfigError):
        initial_side((64,), 8)


def test_importance_probabilities_follow_the_largest_change_per_region() -> None:
    space = AttackSpace((1, 16, 16))
    m = torch.zeros(1, 1, 16, 16, dtype=F64)
    m[0, 0, 0, 0] = -2.0  # region (0, 0): max |m| = 2
    m[0, 0, 15, 15] = 1.0  # region (7, 7): max |m| = 1
    p = importance_probabilities(m.reshape(1, -1), space, regions=8).reshape(16, 16)
    assert torch.allclose(p.sum(), torch.tensor(1.0, dtype=F64))
    block = p[:2, :2]
    assert torch.allclose(block, block[0, 0].expand(2, 2))  # spread over its 2x2 region
    assert torch.allclose(p[:2, :2].sum() / p[14:, 14:].sum(), torch.tensor(2.0, dtype=F64), rtol=1e-4)
    assert (p[4:12, 4:12] > 0).all() and p[4, 4] < 1e-5 * p[0, 0]  # drawable, but barely
    uniform = importance_probabilities(torch.zeros(1, 256, dtype=F64), space)
    assert torch.allclose(uniform, torch.full_like(uniform, 1 / 256))
    g = torch.Generator().manual_seed(0)
    drawn = sample_coordinates(1, 256, 8, generator=g, device=torch.device("cpu"), probabilities=p.reshape(1, -1))
    assert drawn.unique().numel() == 8
    rows, cols = drawn // 16, drawn % 16
    assert (((rows < 2) & (cols < 2)) | ((rows >= 14) & (cols >= 14))).all()  # only the two regions that moved


def test_hierarchical_attack_grows_the_space_and_succeeds() -> None:
    shape = (1, 16, 16)
    model = linear_model(shape=shape)
    x = images(4, shape=shape)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    attack = build_attack("zoo-adam", attack_size=4, hierarchy=(10, 20), iterations=40, binary_steps=2,
                          coordinates=16, importance="after-resize", abort_early=False)
    result = attack(model, x, y, norm="l2")
    assert result.success.all()
    assert result.info["attack_sides"] == [[4, 8, 16], [4, 8, 16]]


def test_constant_search_follows_the_reference_rules() -> None:
    search = ConstantSearch(3, 0.01, steps=4)
    images_ = torch.arange(3)
    search.update(images_, torch.tensor([True, False, False]))
    assert torch.allclose(search.const, torch.tensor([0.005, 0.1, 0.1], dtype=F64))  # halve / x10
    search.update(images_, torch.tensor([False, True, False]))
    # image 0: failure after a success -> midway between 0.005 and 0.01; image 1: success -> midway between
    # its last failure (0.01) and 0.1; image 2: a second failure -> x10 again
    assert torch.allclose(search.const, torch.tensor([0.0075, 0.055, 1.0], dtype=F64))
    assert torch.allclose(search.upper[:2], torch.tensor([0.01, 0.1], dtype=F64)) and search.upper[2] == 1e10
    repeat = ConstantSearch(1, 1.0, steps=10)
    repeat.update(torch.arange(1), torch.tensor([True]))
    assert float(repeat.for_step(9)[0]) == 1.0 and float(repeat.for_step(3)[0]) == 0.5


def test_early_abort_stops_stalled_images_only_at_checks() -> None:
    abort = EarlyAbort(2, 5)
    idx = torch.arange(2)
    assert not abort.stalled(0, idx, torch.tensor([10.0, 10.0])).any()
    assert not abort.stalled(3, idx, torch.tensor([20.0, 20.0])).any()  # not a check iteration
    stop = abort.stalled(5, idx, torch.tensor([9.0, 9.9995]))
    assert stop.tolist() == [False, True]


def test_newton_and_adam_solvers_both_reach_the_closed_form() -> None:
    """On a two-class linear model both ZOO solvers come close to the minimal L2 perturbation (Newton, with
    exact second derivatives of a quadratic-plus-linear objective, within 5%; Adam at this short
    schedule: within 10%), and never below it."""
    from attack_models import minimal_distance

    model = linear_model(classes=2, shape=SHAPE)
    x = images(3, shape=SHAPE)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    best = minimal_distance(model, x, y, dual=2)
    for name, within in (("zoo-newton", 1.05), ("zoo-adam", 1.1)):
        result = build_attack(name, iterations=100, binary_steps=5, coordinates=16, abort_early=False)(
            model, x, y, norm="l2")
        assert result.success.all()
        ratio = result.l2 / best
        assert (ratio >= 1 - 1e-9).all() and (ratio <= within).all(), (name, ratio)
