"""Zeroth-order explanations against autograd on small smooth models: FD saliency with every coordinate is
the gradient, ZO-SmoothGrad converges to SmoothGrad, ZO integrated gradients to integrated gradients."""

from __future__ import annotations

import functools

import torch
from explain_models import cosine, images, smooth_cnn

from gradfree.explain import EXPLAINERS
from gradfree.explain.blur import blurred
from gradfree.explain.estimate import gaussian_directions


def test_fd_saliency_over_every_coordinate_is_autograds_gradient() -> None:
    model, x = smooth_cnn(channels=2).double(), images(channels=2).double()  # float64: rounding out of the way
    fd = EXPLAINERS.get("fd-saliency")(model, x, queries=400, grouping="coordinates", times_input=False, step=1e-3)
    wb = EXPLAINERS.get("gradient")(model, x, times_input=False)
    assert (cosine(fd.maps, wb.maps) >= 0.99).all()
    assert torch.allclose(fd.maps, wb.maps, atol=1e-6, rtol=1e-4)  # central differences: O(h^2)
    assert fd.queries.tolist() == [1 + 2 * 128] * 3


def test_fd_saliency_along_the_input_is_gradient_times_input_and_groups_add_up() -> None:
    model, x = smooth_cnn().double(), images().double()
    fd = EXPLAINERS.get("fd-saliency")(model, x, queries=200, grouping="coordinates", baseline=0.3, step=1e-3)
    wb = EXPLAINERS.get("gradient")(model, x, baseline=0.3)
    assert torch.allclose(fd.maps, wb.maps, atol=1e-6, rtol=1e-4)
    # Over 2x2 patches each group's total is the first-order effect of removing it: the sum of its
    # elements' gradient times input.
    patches = EXPLAINERS.get("fd-saliency")(model, x, queries=200, grouping="patches:2", baseline=0.3, step=1e-3)
    pooled = torch.nn.functional.avg_pool2d(wb.maps, 2) * 4
    assert torch.allclose(torch.nn.functional.avg_pool2d(patches.maps, 2) * 4, pooled, atol=1e-6, rtol=1e-4)
    assert patches.extras["groups"].tolist() == [16] * 3


@functools.cache
def _smoothgrad_reference(n: int) -> torch.Tensor:
    """Autograd SmoothGrad with many samples (its own sampling error is small) on ``images(n, scale=2)``."""
    return EXPLAINERS.get("smoothgrad")(smooth_cnn(), images(n=n, scale=2.0), queries=20001, times_input=False,
                                         generator=torch.Generator().manual_seed(9)).maps


def test_zo_smoothgrad_converges_to_autograd_smoothgrad_as_queries_grow() -> None:
    model, x = smooth_cnn(), images(scale=2.0)
    reference = _smoothgrad_reference(3)
    agreement = {}
    for q in (21, 201, 2001, 20001):
        zo = EXPLAINERS.get("zo-smoothgrad")(model, x, queries=q, times_input=False,
                                              generator=torch.Generator().manual_seed(1))
        agreement[q] = float(cosine(zo.maps, reference).mean())
    assert agreement[21] < agreement[201] < agreement[2001] < agreement[20001]
    assert agreement[20001] > 0.99 and agreement[2001] > 0.95


def test_orthogonal_directions_beat_independent_ones_at_equal_queries() -> None:
    model, x = smooth_cnn(), images(n=3, scale=2.0)
    reference = _smoothgrad_reference(3)
    # 64 coordinates and 63 pairs: one orthogonal block nearly spans the space.
    orth = [float(cosine(EXPLAINERS.get("zo-smoothgrad")(model, x, queries=127, times_input=False,
                                                         generator=torch.Generator().manual_seed(s)).maps,
                         reference).mean()) for s in range(3)]
    iid = [float(cosine(EXPLAINERS.get("zo-smoothgrad")(model, x, queries=127, times_input=False, orthogonal=False,
                                                        generator=torch.Generator().manual_seed(s)).maps,
                        reference).mean()) for s in range(3)]
    assert min(orth) > max(iid)


def test_orthogonal_directions_are_orthogonal_in_blocks_and_marginally_standard_normal() -> None:
    g = torch.Generator().manual_seed(0)
    u = gaussian_directions(10, 6, generator=g)  # blocks of 6 and 4 rows
    for block in (u[:6], u[6:]):
        gram = block @ block.T
        assert torch.allclose(gram - torch.diag(torch.diagonal(gram)), torch.zeros_like(gram), atol=1e-4)
    many = gaussian_directions(60000, 4, generator=g, dtype=torch.float64)
    assert torch.allclose(many.T @ many / many.shape[0], torch.eye(4, dtype=torch.float64), atol=0.03)
    assert abs(float(many.mean())) < 0.01


