"""The suites ``explain-mnist`` and ``explain-cifar10``: every explanation method at equal query budgets.

Each suite explains a victim's first correctly classified test images (:mod:`gradfree.victims`, trained once
per seed and cached) with every registered method — the zeroth-order ones, the black-box baselines, the
white-box references — and captum's KernelShap and Lime beside ours, at each query budget, over seeds (the
method's randomness; deterministic methods run once). ``explain-mnist`` adds the non-differentiable victim
(``mnist-quantized``: the same LeNet behind an 8-level input quantisation, whose autograd gradient is zero).
At 1,000 queries the randomisation check runs on the first images (seed 0); a ``convergence`` group measures
ZO-SmoothGrad (orthogonal and independent directions) and white-box SmoothGrad against autograd SmoothGrad
with many samples.

Sizes (one core's seconds, measured per query on this project's 2-core machine: LeNet about 0.25 ms per
image, the half-width CIFAR CNN about 1.1 ms):

* ``quick`` — budgets 100 and 1,000 on 8 images, one seed: about 2.5 minutes (MNIST) and 6 (CIFAR-10) once
  the victims are cached;
* ``full`` — budgets 100 and 1,000 on 200 images (CIFAR-10: 100) and 10,000 on 50 (CIFAR-10: 20), 3 seeds
  (deterministic methods one): estimated at about 2 hours (MNIST) and 3 hours (CIFAR-10) of one core;
* ``gpu`` — 500 images at every budget, 3 seeds.
"""

from __future__ import annotations

from typing import Any

from gradfree.experiments.suite import SUITES, Size, Trial
from gradfree.explain.trials import ExplainSpec

DETERMINISTIC = ("fd-saliency", "occlusion", "gradient", "integrated-gradients")
METHODS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    # (label, method, options)
    ("fd-saliency", "fd-saliency", {}),
    ("fd-saliency (superpixels)", "fd-saliency", {"grouping": "slic:100", "step": 0.5}),
    ("zo-smoothgrad", "zo-smoothgrad", {}),
    ("zo-smoothgrad (present)", "zo-smoothgrad", {"support": "present"}),
    ("zo-ig", "zo-ig", {}),
    ("zo-ig (masks)", "zo-ig", {"gradient": "masks", "complete": True}),
    ("zo-ig (masks + blur)", "zo-ig", {"gradient": "masks", "complete": True, "blur": 0.25}),
    ("contrastive (pp)", "contrastive", {"mode": "pp"}),
    ("occlusion", "occlusion", {}),
    ("rise", "rise", {}),
    ("kernel-shap", "kernel-shap", {}),
    ("lime", "lime", {}),
    ("gradient", "gradient", {}),
    ("smoothgrad", "smoothgrad", {}),
    ("integrated-gradients", "integrated-gradients", {}),
)
PEERS = (("captum KernelShap", "captum-kernel-shap"), ("captum Lime", "captum-lime"))


def _plan(size: Size, *, cifar: bool) -> dict[str, Any]:
    if size == "quick":
        return {"budgets": {100: 8, 1000: 8}, "seeds": (0,), "sanity": 2, "layers": (1, 2),
                "reference": (1000, 2, (100, 1000)), "peer_images": 4, "quantized": 8}
    if size == "full":
        return {"budgets": {100: 100 if cifar else 200, 1000: 100 if cifar else 200, 10_000: 20 if cifar else 50},
                "seeds": (0, 1, 2), "sanity": 20, "layers": (1, 2, 3), "reference": (10_000, 10, (100, 1000, 10_000)),
                "peer_images": 20, "quantized": 100}
    return {"budgets": {100: 500, 1000: 500, 10_000: 500}, "seeds": (0, 1, 2), "sanity": 50, "layers": (1, 2, 3),
            "reference": (20_000, 20, (100, 1000, 10_000)), "peer_images": 100, "quantized": 500}


