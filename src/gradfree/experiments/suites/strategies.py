"""Population strategies on digits beside ZO-Adam and Adam, at an equal evaluation budget (issue 4).

Every method trains the same MLP 64-32-10 (2,410 parameters) on the embedded 8x8 digits with mini-batches of
128 rows and the same number of evaluations (one forward pass of one parameter vector over one batch): a
strategy spends ``popsize`` evaluations per generation, ZO-Adam ``num_directions + 1`` per step, Adam one
(plus a backward pass, recorded separately). Each run ends on its best-validation weights.

Hyper-parameters: one setting per method, the best of a small grid (popsize x sigma, and the step size where
the method has one) by validation loss on seed 0 at 20,000 evaluations; the same settings at every size.
nevergrad's ``NGOpt`` is told the suite's budget (it picks its algorithm from it; at this dimension it picks
differential evolution at every budget and population tried, 5,000 to 1,000,000 and 10 to 100). Its wall
time is nevergrad's per-candidate Python work (DE's coordinate-wise crossover), not the forward passes:
120-250 evaluations/s against 3,000-12,000 for the other strategies (measured on 2 shared CPU cores), so it
takes most of the suite's time. Measured totals there: quick (10,000 evaluations) 6 minutes with
``--seeds 3`` (its own one seed's trials trained for 103 s in all); full (50,000 evaluations, 3 seeds) 16 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gradfree.experiments.suite import SUITES, Size, Trial
from gradfree.run import RunSpec

MODEL = "mlp:64-32-10"

METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "open-es": ("open-es", {"popsize": 50, "sigma": 0.02, "lr": 0.01}),
    "snes": ("snes", {"popsize": 50, "sigma": 0.03}),
    "pgpe": ("pgpe", {"popsize": 50, "sigma": 0.03, "lr": 0.03}),
    "sep-cma": ("sep-cma", {"popsize": 50, "sigma": 0.03}),
    "ga": ("ga", {"popsize": 10, "sigma": 0.005}),
    "cem": ("cem", {"popsize": 50, "sigma": 0.05, "elite_frac": 0.2, "sigma_min": 0.02}),
    "nevergrad-ngopt": ("nevergrad", {"method": "NGOpt", "popsize": 20, "sigma": 0.05}),
    "pycma": ("pycma", {"popsize": 100, "sigma": 0.2}),
    "zo-adam": ("zo-adam", {"lr": 1e-2, "num_directions": 20, "smoothing": 1e-3}),
    "adam": ("adam", {"lr": 3e-3}),
}
"""Display label -> (registered optimizer, options). ZO-Adam and Adam use the digits demo's settings."""


@dataclass(frozen=True)
class Scale:
    """One size of the suite: evaluations per run, seeds, validations per run, device."""

    budget: int
    seeds: tuple[int, ...]
    validations: int = 20
    device: str = "cpu"


SCALES: dict[Size, Scale] = {
    "quick": Scale(budget=10_000, seeds=(0,)),
    "full": Scale(budget=50_000, seeds=(0, 1, 2)),
    "gpu": Scale(budget=200_000, seeds=(0, 1, 2, 3, 4), device="auto"),
}


@SUITES.register("strategies-digits", summary="six population strategies + nevergrad NGOpt + pycma vs ZO-Adam and "
                                              "Adam on digits, equal evaluations")
def strategies_digits(size: Size) -> list[Trial]:
    """OpenAI-ES, SNES, PGPE, sep-CMA-ES, GA, CEM, nevergrad's NGOpt and pycma against ZO-Adam and Adam."""
    scale = SCALES[size]
    notes = {"budget": f"equal evaluations: {scale.budget:,} per run (one evaluation = one forward pass of one "
                       "parameter vector over a batch of 128)",
             "hyper-parameters": "best of a small grid by validation loss, seed 0, 20,000 evaluations; "
                                 "one setting per method at every size"}
    trials = []
    for label, (optimizer, options) in METHODS.items():
        opts = dict(options)
        if optimizer == "nevergrad":
            opts["budget"] = scale.budget  # NGOpt chooses its algorithm from the budget
        for seed in scale.seeds:
            spec = RunSpec(task="digits", model=MODEL, optimizer=optimizer, options=opts, budget=scale.budget,
                           batch_size=128, eval_every=max(1, scale.budget // scale.validations), seed=seed,
                           device=scale.device)
            trials.append(Trial(label=label, spec=spec, notes=dict(notes)))
    return trials
