"""The ``"explain"`` trial kind: one explanation method on one victim at one query budget, scored.

A trial loads a victim (:mod:`gradfree.victims`: a classifier trained once per seed and cached, on pixels in
``[0, 1]``), takes its first ``images`` correctly classified test images, explains their predicted classes
with one method (a registered explainer, or captum's KernelShap / Lime for the side-by-side) at ``queries``
queries per image, with black pixels (0) as the baseline, and scores the maps
(:mod:`gradfree.explain.metrics`). Its row holds:

* ``final``: ``test_deletion_auc`` (the headline, lower is better), ``test_insertion_auc`` (insertion from a
  blurred image, RISE's protocol), ``test_faithfulness`` and ``test_queries`` (queries spent per image) — means
  over the images;
* the summary: ``wall_time`` (the explanation of the whole batch; metrics not included),
  ``seconds_per_image``, ``images``, ``queries``, ``insertion_from_black`` (insertion starting from the
  baseline), ``victim_accuracy``, and when measured the randomisation check (``sanity``: per number of top
  layers re-drawn, the mean Spearman correlation of the signed maps, of their magnitudes, and of both over
  the input's support, on the first ``sanity_images`` images), the cosine similarity to white-box SmoothGrad
  with ``reference_samples`` samples on the first ``reference_images`` images (``cosine_to_smoothgrad``), the
  median completeness gap (integrated gradients) and the share of pertinent positives found (contrastive);
* ``history``: the mean deletion and insertion curves (probability of the class against the fraction of
  pixels removed or inserted);
* artifacts: ``maps.pt`` (the first ``pictures`` images, their maps and classes: plain tensors) and
  ``grid.png`` (those images and maps), which the report's heat-map grids are drawn from.

The kind takes no ``--budget`` or ``--time``: a suite's budgets are the query budgets of its trials.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gradfree.errors import ConfigError
from gradfree.experiments.kinds import TRIAL_KINDS, TrialKind, TrialOutcome

HEADLINE = {"name": "deletion_auc", "higher_is_better": False, "label": "deletion AUC", "percent": False}


@dataclass
class ExplainSpec:
    """One explanation trial (see the module docstring).

    Attributes:
        victim: a registered victim (``gradfree.victims.VICTIMS``). victim_seed: the seed it was trained with.
        method: a registered explainer, or ``captum-kernel-shap`` / ``captum-lime``.
        queries: the query budget per image. images: the test images explained.
        options: the method's options. access: ``"logits"`` or ``"probabilities"``.
        seed: the method's random draws.
        sanity_images: images of the randomisation check (0: not run); sanity_layers: the top layers re-drawn,
            one cascade step each.
        reference_samples: white-box SmoothGrad samples of the convergence check (0: not run), on the first
            reference_images images.
        pictures: images whose maps are kept for the report's grids.
        device: ``cpu``, ``cuda`` or ``auto``.
    """

    kind: ClassVar[str] = "explain"
    victim: str = "mnist-lenet"
    method: str = "zo-smoothgrad"
    queries: int = 1000
    images: int = 100
    options: dict[str, Any] = field(default_factory=dict)
    access: str = "logits"
    seed: int = 0
    victim_seed: int = 0
    sanity_images: int = 0
    sanity_layers: tuple[int, ...] = (1, 2)
    reference_samples: int = 0
    reference_images: int = 10
    pictures: int = 6
    device: str = "cpu"


def explain_batch(spec: ExplainSpec, model: nn.Module, x: Tensor, *, target: Tensor | None = None
                  ) -> tuple[Tensor, Tensor, Tensor, float, dict[str, Tensor]]:
    """``(maps, targets, queries, seconds, extras)`` of the spec's method on ``x``."""
    from gradfree.explain import EXPLAINERS
    from gradfree.explain.peers import PEER_METHODS, captum_explain

    if spec.method in PEER_METHODS:
        if target is not None:
            with torch.no_grad():
                if not torch.equal(model(x).argmax(dim=1), target.to(x.device)):
                    raise ConfigError("captum's methods here explain the predicted class only")
        maps, targets, seconds = captum_explain(spec.method, model, x, queries=spec.queries, seed=spec.seed,
                                                baseline=0.0, grouping=spec.options.get("grouping"),
                                                access=spec.access)
        return maps, targets, torch.full((x.shape[0],), spec.queries), seconds, {}
    out = EXPLAINERS.get(spec.method)(model, x, target=target, queries=spec.queries, access=spec.access,
                                      baseline=0.0, generator=torch.Generator().manual_seed(spec.seed),
                                      **spec.options)
    return out.maps, out.targets, out.queries, out.seconds, out.extras


