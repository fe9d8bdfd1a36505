"""Contrastive explanations on a linear classifier where pertinent negatives and positives can be checked:
the PN changes the class by adding to absent features only, the PP keeps the class with part of the input."""

from __future__ import annotations

import torch
from torch import nn

from gradfree.explain import EXPLAINERS


def _linear_classifier() -> nn.Module:
    """Three classes over 16 features: class k is carried by features 4k..4k+3 (the last four are noise)."""
    model = nn.Linear(16, 3)
    with torch.no_grad():
        model.weight.zero_()
        for k in range(3):
            model.weight[k, 4 * k:4 * k + 4] = 2.0
        model.bias.zero_()
    return nn.Sequential(nn.Flatten(), model).eval()


def _inputs() -> torch.Tensor:
    x = torch.zeros(2, 1, 4, 4)
    x[0, 0, 0, :] = 0.8  # class 0's features present
    x[0, 0, 1, 0] = 0.2  # a little of class 1
    x[1, 0, 1, :] = 0.7  # class 1
    x[1, 0, 3, :] = 0.5  # noise features
    return x


def test_a_pertinent_negative_adds_only_absent_features_and_changes_the_class() -> None:
    model, x = _linear_classifier(), _inputs()
    out = EXPLAINERS.get("contrastive")(model, x, queries=3000, mode="pn", baseline=0.0, bounds=(0.0, 1.0),
                                        generator=torch.Generator().manual_seed(0))
    assert out.extras["found"].all()
    pn = out.extras["pertinent"]
    with torch.no_grad():
        assert (model(pn).argmax(dim=1) != out.targets).all()
        assert torch.equal(model(pn).argmax(dim=1), out.extras["pertinent_class"])
    assert (pn >= x - 1e-6).all() and (pn <= 1 + 1e-6).all()  # only added, within the bounds
    assert torch.allclose(out.maps, pn - x, atol=1e-6)
    # The additions go to another class's features, not to the noise features of input 0.
    added = (pn - x).reshape(2, 16)
    assert float(added[0, 4:12].sum()) > 5 * float(added[0, 12:].sum())


def test_a_pertinent_positive_keeps_part_of_the_input_and_the_class() -> None:
    model, x = _linear_classifier(), _inputs()
    out = EXPLAINERS.get("contrastive")(model, x, queries=3000, mode="pp", baseline=0.0, bounds=(0.0, 1.0),
                                        kappa=0.5, generator=torch.Generator().manual_seed(0))
    assert out.extras["found"].all()
    pp = out.extras["pertinent"]
    with torch.no_grad():
        logits = model(pp)
    top2 = logits.topk(2, dim=1).values
    assert (logits.argmax(dim=1) == out.targets).all() and (top2[:, 0] - top2[:, 1] >= 0.5 - 1e-5).all()
    assert (pp >= -1e-6).all() and (pp <= x + 1e-6).all()  # a part of each feature, no more
    # Sparse and on the class's own features: input 1 keeps (some of) class 1's row, none of the noise.
    kept = pp.reshape(2, 16)
    assert float(kept[1, 4:8].sum()) > 0 and float(kept[1, 12:].sum()) < 0.1 * float(kept[1, 4:8].sum())
    assert float(kept[1].sum()) < float(x[1].sum())
