"""The ``"attack"`` trial kind: one attack on one victim's first correctly classified test images.

A trial loads a victim (:mod:`gradfree.victims`: a classifier trained once per seed and cached, taking pixels
in ``[0, 1]``), takes its first ``images`` correctly classified test images, draws targets for a targeted
attack (uniform among the other classes, seeded; a targeted HopSkipJump starts from test images of the
target classes), runs one registered attack — or ART's ``ZooAttack`` (``method="art-zoo"``, options
``{"settings": "best" | "defaults" | {...}}``) — and measures it (:mod:`gradfree.attacks.metrics`). Its row holds:

* ``final``: ``test_success_rate`` (the headline), ``test_l2_mean``, ``test_l2_median``, ``test_linf_mean``
  (over successes), ``test_queries_mean``, ``test_queries_median`` (failures charged the full budget) and
  ``test_seconds_per_image``;
* the summary: ``wall_time`` (the whole batch), ``images``, ``budget``, ``victim_accuracy``, the success-only
  query figures, and per image ``l2_per_image`` / ``success_per_image`` / ``queries_per_image`` (so a report
  can pair ZOO with C&W image by image);
* ``history``: the success rate against the query budget (from each image's first success);
* artifacts: ``adversarial.pt`` (the first ``pictures`` images: originals, adversarial images, labels,
  targets, predictions, success, distortions; plain tensors) and ``grid.png``.

The kind takes no ``--budget`` or ``--time``: a suite's budgets are the query budgets of its trials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from gradfree.errors import ConfigError
from gradfree.experiments.kinds import TRIAL_KINDS, TrialKind, TrialOutcome

HEADLINE = {"name": "success_rate", "higher_is_better": True, "label": "success rate", "percent": True}
ART_METHOD = "art-zoo"


@dataclass
class AttackSpec:
    """One attack trial (see the module docstring).

    Attributes:
        victim: a registered victim (``gradfree.victims.VICTIMS``). victim_seed: the seed it was trained with.
        method: a registered attack (``gradfree.attacks.ATTACKS``) or ``"art-zoo"``.
        targeted: aim at a random other class per image.
        norm, eps: the distortion measure and bound (``eps`` required by eps-bounded attacks).
        queries: the query budget per image (``None``: the attack's own schedule bounds it).
        images: test images attacked. offset: where the search for correctly classified ones starts.
        options: the attack's options. access: what a query returns (``None``: the attack's default).
        seed: the attack's random draws and the targets.
        pictures: images kept for the report's grids.
        device: ``cpu``, ``cuda`` or ``auto``.
    """

    kind: ClassVar[str] = "attack"
    victim: str = "mnist-lenet"
    method: str = "square"
    targeted: bool = False
    norm: str = "linf"
    eps: float | None = 0.3
    queries: int | None = 10_000
    images: int = 100
    offset: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    access: str | None = None
    seed: int = 0
    victim_seed: int = 0
    pictures: int = 6
    device: str = "cpu"


def curve_budgets(budget: int | None, spent: int) -> list[int]:
    """Query budgets at which the success curve is sampled: log-spaced from 1 to the budget (or the most any
    image spent)."""
    from gradfree.attacks.pictures import query_grid

    return query_grid(max(budget or spent, 1), points=30)


def run_attack_trial(spec: AttackSpec, *, run_dir: Path, resume: bool, data_dir: str | Path | None = None,
                     download: bool = True, progress: bool | None = False) -> TrialOutcome:
    """Run one attack trial in ``run_dir`` (``resume`` is ignored: a trial reruns whole)."""
    from gradfree.attacks import ATTACKS, build_attack
    from gradfree.attacks.metrics import success_curve, summarize
    from gradfree.attacks.peers import ART_BEST, ART_DEFAULTS, art_zoo
    from gradfree.attacks.pictures import adversarial_grid
    from gradfree.run import resolve_device
    from gradfree.train.files import save_torch
    from gradfree.train.provenance import provenance
    from gradfree.victims import first_correct, load_victim, random_targets, target_starts

    del resume, progress
    if spec.images < 1:
        raise ConfigError("an attack trial needs images >= 1")
    device = resolve_device(spec.device)
    victim = load_victim(spec.victim, seed=spec.victim_seed, data_dir=data_dir, download=download,
                         device=str(device))
    batch = first_correct(victim, spec.images, offset=spec.offset)
    targets = random_targets(batch.y, victim.num_classes, seed=spec.seed) if spec.targeted else None
    x, y = batch.x.to(device), batch.y.to(device)
    t = None if targets is None else targets.to(device)
    if spec.method == ART_METHOD:
        chosen = spec.options.get("settings", "best")
        settings = ART_BEST if chosen == "best" else ART_DEFAULTS if chosen == "defaults" else dict(chosen)
        if spec.norm != "l2" or spec.eps is not None:
            raise ConfigError("ART's ZooAttack is a minimal-L2 attack: norm l2 and no eps")
        result = art_zoo(victim.model.cpu(), batch.x, batch.y, targets=targets, settings=settings,
                         num_classes=victim.num_classes)
        victim.model.to(device)
    else:
        cls = ATTACKS.get(spec.method)
        starts = None
        if targets is not None and cls.uses_starts:
            starts = target_starts(victim, targets, exclude=batch.index).to(device)
        result = build_attack(spec.method, **spec.options)(victim.model, x, y, targets=t, norm=spec.norm,
                                                           eps=spec.eps, budget=spec.queries, access=spec.access,
                                                           seed=spec.seed, starts=starts)
    s = summarize(result)
    final = {"test_success_rate": s.success_rate, "test_l2_mean": s.l2_mean, "test_l2_median": s.l2_median,
             "test_linf_mean": s.linf_mean, "test_queries_mean": s.queries_mean,
             "test_queries_median": s.queries_median, "test_seconds_per_image": s.time_per_image}
    summary: dict[str, Any] = {
        "wall_time": s.wall_time, "seconds_per_image": s.time_per_image, "images": s.images, "budget": s.budget,
        "access": s.access, "victim_accuracy": victim.test_accuracy, "linf_median": s.linf_median,
        "success_queries_mean": s.success_queries_mean, "success_queries_median": s.success_queries_median,
        "test_index": [int(i) for i in batch.index],
        "success_per_image": [bool(v) for v in result.success],
        "l2_per_image": [round(float(v), 6) for v in result.l2],
        "linf_per_image": [round(float(v), 6) for v in result.linf],
        "queries_per_image": [int(v) for v in result.queries],
        "info": {k: v for k, v in result.info.items() if k in ("unverified", "binary_steps_run", "library")},
    }
    budgets = curve_budgets(result.budget, int(result.queries.max()) if result.num_images else 1)
    history = [{"queries": q, "success_rate": r} for q, r in zip(budgets, success_curve(result, budgets),
                                                                  strict=True)]
    artifacts: dict[str, str] = {}
    shown = min(spec.pictures, result.num_images)
    if shown:
        save_torch({"x": result.x[:shown].cpu(), "x_adv": result.x_adv[:shown].cpu(),
                    "labels": result.labels[:shown].cpu(),
                    "targets": None if result.targets is None else result.targets[:shown].cpu(),
                    "predicted": result.predicted[:shown].cpu(), "success": result.success[:shown].cpu(),
                    "l2": result.l2[:shown].cpu(), "linf": result.linf[:shown].cpu(),
                    "class_names": list(victim.class_names)}, run_dir / "adversarial.pt")
        adversarial_grid({spec.method: _head(result, shown)}, run_dir / "grid.png", images=shown,
                         class_names=victim.class_names,
                         title=f"{spec.method} on {spec.victim}: {spec.norm}"
                               + (f", eps {spec.eps:g}" if spec.eps else "") + (", targeted" if spec.targeted else ""))
        artifacts = {"adversarial": "adversarial.pt", "grid": "grid.png"}
    return TrialOutcome(summary=summary, final=final, history=history, headline=dict(HEADLINE),
                        artifacts=artifacts, resolved={"device": str(device)}, provenance=provenance(device))


def _head(result: Any, n: int) -> Any:
    """The first ``n`` images of a result (for pictures)."""
    from dataclasses import replace

    def cut(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[:n].cpu()

    return replace(result, x=cut(result.x), x_adv=cut(result.x_adv), labels=cut(result.labels),
                   targets=cut(result.targets), success=cut(result.success), predicted=cut(result.predicted),
                   queries=cut(result.queries), first_success=cut(result.first_success), l2=cut(result.l2),
                   linf=cut(result.linf))


TRIAL_KINDS.add("attack", TrialKind(spec=AttackSpec, run=run_attack_trial),
                summary="attack a victim's first correctly classified test images with one method; success rate, "
                        "distortion, queries, time, success-against-queries curve, picture grid")

from gradfree.attacks import report as _report  # noqa: E402,F401  (registers the kind's report sections)
