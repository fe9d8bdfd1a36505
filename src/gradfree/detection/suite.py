"""The ``car-detection`` suite: backprop against the gradient-free routes on the Kaggle car set, at equal time.

Methods (hyper-parameters set by hand, one setting per method, not tuned per seed or size):

* backprop from scratch: ``sgd``, ``momentum``, ``adam``;
* (a) gradient-free from scratch, the whole network: ``zo-adam``, ``mezo``, ``sep-cma``, ``rso``;
* (b) ``hybrid``: Adam trains the detector for half the time, its head is re-initialised and ZO-Adam (20
  Gaussian directions, lr 0.01) trains it on the frozen backbone's cached features for the other half;
* (c) ``finetune-f1``: sep-CMA-ES fine-tunes the head of a detector Adam trained for the full time, on
  1 - F1 at IoU 0.5 (not differentiable), for half the time more — the row says whether validation mAP rose.

Every method of (a), the backprop baselines and (b) gets the same total training wall time; (c) is a
question about a finished detector, so it gets the Adam time plus its own. ``eval_every`` comes from a rough
throughput per method (evaluations per second of one thread on this project's 2-core machine, measured
under load) so each run validates about ``validations`` times.

Sizes (time budgets summed over trials; add 20-30 s a trial for loading, validation, the final evaluation and
the pictures): "quick" — one seed, 30 s a trial, 285 s of budgets, about ten minutes; "full" — three seeds,
90 s a trial, 2,565 s of budgets, about an hour on 2 cores; "gpu" — three seeds, the issue's target budgets
(12 minutes for backprop, an hour for each full-network gradient-free method, 15 minutes in all for the
hybrid): 55,620 s of budgets, about 15 hours whatever the device, since budgets are wall time
(``--seeds 1`` runs a third of it).

The lead registers it by adding ``"gradfree.detection.suite"`` to ``SUITE_MODULES`` and
``"gradfree.detection.trials"`` / ``"gradfree.detection.report"`` to ``KIND_MODULES`` / ``SECTION_MODULES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gradfree.detection.trials import DetectionTrialSpec, Route
from gradfree.experiments.suite import SUITES, Size, Trial

HAND_SET = "set by hand, one setting per method (not tuned per seed or suite)"


@dataclass(frozen=True)
class Method:
    """One method of the suite.

    Attributes:
        route: scratch, hybrid or finetune.
        optimizer, options: its optimizer (of the head, for hybrid and finetune).
        evals_per_s: rough evaluations per second (one thread), to space the validations.
        batch_size: images (or feature maps) per evaluation.
        objective: the finetune route's objective.
    """

    route: Route
    optimizer: str
    options: dict[str, Any]
    evals_per_s: float
    batch_size: int | None = 16
    objective: str = "loss"


METHODS: dict[str, Method] = {
    "sgd": Method("scratch", "sgd", {"lr": 0.02}, 3.0),
    "momentum": Method("scratch", "momentum", {"lr": 0.01}, 3.0),
    "adam": Method("scratch", "adam", {"lr": 2e-3}, 3.0),
    "zo-adam": Method("scratch", "zo-adam", {"lr": 1e-3, "num_directions": 8, "smoothing": 1e-3}, 10.0),
    "mezo": Method("scratch", "mezo", {"lr": 3e-5, "smoothing": 1e-3}, 10.0),
    "sep-cma": Method("scratch", "sep-cma", {"popsize": 16, "sigma": 0.01}, 10.0),
    "rso": Method("scratch", "rso", {"rounds": 1, "weights_per_step": 64}, 10.0),
    "hybrid": Method("hybrid", "zo-adam", {"lr": 0.01}, 150.0, batch_size=32),
    "finetune-f1": Method("finetune", "sep-cma", {"sigma": 0.01}, 20.0, batch_size=64, objective="f1"),
}


@dataclass(frozen=True)
class Scale:
    """One size: seeds, the scratch routes' time, and validations per run."""

    seeds: tuple[int, ...]
    seconds: float
    zeroth_order_seconds: float
    validations: int = 6


SCALES: dict[Size, Scale] = {
    "quick": Scale(seeds=(0,), seconds=30.0, zeroth_order_seconds=30.0, validations=4),
    "full": Scale(seeds=(0, 1, 2), seconds=90.0, zeroth_order_seconds=90.0),
    "gpu": Scale(seeds=(0, 1, 2), seconds=720.0, zeroth_order_seconds=3600.0, validations=12),
}

GRADIENT = frozenset({"sgd", "momentum", "adam"})


def _trial(label: str, method: Method, scale: Scale, seed: int) -> Trial:
    if method.route == "scratch":
        seconds = scale.seconds if method.optimizer in GRADIENT else scale.zeroth_order_seconds
        start = None
    elif method.route == "hybrid":
        total = 900.0 if scale.seconds >= 720 else scale.seconds  # the 15 minutes at the gpu size
        start, seconds = total / 2, total / 2
    else:
        start, seconds = scale.seconds, scale.seconds / 2
    eval_every = max(1, round(seconds * method.evals_per_s / scale.validations))
    start_eval_every = max(1, round((start or 0) * METHODS["adam"].evals_per_s / scale.validations))
    spec = DetectionTrialSpec(route=method.route, optimizer=method.optimizer, options=dict(method.options),
                              time_limit=seconds, batch_size=method.batch_size, eval_every=eval_every,
                              augment="standard" if method.route == "scratch" else None,
                              objective=method.objective,  # type: ignore[arg-type]
                              start_time=start, start_eval_every=start_eval_every, seed=seed)
    notes = {"budget": ("equal training wall time per trial, start detector included (validation not counted)"
                        if method.route != "finetune" else
                        "fine-tuning: the Adam start's time plus half of it again"),
             "hyper-parameters": HAND_SET, "augmentation": "standard (flip, zoom, shift, jitter) for the scratch "
             "routes; none on cached features"}
    return Trial(label=label, spec=spec, notes=notes)


@SUITES.register("car-detection", summary="YOLO-style car detector: sgd/momentum/adam vs zo-adam, mezo, sep-cma, "
                                          "rso, a hybrid and gradient-free F1 fine-tuning, at equal time")
def car_detection(size: Size) -> list[Trial]:
    """The trials of the car-detection comparison at ``size`` (see the module docstring)."""
    scale = SCALES[size]
    return [_trial(label, method, scale, seed) for label, method in METHODS.items() for seed in scale.seeds]