def _options(options: dict[str, Any], queries: int) -> dict[str, Any]:
    """A method's options at a budget: superpixel groups capped at what the budget pays for."""
    out = dict(options)
    grouping = out.get("grouping")
    if isinstance(grouping, str) and grouping.startswith("slic:") and out.get("step") is not None:
        out["grouping"] = f"slic:{min(int(grouping[5:]), (queries - 1) // 2)}"
    return out


def explain_suite(victim: str, size: Size, *, quantized: str | None = None, cifar: bool = False) -> list[Trial]:
    """The trials of one explanation suite (see the module docstring)."""
    plan = _plan(size, cifar=cifar)
    trials: list[Trial] = []
    for queries, images in plan["budgets"].items():
        group = f"{victim}, {queries:,} queries"
        for label, method, options in METHODS:
            seeds = plan["seeds"][:1] if method in DETERMINISTIC else plan["seeds"]
            for seed in seeds:
                spec = ExplainSpec(victim=victim, method=method, queries=queries, images=images,
                                   options=_options(options, queries), seed=seed,
                                   sanity_images=plan["sanity"] if queries == 1000 and seed == 0 else 0,
                                   sanity_layers=plan["layers"])
                trials.append(Trial(label, spec, group=group))
        if queries == 1000:
            for label, method in PEERS:  # the wall-time comparison at equal samples, on fewer images
                spec = ExplainSpec(victim=victim, method=method, queries=queries, images=plan["peer_images"],
                                   seed=0)
                trials.append(Trial(label, spec, group=f"{victim}, {queries:,} queries, captum side by side"))
                ours = "kernel-shap" if method == "captum-kernel-shap" else "lime"
                trials.append(Trial(f"{ours} (ours)", ExplainSpec(victim=victim, method=ours, queries=queries,
                                                                  images=plan["peer_images"], seed=0),
                                    group=f"{victim}, {queries:,} queries, captum side by side"))
    if quantized is not None:
        group = f"{quantized} (not differentiable), 1,000 queries"
        for label, method, options in METHODS:
            spec = ExplainSpec(victim=quantized, method=method, queries=1000, images=plan["quantized"],
                               options=_options(options, 1000), seed=0)
            trials.append(Trial(label, spec, group=group))
    samples, images, budgets = plan["reference"]
    for queries in budgets:
        for label, method, options in (("zo-smoothgrad", "zo-smoothgrad", {"times_input": False}),
                                       ("zo-smoothgrad (independent directions)", "zo-smoothgrad",
                                        {"times_input": False, "orthogonal": False}),
                                       ("smoothgrad", "smoothgrad", {"times_input": False})):
            for seed in plan["seeds"]:
                spec = ExplainSpec(victim=victim, method=method, queries=queries, images=images, options=dict(options),
                                   seed=seed, reference_samples=samples, reference_images=images, pictures=0)
                trials.append(Trial(label, spec, group=f"convergence to SmoothGrad, {queries:,} queries"))
    return trials


@SUITES.register("explain-mnist", summary="explanations of the MNIST LeNet (and its non-differentiable, "
                 "quantised twin): zeroth-order methods vs occlusion, RISE, KernelSHAP, LIME, white-box "
                 "references and captum at 100 / 1,000 / 10,000 queries")
def explain_mnist(size: Size) -> list[Trial]:
    """Explanations of ``mnist-lenet`` and ``mnist-quantized``."""
    return explain_suite("mnist-lenet", size, quantized="mnist-quantized")


@SUITES.register("explain-cifar10", summary="explanations of the CIFAR-10 CNN: zeroth-order methods vs occlusion, "
                 "RISE, KernelSHAP, LIME, white-box references and captum at 100 / 1,000 / 10,000 queries")
def explain_cifar10(size: Size) -> list[Trial]:
    """Explanations of ``cifar10-cnn``."""
    return explain_suite("cifar10-cnn", size, cifar=True)
