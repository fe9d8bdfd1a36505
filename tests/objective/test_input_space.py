"""The black-box query interface: access levels, exact per-input counts, budgets, chunking, no side effects."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradfree.errors import ConfigError
from gradfree.estimators import ESTIMATORS
from gradfree.objective import BlackBox, InputObjective, QueryBudgetExceeded


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))


def test_access_levels_return_logits_probabilities_or_labels() -> None:
    model = _model().eval()
    x = torch.randn(5, 3, 2, 2)
    with torch.no_grad():
        logits = model(x)
    boxes = {a: BlackBox(model, input_shape=(3, 2, 2), access=a) for a in ("logits", "probabilities", "label")}
    assert torch.equal(boxes["logits"].query(x), logits)
    assert torch.allclose(boxes["probabilities"].query(x), logits.softmax(1))
    labels = boxes["label"].query(x)
    assert labels.dtype == torch.int64 and torch.equal(labels, logits.argmax(1))
    with pytest.raises(ConfigError, match="access level"):
        BlackBox(model, input_shape=(3, 2, 2), access="gradients")


def test_queries_are_counted_per_owner_and_the_budget_is_never_passed() -> None:
    box = BlackBox(_model(), input_shape=(3, 2, 2), num_inputs=3, budget=10)
    box.query(torch.randn(4, 3, 2, 2), owners=torch.tensor([0, 0, 2, 1]))
    box.query(torch.randn(7, 3, 2, 2), owners=0)
    assert box.queries.tolist() == [9, 1, 1] and box.total_queries == 11
    assert box.remaining().tolist() == [1, 9, 9]
    with pytest.raises(QueryBudgetExceeded, match="input 0 has 9 of its 10"):
        box.query(torch.randn(2, 3, 2, 2), owners=0)
    assert box.queries.tolist() == [9, 1, 1]  # a refused query is not charged
    with pytest.raises(ConfigError, match="owners must lie"):
        box.query(torch.randn(1, 3, 2, 2), owners=3)
    with pytest.raises(ConfigError, match="shape"):
        box.query(torch.randn(2, 12), owners=0)


def test_chunked_forwards_give_the_same_scores_and_leave_the_model_as_it_was() -> None:
    model = _model().train()
    stats = model[2].running_mean.clone()
    x = torch.randn(50, 3, 2, 2)
    whole = BlackBox(model, input_shape=(3, 2, 2)).query(x)
    box = BlackBox(model, input_shape=(3, 2, 2), max_batch=7)
    chunked = box.query(x)
    assert box.forwards == 8 and torch.allclose(whole, chunked, atol=1e-6)
    assert model.training and torch.equal(model[2].running_mean, stats) and not whole.requires_grad
    assert BlackBox(model, input_shape=(3, 2, 2)).query(x[:0]).shape == (0, 3)


def test_an_input_objective_is_a_vector_objective_for_every_estimator() -> None:
    """A coordinate estimate over the flattened input equals the finite differences of the class score."""
    model = _model().eval()
    x0 = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    model = model.double()
    box = BlackBox(model, input_shape=(3, 2, 2), access="logits")
    objective = InputObjective(box, lambda logits: logits[:, 1], owner=0)
    est = ESTIMATORS.get("coordinate")(objective, x0.reshape(-1), generator=torch.Generator(), smoothing=1e-6,
                                       difference="central")
    x = x0.clone().requires_grad_(True)
    model(x)[0, 1].backward()
    assert torch.allclose(est.grad, x.grad.reshape(-1), atol=1e-6)
    assert objective.queries == 24 == est.evaluations and torch.equal(est.coordinates, torch.arange(12))
