"""Every registered explanation method: shapes, targets, exact query counts within the budget, determinism,
the model left as it was, and clear errors (one contract test over the whole registry)."""

from __future__ import annotations

import pytest
import torch
from explain_models import Counting, images, smooth_cnn

from gradfree.errors import ConfigError
from gradfree.explain import EXPLAINERS

NAMES = EXPLAINERS.names()
BLACK_BOX = [n for n in NAMES if EXPLAINERS.entry(n).tags["kind"] != "white-box"]
RANDOM = ["zo-smoothgrad", "zo-ig", "contrastive", "rise", "kernel-shap", "lime", "smoothgrad"]
Q = 120


def _run(name: str, model: torch.nn.Module, x: torch.Tensor, seed: int = 0, **kw: object):
    return EXPLAINERS.get(name)(model, x, queries=Q, generator=torch.Generator().manual_seed(seed), **kw)


def test_the_registry_holds_every_method_of_the_issue() -> None:
    assert set(NAMES) == {"fd-saliency", "zo-smoothgrad", "zo-ig", "contrastive", "occlusion", "rise",
                          "kernel-shap", "lime", "gradient", "smoothgrad", "integrated-gradients"}
    kinds = {n: EXPLAINERS.entry(n).tags["kind"] for n in NAMES}
    assert {n for n, k in kinds.items() if k == "zeroth-order"} == {"fd-saliency", "zo-smoothgrad", "zo-ig",
                                                                     "contrastive"}
    assert {n for n, k in kinds.items() if k == "white-box"} == {"gradient", "smoothgrad", "integrated-gradients"}


@pytest.mark.parametrize("name", NAMES)
def test_maps_have_the_input_shape_and_explain_the_predicted_class(name: str) -> None:
    model, x = smooth_cnn(), images()
    out = _run(name, model, x)
    assert out.maps.shape == x.shape and out.maps.dtype == x.dtype and torch.isfinite(out.maps).all()
    with torch.no_grad():
        assert torch.equal(out.targets, model(x).argmax(dim=1))
    assert out.method == name and out.seconds > 0
    assert out.maps.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_a_given_target_is_explained(name: str) -> None:
    model, x = smooth_cnn(), images()
    target = torch.tensor([2, 0, 1])  # the model predicts [0, 2, 2] and the zero image is of class 1
    assert torch.equal(_run(name, model, x, target=target).targets, target)
    assert torch.equal(_run(name, model, x, target=1).targets, torch.ones(3, dtype=torch.int64))


EXPECTED_QUERIES = {
    # name: queries per input at Q = 120 on 8x8 inputs (every pixel differs from the baseline 0)
    "zo-smoothgrad": 1 + 2 * ((Q - 1) // 2),
    "zo-ig": Q,  # 1 + f(b) + 59 pairs over 8 steps
    "rise": Q,
    "kernel-shap": Q,
    "lime": Q,
    "fd-saliency": 1 + 2 * 56,  # the finest grid with at most 59 moving cells is 7 x 8
    "occlusion": 1 + 36,  # 3x3 windows at stride 1 on 8x8
    "contrastive": 1 + ((Q - 1) // 21) * 21,  # iterations of 10 pairs and a check
}


@pytest.mark.parametrize("name", BLACK_BOX)
def test_every_query_is_counted_exactly_and_within_the_budget(name: str) -> None:
    counting, x = Counting(smooth_cnn()), images()
    out = _run(name, counting, x)
    # The box's counter equals the rows the model scored, less the one-row probe the box runs once to size
    # its forwards (a memory measurement, not a query).
    assert int(out.queries.sum()) == counting.rows - 1
    assert (out.queries <= Q).all()
    assert out.queries.tolist() == [EXPECTED_QUERIES[name]] * 3


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_maps_and_the_model_is_left_as_it_was(name: str) -> None:
    model, x = smooth_cnn(), images()
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    first, second = _run(name, model, x, seed=3), _run(name, model, x, seed=3)
    assert torch.equal(first.maps, second.maps)
    assert model.training and all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(p.grad is None for p in model.parameters())
    if name in RANDOM:
        assert not torch.equal(first.maps, _run(name, model, x, seed=4).maps)


@pytest.mark.parametrize("name", NAMES)
def test_bad_arguments_are_clear_errors(name: str) -> None:
    model, x = smooth_cnn(), images()
    method = EXPLAINERS.get(name)
    with pytest.raises(ConfigError, match="access"):
        method(model, x, queries=Q, access="label")
    with pytest.raises(ConfigError, match="queries"):
        method(model, x, queries=1)
    with pytest.raises(ConfigError):
        method(model, x[0], queries=Q)  # not a batch
    with pytest.raises(ConfigError, match="target"):
        method(model, x, queries=Q, target=torch.tensor([0, 1]))


def test_zo_igs_blurred_start_refuses_what_it_cannot_do() -> None:
    model, x = smooth_cnn(), images()
    zo_ig = EXPLAINERS.get("zo-ig")
    with pytest.raises(ConfigError, match=r"in \[0, 1\)"):
        zo_ig(model, x, queries=Q, blur=1.0)
    with pytest.raises(ConfigError, match="leaves a path 1 of the 100"):
        zo_ig(model, x, queries=100, blur=0.01)
    with pytest.raises(ConfigError, match="needs images"):
        zo_ig(torch.nn.Linear(12, 3), torch.randn(2, 12), queries=Q, blur=0.25)
    with pytest.raises(ConfigError, match="fraction of the image side"):
        zo_ig(model, x, queries=Q, blur=0.25, blur_sigma=0.0)


@pytest.mark.parametrize("name", ["fd-saliency", "occlusion", "gradient", "integrated-gradients"])
def test_deterministic_methods_explain_each_input_as_if_alone(name: str) -> None:
    model, x = smooth_cnn(), images()
    batch = _run(name, model, x)
    for i in range(3):
        alone = _run(name, model, x[i:i + 1])
        assert torch.allclose(alone.maps[0], batch.maps[i], atol=1e-5)