def test_zo_integrated_gradients_approach_autograds_and_report_completeness() -> None:
    model, x = smooth_cnn(), images(scale=2.0)
    wb = EXPLAINERS.get("integrated-gradients")(model, x, queries=200, steps=64)
    assert (wb.extras["completeness_gap"] < 0.01).all()
    groups = EXPLAINERS.get("zo-ig")(model, x, queries=2000, gradient="groups", steps=8, smoothing=1e-3)
    assert (cosine(groups.maps, wb.maps) > 0.99).all()
    assert (groups.extras["completeness_gap"] < 0.02).all()
    gauss = EXPLAINERS.get("zo-ig")(model, x, queries=4000, generator=torch.Generator().manual_seed(0))
    assert (cosine(gauss.maps, wb.maps) > 0.9).all()
    assert torch.allclose(gauss.extras["delta"], wb.extras["delta"], atol=1e-5)
    complete = EXPLAINERS.get("zo-ig")(model, x, queries=4000, complete=True,
                                        generator=torch.Generator().manual_seed(0))
    assert (complete.extras["completeness_gap"] < 1e-4).all()
    assert (complete.maps.reshape(3, -1).sum(dim=1) - complete.extras["delta"]).abs().max() < 1e-4


def test_zo_integrated_gradients_over_masks_integrate_each_groups_integrand() -> None:
    """With one group per coordinate the mask path is the pixel path; over 2x2 patches each patch's total is its
    pixels' integrated gradients; with ``complete`` the totals add up to f(x) - f(b)."""
    model, x = smooth_cnn(), images(scale=2.0)
    wb = EXPLAINERS.get("integrated-gradients")(model, x, queries=200, steps=64)
    pixels = EXPLAINERS.get("zo-ig")(model, x, queries=2050, gradient="masks", grouping="coordinates", steps=8,
                                      smoothing=1e-3, generator=torch.Generator().manual_seed(0))
    assert (cosine(pixels.maps, wb.maps) > 0.99).all()
    patches = EXPLAINERS.get("zo-ig")(model, x, queries=300, gradient="masks", grouping="patches:2", steps=8,
                                       smoothing=1e-3, complete=True, generator=torch.Generator().manual_seed(0))
    pooled = torch.nn.functional.avg_pool2d(wb.maps, 2) * 4
    assert (cosine(torch.nn.functional.avg_pool2d(patches.maps, 2) * 4, pooled) > 0.97).all()
    assert (patches.extras["completeness_gap"] < 1e-4).all() and patches.queries.tolist() == [299] * 3  # pairs
    # The default mask noise (0.25) estimates the gradient of a smoothed score: on this smooth model, about IG.
    noisy = EXPLAINERS.get("zo-ig")(model, x, queries=300, gradient="masks", grouping="patches:2",
                                     generator=torch.Generator().manual_seed(0))
    assert (cosine(torch.nn.functional.avg_pool2d(noisy.maps, 2) * 4, pooled) > 0.95).all()


def test_zo_integrated_gradients_with_a_blurred_start_average_two_paths() -> None:
    """``blur = w``: (1 - w) times IG from the baseline plus w times IG from the blurred input, in shares w of
    the budget, adding up to f(x) minus the starts' weighted scores."""
    model, x = smooth_cnn(), images(scale=2.0)
    start = blurred(x, 0.1)
    wb = EXPLAINERS.get("integrated-gradients")(model, x, queries=200, steps=64)
    wb_blur = EXPLAINERS.get("integrated-gradients")(model, x, queries=200, steps=64, baseline=start)
    both = EXPLAINERS.get("zo-ig")(model, x, queries=4000, gradient="masks", grouping="coordinates", steps=8,
                                    smoothing=1e-3, blur=0.25, complete=True,
                                    generator=torch.Generator().manual_seed(0))
    assert (cosine(both.maps, 0.75 * wb.maps + 0.25 * wb_blur.maps) > 0.99).all()
    assert (cosine(both.maps - 0.75 * wb.maps, wb_blur.maps) > 0.95).all()  # the blurred path's own part
    assert both.extras["steps"].tolist() == [6 + 2] * 3
    expected = 0.75 * wb.extras["delta"] + 0.25 * wb_blur.extras["delta"]
    assert torch.allclose(both.extras["delta"], expected, atol=1e-5)
    assert (both.extras["completeness_gap"] < 1e-4).all()
    assert (both.queries <= 4000).all() and (both.queries >= 3990).all()


def test_white_box_smoothgrad_is_the_mean_gradient_at_noisy_inputs() -> None:
    model, x = smooth_cnn(), images(n=1)
    sg = EXPLAINERS.get("smoothgrad")(model, x, queries=5, times_input=False, noise=0.1,
                                       generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    sigma = 0.1 * float(x.max() - x.min())
    noisy = (x + sigma * torch.randn(4, 1, 8, 8, generator=g)).requires_grad_(True)
    target = sg.targets[0]
    (grad,) = torch.autograd.grad(model(noisy)[:, target].sum(), noisy)
    assert torch.allclose(sg.maps[0], grad.mean(dim=0), atol=1e-6)
    assert sg.queries.tolist() == [5]
