"""Bit-identical behaviour across refactors: final numbers of short digits runs, pinned as measured at 8cadd22.

A change that alters any of these numbers changes what a seed computes: that is a change of behaviour, not a
refactor, and must say so (and update the pins) in its own commit.

The last bits depend on the machine: torch and its BLAS pick their kernels by the CPU's vector width and sum
in another order with AVX-512 than with AVX2. So each run has one pin per kind of machine the project has run
on, and must give one of them: the first as measured at 8cadd22 (AVX2 machines), the second on an AVX-512
machine (measured at 815a42f and again at 1e071a5, the same numbers).
"""

from __future__ import annotations

import pytest
import torch

from gradfree.run import RunSpec, train_run

# optimizer -> (options, budget, pins: (evaluations, train loss, val loss, test accuracy, best val loss) on AVX2,
# then on AVX-512)
PINNED = {
    "zo-adam": ({"lr": 1e-2, "num_directions": 8}, 3000,
                ((3006, 0.3107349629304847, 0.40525715862476064, 0.9222222222222223, 0.40525715862476064),
                 (3006, 0.3103936359922165, 0.40366964951199075, 0.9222222222222223, 0.40366964951199075))),
    "rso": ({"weights_per_step": 256}, 6000,
            ((6369, 0.9623502543773191, 0.9989216839038562, 0.8111111111111111, 0.9989216839038562),
             (6369, 0.9623502543773191, 0.9989217689110376, 0.8111111111111111, 0.9989217689110376))),
    # sep-cma: since two-point step-size adaptation became the default from D = 300 (as in pycma); with
    # step_size="csa" it still gives 8cadd22's (3200, 0.4093190265719214, 0.6149040795966443, 0.84166..., 0.66850...).
    "sep-cma": ({"popsize": 16, "sigma": 0.05}, 3200,
                ((3200, 0.4716284191011277, 0.5921197747785732, 0.8138888888888889, 0.6111609158741731),
                 (3200, 0.4716284191011277, 0.5921198597857547, 0.8138888888888889, 0.6111609583777637))),
    "adam": ({"lr": 1e-2}, 1500,
            ((1500, 0.0006150972091200622, 0.1039440611942897, 0.9805555555555555, 0.1039440611942897),
             (1500, 0.0006150972091200622, 0.10394409307198273, 0.9805555555555555, 0.10394409307198273))),
}


@pytest.mark.parametrize("optimizer", sorted(PINNED))
def test_digits_run_gives_the_pinned_numbers(optimizer: str) -> None:
    options, budget, pins = PINNED[optimizer]
    torch.set_num_threads(1)
    spec = RunSpec(task="digits", optimizer=optimizer, options=options, budget=budget, batch_size=64,
                   eval_every=750, seed=3)
    result = train_run(spec, progress=False)
    got = (result.evaluations, result.final["train_loss"], result.final["val_loss"],
           result.final["test_accuracy"], result.best_val)
    assert got in pins, f"{got} is none of the pins {pins}"
