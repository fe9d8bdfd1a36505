"""Vision suites: gradient-free methods against backprop baselines on digits, MNIST, Fashion-MNIST and CIFAR-10.

Each suite is ``suite(size) -> list[Trial]``; sizes are "quick" (a few minutes on 2 CPU cores: a small
training subset, small budgets, one seed), "full" (about an hour on 2 CPU cores, three seeds) and "gpu"
(the whole training split, larger budgets, more seeds; ``device="auto"`` picks CUDA). Hyper-parameters were
set by hand, one setting per method, not tuned per suite or seed: the suites compare methods as a user would
first run them. Every trial's notes say what is held equal.

Budgets: ``mnist-cnn``, ``fashion-mnist`` and ``digits`` give every method the same number of evaluations
(one forward pass of one parameter vector over one batch); ``cifar10`` and ``rso-batch-size`` give every
method the same training wall time (validation and checkpoints are not charged: the trainer's rule), and pick
``eval_every`` per method from a throughput estimate so that each run validates a similar number of times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gradfree.experiments.suite import SUITES, Size, Trial
from gradfree.run import RunSpec

Methods = dict[str, tuple[str, dict[str, Any]]]
"""Display label -> (registered optimizer name, options)."""

GRADIENT = frozenset({"sgd", "momentum", "adam", "adamw", "rmsprop"})
"""Backprop baselines: a step costs one evaluation plus a backward pass."""

HAND_SET = "set by hand, one setting per method (not tuned per seed or suite)"


@dataclass(frozen=True)
class Scale:
    """How big one size of a suite is."""

    model: str
    seeds: tuple[int, ...]
    train_subset: int | None
    batch_size: int = 64
    budget: int | None = None
    time_limit: float | None = None
    validations: int = 8
    rows_per_s: float = 2e4
    """Rows per second a gradient-free method evaluates with ``model`` (time budgets: picks ``eval_every``)."""
    gradient_rows_per_s: float = 5e3
    """Rows per second a backprop method trains on with ``model`` (forward and backward)."""
    method_rows_per_s: dict[str, float] = field(default_factory=dict)
    """Per optimizer, rows per second where it differs much from ``rows_per_s`` (RSO's single-weight
    evaluations go through the incremental engine, many times faster than a forward pass)."""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-label option overrides at this size (e.g. RSO's weights per step for a small budget)."""