def run_explain_trial(spec: ExplainSpec, *, run_dir: Path, resume: bool, data_dir: str | Path | None = None,
                      download: bool = True, progress: bool | None = False) -> TrialOutcome:
    """Run one explanation trial in ``run_dir`` (``resume`` is ignored: a trial reruns whole)."""
    from gradfree.explain.metrics import deletion_insertion, faithfulness_correlation, input_support, sanity_check
    from gradfree.explain.pictures import heatmap_grid
    from gradfree.run import resolve_device
    from gradfree.train.files import save_torch
    from gradfree.train.provenance import provenance
    from gradfree.victims import first_correct, load_victim

    del resume, progress
    if spec.images < 1 or spec.queries < 1:
        raise ConfigError("an explain trial needs images >= 1 and queries >= 1")
    device = resolve_device(spec.device)
    victim = load_victim(spec.victim, seed=spec.victim_seed, data_dir=data_dir, download=download,
                         device=str(device))
    batch = first_correct(victim, spec.images)
    x = batch.x.to(device)
    model = victim.model
    maps, targets, queries, seconds, extras = explain_batch(spec, model, x)
    t = targets.to(device)
    curves = deletion_insertion(model, x, maps, targets=t, baseline=0.0)
    from_black = deletion_insertion(model, x, maps, targets=t, baseline=0.0, insert_from="baseline")
    faith = faithfulness_correlation(model, x, maps, targets=t, baseline=0.0)
    n = x.shape[0]
    final = {"test_deletion_auc": float(curves.deletion.mean()), "test_insertion_auc": float(curves.insertion.mean()),
             "test_faithfulness": _nanmean(faith), "test_queries": float(queries.double().mean())}
    summary: dict[str, Any] = {"wall_time": seconds, "seconds_per_image": seconds / n, "images": n,
                               "queries": spec.queries, "insertion_from_black": float(from_black.insertion.mean()),
                               "victim_accuracy": victim.test_accuracy,
                               "deletion_per_image": [round(float(v), 6) for v in curves.deletion]}
    if "completeness_gap" in extras:
        summary["completeness_gap_median"] = float(extras["completeness_gap"].median())
    if "found" in extras:
        summary["found"] = float(extras["found"].double().mean())
    if spec.sanity_images:
        k = min(spec.sanity_images, n)
        result = sanity_check(lambda m: _as_explanation(spec, m, x[:k], t[:k]), model,
                              layers=tuple(spec.sanity_layers), seed=spec.seed,
                              support=input_support(x[:k], 0.0))
        summary["sanity"] = {str(layers): {name: _nanmean(values[j]) if values is not None else None
                                           for name, values in (("signed", result.signed),
                                                                ("absolute", result.absolute),
                                                                ("signed_support", result.signed_support),
                                                                ("absolute_support", result.absolute_support))}
                             for j, layers in enumerate(result.layers)}
    if spec.reference_samples:
        summary["cosine_to_smoothgrad"] = _cosine_to_smoothgrad(spec, model, x, t, maps)
    history = [{"fraction": j / (curves.deletion_curve.shape[1] - 1),
                "deletion": float(curves.deletion_curve[:, j].mean()),
                "insertion": float(curves.insertion_curve[:, j].mean())}
               for j in range(curves.deletion_curve.shape[1])]
    shown = min(spec.pictures, n)
    artifacts: dict[str, str] = {}
    if shown:
        save_torch({"images": x[:shown].cpu(), "maps": maps[:shown].detach().cpu(), "targets": t[:shown].cpu(),
                    "labels": [victim.class_names[int(c)] for c in t[:shown]], "test_index": batch.index[:shown]},
                   run_dir / "maps.pt")
        heatmap_grid(x[:shown].cpu(), {spec.method: maps[:shown].detach().cpu()}, run_dir / "grid.png",
                     captions=[victim.class_names[int(c)] for c in t[:shown]],
                     title=f"{spec.method} on {spec.victim}, {spec.queries} queries per image")
        artifacts = {"maps": "maps.pt", "grid": "grid.png"}
    return TrialOutcome(summary=summary, final=final, history=history, headline=dict(HEADLINE), artifacts=artifacts,
                        resolved={"device": str(device)}, provenance=provenance(device))


def _as_explanation(spec: ExplainSpec, model: nn.Module, x: Tensor, target: Tensor) -> Any:
    from gradfree.explain.base import Explanation

    maps, targets, queries, seconds, extras = explain_batch(spec, model, x, target=target)
    return Explanation(maps, targets, queries, spec.method, seconds, extras)


def _cosine_to_smoothgrad(spec: ExplainSpec, model: nn.Module, x: Tensor, targets: Tensor, maps: Tensor) -> float:
    """Mean cosine similarity of the maps of the first ``reference_images`` images to autograd SmoothGrad with
    ``reference_samples`` samples (the same noise and ``times_input`` as the trial's options)."""
    from gradfree.explain import EXPLAINERS
    from gradfree.explain.pictures import cosine

    k = min(spec.reference_images, x.shape[0])
    keep = {key: spec.options[key] for key in ("noise", "times_input", "support") if key in spec.options}
    reference = EXPLAINERS.get("smoothgrad")(model, x[:k], target=targets[:k], queries=spec.reference_samples + 1,
                                             access=spec.access, baseline=0.0,
                                             generator=torch.Generator().manual_seed(10_000 + spec.seed), **keep)
    return float(cosine(maps[:k], reference.maps).mean())


def _nanmean(values: Tensor) -> float:
    finite = [float(v) for v in values.reshape(-1) if torch.isfinite(v)]
    return statistics.fmean(finite) if finite else float("nan")


TRIAL_KINDS.add("explain", TrialKind(spec=ExplainSpec, run=run_explain_trial),
                summary="explain a victim's predictions with one method at one query budget; deletion / insertion "
                        "AUC, faithfulness, the randomisation check, heat maps")

from gradfree.explain import report as _report  # noqa: E402,F401  (registers the kind's report sections)
