"""The metrics on hand-made cases: deletion and insertion curves recomputed by hand, faithfulness exactly 1
for exact attributions of a linear score, Spearman against scipy, and the randomisation check telling a
model-dependent explanation from one that ignores the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradfree.errors import ConfigError
from gradfree.explain import EXPLAINERS, Explanation
from gradfree.explain.blur import gaussian_blur
from gradfree.explain.metrics import (
    _auc,
    deletion_insertion,
    faithfulness_correlation,
    importance_order,
    input_support,
    parameterised_layers,
    randomize_top_layers,
    sanity_check,
    spearman,
)
from gradfree.models.init import reset_parameters


class LinearScore(nn.Module):
    """Two classes with logits ``(w . x, 0)``: class 0's probability is ``sigmoid(w . x)``."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.reshape(-1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.reshape(x.shape[0], -1) @ self.w
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def _linear_case() -> tuple[LinearScore, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, 4, 4, generator=g)
    x = torch.rand(2, 1, 4, 4, generator=g)
    x[:, :, 0, :] = 0  # some pixels already at the baseline
    return LinearScore(w), x


def test_deletion_and_insertion_curves_equal_a_hand_computation() -> None:
    model, x = _linear_case()
    maps = model.w.detach().reshape(1, 1, 4, 4) * x  # exact attributions of the logit
    targets = torch.zeros(2, dtype=torch.int64)
    curves = deletion_insertion(model, x, maps, targets=targets, baseline=0.0, steps=4, insert_from="baseline")
    w = model.w.detach()
    for i in range(2):
        order = importance_order(maps)[i]
        flat = x[i].reshape(-1)
        expected_del, expected_ins = [], []
        for k in (0, 4, 8, 12, 16):
            removed = torch.zeros(16, dtype=torch.bool)
            removed[order[:k]] = True
            expected_del.append(torch.sigmoid(torch.where(removed, 0.0, flat) @ w))
            expected_ins.append(torch.sigmoid(torch.where(removed, flat, 0.0) @ w))
        assert torch.allclose(curves.deletion_curve[i], torch.stack(expected_del), atol=1e-6)
        assert torch.allclose(curves.insertion_curve[i], torch.stack(expected_ins), atol=1e-6)
    assert torch.allclose(curves.deletion, _auc(curves.deletion_curve))
    assert torch.allclose(_auc(torch.tensor([[1.0, 0.5, 0.0]])), torch.tensor([0.5]))


def test_a_good_map_deletes_better_than_its_reverse_and_a_random_one() -> None:
    model, x = _linear_case()
    maps = model.w.detach().reshape(1, 1, 4, 4) * x
    targets = torch.zeros(2, dtype=torch.int64)
    good = deletion_insertion(model, x, maps, targets=targets)
    bad = deletion_insertion(model, x, -maps, targets=targets)
    noise = deletion_insertion(model, x, torch.randn(x.shape, generator=torch.Generator().manual_seed(1)),
                               targets=targets)
    assert (good.deletion < noise.deletion).all() and (noise.deletion < bad.deletion).all()
    assert (good.insertion > bad.insertion).all()


def test_ties_are_broken_at_random_and_insertion_starts_from_a_blur() -> None:
    order = importance_order(torch.zeros(2, 1, 5, 5), seed=0)
    assert sorted(order[0].tolist()) == list(range(25)) and order[0].tolist() != list(range(25))
    assert not torch.equal(order[0], order[1])
    flat = torch.full((1, 2, 9, 9), 0.7)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)  # a blur keeps a constant image
    spot = torch.zeros(1, 1, 9, 9)
    spot[0, 0, 4, 4] = 1
    blurred = gaussian_blur(spot, 1.0)
    assert abs(float(blurred.sum()) - 1) < 1e-5 and float(blurred.max()) < 0.2
    with pytest.raises(ConfigError, match="match"):
        deletion_insertion(nn.Identity(), torch.zeros(1, 1, 2, 2), torch.zeros(1, 4), targets=torch.zeros(1).long())