def _eval_every(scale: Scale, optimizer: str, batch_size: int) -> int:
    if scale.budget is not None:
        return max(1, scale.budget // scale.validations)
    # Throughputs were measured on a 2-core machine (one torch thread, another job on the second core): a
    # busier or slower machine validates less often than ``validations``, a faster one more often.
    assert scale.time_limit is not None
    rate = scale.gradient_rows_per_s if optimizer in GRADIENT else scale.rows_per_s
    per_eval = batch_size / scale.method_rows_per_s.get(optimizer, rate)
    return max(1, round(scale.time_limit / per_eval / scale.validations))


def _trials(methods: Methods, scale: Scale, *, task: str, group: str = "", batch_size: int | None = None,
            notes: dict[str, Any]) -> list[Trial]:
    batch = batch_size or scale.batch_size
    out = []
    for label, (optimizer, options) in methods.items():
        opts = {**options, **scale.options.get(label, {})}
        for seed in scale.seeds:
            spec = RunSpec(task=task, model=scale.model, optimizer=optimizer, options=opts, budget=scale.budget,
                           time_limit=scale.time_limit, batch_size=batch,
                           eval_every=_eval_every(scale, optimizer, batch), seed=seed,
                           train_subset=scale.train_subset)
            out.append(Trial(label=label, spec=spec, group=group, notes=dict(notes)))
    return out


def _equal_evaluations(scale: Scale) -> dict[str, Any]:
    return {"budget": f"equal evaluations: {scale.budget:,} per run (one evaluation = one forward pass of one "
                      "parameter vector over one batch)", "hyper-parameters": HAND_SET}


def _equal_time(scale: Scale) -> dict[str, Any]:
    return {"budget": f"equal training wall time: {scale.time_limit:g} s per run (validation not counted)",
            "hyper-parameters": HAND_SET}


# ------------------------------------------------------------------------------------------- MNIST family
MNIST_METHODS: Methods = {
    "sgd": ("sgd", {"lr": 0.1}),
    "adam": ("adam", {"lr": 1e-3}),
    "zo-adam": ("zo-adam", {"lr": 1e-3, "num_directions": 8, "smoothing": 1e-3}),
    "mezo": ("mezo", {"lr": 1e-4, "smoothing": 1e-3}),
    "sep-cma": ("sep-cma", {"popsize": 32, "sigma": 0.01}),
    "rso": ("rso", {"rounds": 4, "weights_per_step": 256}),
}
"""Two backprop baselines against a zeroth-order estimator (ZO-Adam), MeZO's SPSA, a population strategy
(sep-CMA-ES) and RSO's one-weight-at-a-time search."""

MNIST_SCALES: dict[Size, Scale] = {
    "quick": Scale(model="lenet:small", seeds=(0,), train_subset=1000, budget=1200, validations=4,
                   options={"rso": {"rounds": 1, "weights_per_step": 64}}),
    "full": Scale(model="lenet", seeds=(0, 1, 2), train_subset=None, budget=15000, validations=10,
                  options={"rso": {"rounds": 1, "weights_per_step": 128}}),
    "gpu": Scale(model="lenet", seeds=(0, 1, 2, 3, 4), train_subset=None, batch_size=128, budget=200_000,
                 validations=20, options={"rso": {"rounds": 2, "weights_per_step": 512}}),
}


def _mnist_like(task: str, size: Size) -> list[Trial]:
    scale = MNIST_SCALES[size]
    return _trials(MNIST_METHODS, scale, task=task, notes=_equal_evaluations(scale))


@SUITES.register("mnist-cnn", summary="LeNet-style CNN on MNIST: zo-adam, mezo, sep-cma, rso vs sgd/adam at equal "
                                      "evaluations")
def mnist_cnn(size: Size) -> list[Trial]:
    """Gradient-free methods against SGD and Adam on MNIST with the LeNet-5 style CNN, at equal evaluations."""
    return _mnist_like("mnist", size)


@SUITES.register("fashion-mnist", summary="the mnist-cnn methods and budgets on Fashion-MNIST")
def fashion_mnist(size: Size) -> list[Trial]:
    """The ``mnist-cnn`` suite's methods, model and budgets on Fashion-MNIST."""
    return _mnist_like("fashion-mnist", size)


# ---------------------------------------------------------------------------------------- RSO batch size
RSO_WEIGHTS_PER_STEP = 4
"""Weights RSO tries per update (each on the update's batch, 2 evaluations per weight, plus 1 for the batch's
loss). The same at every batch size, so an update is the same unit across the sweep; small, because the time
limit is checked between updates and an update at batch 5000 already costs 9 forward passes of 5000 rows."""

RSO_METHODS: Methods = {
    "rso": ("rso", {"rounds": None, "weights_per_step": RSO_WEIGHTS_PER_STEP}),
    "sgd": ("sgd", {"lr": 0.1}),
}
"""RSO without annealing (a time budget gives no known number of rounds) against plain SGD."""

RSO_BATCHES: dict[Size, tuple[int, ...]] = {"quick": (64, 256, 1024, 5000), "full": (64, 256, 1024, 5000),
                                            "gpu": (64, 256, 1024, 5000, 16384)}

RSO_SCALES: dict[Size, Scale] = {
    "quick": Scale(model="conv1:8", seeds=(0,), train_subset=5000, time_limit=12.0, validations=3,
                   rows_per_s=3e4, gradient_rows_per_s=3e3),
    "full": Scale(model="conv1:16", seeds=(0, 1, 2), train_subset=20000, time_limit=60.0, validations=8,
                  rows_per_s=1.5e4, gradient_rows_per_s=1.5e3),
    "gpu": Scale(model="conv1:16", seeds=(0, 1, 2, 3, 4), train_subset=None, time_limit=180.0, validations=12,
                 rows_per_s=2e5, gradient_rows_per_s=2e5),
}


@SUITES.register("rso-batch-size", summary="RSO vs SGD with the one-conv CNN on MNIST across batch sizes "
                                           "(equal wall time)")
def rso_batch_size(size: Size) -> list[Trial]:
    """RSO against SGD on MNIST with the one-convolution CNN, for batch sizes 64 to 5000 (group ``batch=N``).

    The question of the RSO study (Tripathi & Singh 2020, "RSO: A Gradient Free Sampling Based Approach For
    Training Deep Neural Networks"): how the batch size changes what each method reaches per update and per
    second. Every run gets the same wall time; the report plots accuracy against updates and against seconds
    for each batch size. An RSO update tries :data:`RSO_WEIGHTS_PER_STEP` weights on one batch; an SGD update
    is one gradient step.
    """
    scale = RSO_SCALES[size]
    notes = {**_equal_time(scale), "update": f"an RSO update tries {RSO_WEIGHTS_PER_STEP} weights on one batch "
                                             "(2 evaluations per weight, 1 for the batch's loss); an SGD update is "
                                             "one gradient step"}
    trials: list[Trial] = []
    for batch in RSO_BATCHES[size]:
        trials += _trials(RSO_METHODS, scale, task="mnist", group=f"batch={batch}", batch_size=batch, notes=notes)
    return trials


# ---------------------------------------------------------------------------------------------- CIFAR-10
CIFAR_METHODS: Methods = {
    "sgd": ("sgd", {"lr": 0.05}),
    "momentum": ("momentum", {"lr": 0.01, "momentum": 0.9}),
    "adam": ("adam", {"lr": 1e-3}),
    "adamw": ("adamw", {"lr": 1e-3, "weight_decay": 1e-2}),
    "rmsprop": ("rmsprop", {"lr": 3e-4}),
    "zo-adam": ("zo-adam", {"lr": 1e-3, "num_directions": 8, "smoothing": 1e-3}),
    "mezo": ("mezo", {"lr": 1e-4, "smoothing": 1e-3}),
    "sep-cma": ("sep-cma", {"popsize": 32, "sigma": 0.01}),
    "rso": ("rso", {"rounds": None, "weights_per_step": 16}),
}
"""torch.optim's common optimizers (backprop) against the gradient-free methods."""

CIFAR_SCALES: dict[Size, Scale] = {
    "quick": Scale(model="cifar:0.25", seeds=(0,), train_subset=2000, time_limit=15.0, validations=2,
                   rows_per_s=5e3, gradient_rows_per_s=3e3, method_rows_per_s={"rso": 1e5}),
    "full": Scale(model="cifar:0.5", seeds=(0, 1, 2), train_subset=10000, time_limit=75.0, validations=6,
                  rows_per_s=2e3, gradient_rows_per_s=1.3e3, method_rows_per_s={"rso": 4.7e4}),
    "gpu": Scale(model="cifar:1", seeds=(0, 1, 2), train_subset=None, batch_size=128, time_limit=600.0,
                 validations=15, rows_per_s=2e5, gradient_rows_per_s=2e5),
}

CIFAR_LONG_METHODS: Methods = {
    "adam": ("adam", {"lr": 1e-3}),
    # RSO over hours: larger batches (on MNIST the lever: an accepted change must improve the batch it was
    # tried on, and small batches reward fitting the batch), the annealing over the rounds that fit the run
    # (CIFAR_LONG_RSO_ROUNDS).
    "rso": ("rso", {"weights_per_step": 256}),
    "zo-adam": ("zo-adam", {"lr": 1e-3, "num_directions": 8, "smoothing": 1e-3}),
}
"""Adam and the two best gradient-free methods of the full size (RSO 16.95%, ZO-Adam 16.36% at 75 s)."""

CIFAR_LONG_TIMES = (600.0, 3600.0)
"""The long size's training times: 10 and 60 minutes a run on one core."""

CIFAR_LONG_RSO_ROUNDS = {600.0: 1, 3600.0: 4}
"""RSO's annealing rounds at each time, about as many as fit, so that the step size decays over the run as in
the paper instead of stopping part way. A round tries all 37,146 weights twice (74,292 evaluations). With
batches of 256 the torch engine's rate depends on the layer (a first-layer weight recomputes the whole network):
before ``gradfree.allocator`` kept freed memory, an hour's run made 110,348 evaluations in its first 1,974 s
(56 a second, a third of its time in page faults); with freed memory kept the hour's run made 220,696
(2.97 rounds) and the 10 minutes' 66,177 (0.89), so the annealing ends at 0.33 and 0.20 of the step size."""


def _cifar_long() -> list[Trial]:
    trials: list[Trial] = []
    for seconds in CIFAR_LONG_TIMES:
        scale = Scale(model="cifar:0.5", seeds=(0,), train_subset=None, batch_size=256, time_limit=seconds,
                      validations=12, rows_per_s=2e3, gradient_rows_per_s=1.3e3, method_rows_per_s={"rso": 4.7e4},
                      options={"rso": {"rounds": CIFAR_LONG_RSO_ROUNDS[seconds]}})
        trials += _trials(CIFAR_LONG_METHODS, scale, task="cifar10", group=f"minutes={seconds / 60:g}",
                          notes={**_equal_time(scale), "long": "one seed: an hour a run on one core"})
    return trials


@SUITES.register("cifar10", summary="CIFAR-10 CNN: sgd, momentum, adam, adamw, rmsprop vs zo-adam, mezo, sep-cma, "
                                    "rso at equal wall time; long: 10- and 60-minute curves",
                 sizes=("quick", "full", "gpu", "long"))
def cifar10(size: Size) -> list[Trial]:
    """The common gradient optimizers against the gradient-free ones on the CIFAR-10 CNN at equal wall time.

    Equal time rather than equal evaluations: a backprop step costs about three forward passes, and a
    population or multi-direction step evaluates many parameter vectors at once (batched), so the
    practitioner's question "what do I get in T seconds" is answered directly. The ``long`` size runs Adam and
    the two best gradient-free methods of the full size for 10 and for 60 minutes on the whole training split
    (batches of 256, one seed), where the gradient-free curves are still rising.
    """
    if size == "long":
        return _cifar_long()
    scale = CIFAR_SCALES[size]
    return _trials(CIFAR_METHODS, scale, task="cifar10", notes=_equal_time(scale))


# ------------------------------------------------------------------------------------------ digits (offline)
DIGITS_METHODS: Methods = {
    "adam": ("adam", {"lr": 3e-3}),
    "sgd": ("sgd", {"lr": 0.1}),
    "zo-adam": ("zo-adam", {"lr": 1e-2, "num_directions": 20, "smoothing": 1e-3}),
    "zo-sgd": ("zo-sgd", {"lr": 2e-3, "momentum": 0.9, "num_directions": 20, "smoothing": 1e-3}),
    "mezo": ("mezo", {"lr": 1e-3, "smoothing": 1e-3}),
    "sep-cma": ("sep-cma", {"popsize": 24, "sigma": 0.05}),
    "rso": ("rso", {"rounds": 4, "weights_per_step": 128}),
}

DIGITS_SCALES: dict[Size, Scale] = {
    "quick": Scale(model="mlp:64-32-10", seeds=(0,), train_subset=None, batch_size=128, budget=4000,
                   validations=10, options={"rso": {"rounds": 1}}),
    "full": Scale(model="mlp:64-32-10", seeds=(0, 1, 2), train_subset=None, batch_size=128, budget=40_000,
                  validations=20, options={"rso": {"rounds": 3}}),
    "gpu": Scale(model="mlp:64-32-10", seeds=(0, 1, 2, 3, 4), train_subset=None, batch_size=128,
                 budget=200_000, validations=40, options={"rso": {"rounds": 15}}),
}


@SUITES.register("digits", summary="MLP on the embedded 8x8 digits (offline): every method family at equal "
                                   "evaluations")
def digits(size: Size) -> list[Trial]:
    """Backprop, zeroth-order estimators, MeZO, sep-CMA-ES and RSO on the embedded digits set (no download)."""
    scale = DIGITS_SCALES[size]
    return _trials(DIGITS_METHODS, scale, task="digits", notes=_equal_evaluations(scale))
