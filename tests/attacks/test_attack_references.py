"""Attacks against answers known in closed form: a linear classifier's minimal L2 and L-inf perturbations.

For a two-class linear model the smallest perturbation that flips the label is ``|z_y - z_j| / ||w_y - w_j||``
in the dual norm (2 for L2, 1 for L-inf), reached along ``-(w_y - w_j)`` (L2) or ``-eps sign(w_y - w_j)``
(L-inf). Images stay in ``[0.3, 0.7]``, far from the box, so the box never binds.
"""

from __future__ import annotations

import pytest
import torch
from attack_models import images, linear_model, minimal_distance

from gradfree.attacks import ATTACKS, build_attack

SHAPE = (1, 4, 4)


@pytest.fixture(scope="module")
def binary():
    model = linear_model(classes=2, shape=SHAPE, seed=2)
    x = images(6, shape=SHAPE, seed=3)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    return model, x, y


def test_cw_l2_finds_the_minimal_l2_perturbation(binary) -> None:
    model, x, y = binary
    best = minimal_distance(model, x, y, dual=2)
    result = build_attack("cw-l2", iterations=150, binary_steps=6, abort_early=False)(model, x, y, norm="l2")
    assert result.success.all()
    ratio = result.l2 / best
    assert (ratio >= 1 - 1e-9).all() and (ratio <= 1.03).all(), ratio


def test_cw_l2_multiclass_untargeted(binary) -> None:
    """Five classes: the nearest boundary is the smallest of the pairwise closed forms."""
    model = linear_model(classes=5, shape=SHAPE, seed=5)
    x = images(4, shape=SHAPE, seed=6)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    best = minimal_distance(model, x, y, dual=2)
    result = build_attack("cw-l2", iterations=150, binary_steps=6, abort_early=False)(model, x, y, norm="l2")
    ratio = result.l2 / best
    assert result.success.all() and (ratio >= 1 - 1e-9).all() and (ratio <= 1.06).all(), ratio


def test_hopskipjump_approaches_the_minimal_l2_perturbation(binary) -> None:
    model, x, y = binary
    best = minimal_distance(model, x, y, dual=2)
    result = build_attack("hopskipjump", iterations=15)(model, x, y, norm="l2")
    ratio = result.l2 / best
    assert result.success.all() and (ratio >= 1 - 1e-6).all() and (ratio <= 1.1).all(), ratio


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_succeeds_just_above_the_minimal_perturbation(binary, norm: str) -> None:
    model, x, y = binary
    best = minimal_distance(model, x, y, dual=1 if norm == "linf" else 2)
    for i in range(x.shape[0]):  # one eps per image
        result = build_attack("pgd", steps=50, loss="margin")(model, x[i:i + 1], y[i:i + 1], norm=norm,
                                                               eps=float(best[i]) * 1.02)
        assert result.success.all(), i


@pytest.mark.parametrize("name", [n for n in ATTACKS.names() if ATTACKS.get(n).bounded])
def test_no_attack_succeeds_below_the_minimal_perturbation(binary, name: str) -> None:
    """Below the closed-form bound no success exists: every eps-bounded attack must report none."""
    model, x, y = binary
    cls = ATTACKS.get(name)
    for norm in cls.norms:
        best = minimal_distance(model, x, y, dual=1 if norm == "linf" else 2)
        for i in range(2):
            result = build_attack(name)(model, x[i:i + 1], y[i:i + 1], norm=norm, eps=float(best[i]) * 0.98,
                                        budget=100)
            assert not result.success.any(), (name, norm, i)
            assert int(result.queries[0]) <= 100