def test_faithfulness_is_one_for_exact_attributions_of_a_linear_score() -> None:
    model, x = _linear_case()
    exact = model.w.detach().reshape(1, 1, 4, 4) * (x - 0.2)
    targets = torch.zeros(2, dtype=torch.int64)
    assert torch.allclose(faithfulness_correlation(model, x, exact, targets=targets, baseline=0.2, runs=30,
                                                   fraction=0.25), torch.ones(2, dtype=torch.float64), atol=1e-6)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    assert (faithfulness_correlation(model, x, noise, targets=targets, baseline=0.2, runs=30,
                                     fraction=0.25).abs() < 0.6).all()


def test_spearman_matches_scipy_with_ties_and_masks() -> None:
    from scipy.stats import spearmanr

    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 4, (3, 30), generator=g).double()  # many ties
    b = a + torch.randint(0, 3, (3, 30), generator=g).double()
    ours = spearman(a, b)
    for i in range(3):
        assert abs(float(ours[i]) - spearmanr(a[i].numpy(), b[i].numpy()).statistic) < 1e-9
    mask = torch.arange(30).expand(3, -1) < 20
    masked = spearman(a, b, mask)
    assert abs(float(masked[0]) - spearmanr(a[0, :20].numpy(), b[0, :20].numpy()).statistic) < 1e-9


def test_randomising_the_top_layers_redraws_only_them_and_leaves_the_model() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    before = [p.detach().clone() for p in model.parameters()]
    other = randomize_top_layers(model, 2, generator=torch.Generator().manual_seed(0))
    layers = parameterised_layers(other)
    assert torch.equal(layers[0].weight, model[0].weight)
    assert not torch.equal(layers[1].weight, model[3].weight) and not torch.equal(layers[2].weight, model[5].weight)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    with pytest.raises(ConfigError, match="3 layers"):
        randomize_top_layers(model, 4, generator=torch.Generator())


def _trained_quadrant_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small CNN trained (plain gradient descent with momentum, a second) to tell which quadrant of an 8x8
    image is bright."""
    g = torch.Generator().manual_seed(0)
    n = 256
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.3 * torch.rand(n, 1, 8, 8, generator=g)
    for i, q in enumerate(y.tolist()):
        r, c = divmod(q, 2)
        x[i, 0, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 0.7
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(256, 16), nn.Tanh(),
                          nn.Linear(16, 4))
    reset_parameters(model, generator=torch.Generator().manual_seed(1))
    velocity = [torch.zeros_like(p) for p in model.parameters()]
    for _ in range(150):  # torch.optim would import torch._dynamo, seconds of this test's time
        grads = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), list(model.parameters()))
        with torch.no_grad():
            for p, v, g in zip(model.parameters(), velocity, grads, strict=True):
                v.mul_(0.9).add_(g)
                p.sub_(0.5 * v)
    with torch.no_grad():
        assert (model(x).argmax(dim=1) == y).float().mean() > 0.95
    return model.eval(), x[:8], y[:8]


def test_the_randomisation_check_tells_a_model_dependent_map_from_one_that_ignores_the_model() -> None:
    model, x, y = _trained_quadrant_model()

    def zo_smoothgrad(m: nn.Module):
        return EXPLAINERS.get("zo-smoothgrad")(m, x, target=y, queries=301, times_input=False,
                                               generator=torch.Generator().manual_seed(0))

    def edge_detector(m: nn.Module) -> Explanation:  # an "explanation" that only looks at the input
        edges = (x - torch.roll(x, 1, dims=3)).abs() + (x - torch.roll(x, 1, dims=2)).abs()
        return Explanation(edges, y, torch.ones(8, dtype=torch.int64), "edges", 0.0)

    dependent = sanity_check(zo_smoothgrad, model, layers=(1, 2, 3), support=input_support(x))
    ignorant = sanity_check(edge_detector, model, layers=(1, 2, 3))
    assert torch.allclose(ignorant.signed, torch.ones_like(ignorant.signed))  # fails the check
    assert dependent.signed.shape == (3, 8) and dependent.signed_support is not None
    # Passes it once more than the last layer is re-drawn (re-drawing the last layer alone can flip the map's
    # sign as a whole: |rho| stays large, which the check counts as a failure).
    assert (dependent.signed[1:].mean(dim=1).abs() < 0.3).all()
