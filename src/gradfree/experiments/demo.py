"""``gradfree demo``: backprop Adam against ZO-Adam and ZO-SGD on the embedded digits set.

Every method gets the same evaluation budget (forward passes over a batch of 128 rows) and the same seeds.
The demo runs its trials through the benchmark runner (one row per trial in ``results.jsonl``) and draws its
report with the benchmark's report code: a results table (median [min, max] over seeds), loss curves against
evaluations and against wall time, accuracy curves and final-loss bars, in ``report.md`` and a self-contained
``report.html``. The hyper-parameters below were chosen by hand on the validation split, one setting per
method, and are printed in the report.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from gradfree.experiments.runner import RESULTS, RUNS, SUITE_FILE, run_trials
from gradfree.experiments.suite import Trial
from gradfree.reports.report import write_report
from gradfree.run import RunSpec

BUDGET = 20_000
SEEDS = 3
METHODS: dict[str, dict[str, Any]] = {
    "adam": {"lr": 3e-3},
    "zo-adam": {"lr": 1e-2, "num_directions": 20, "smoothing": 1e-3},
    "zo-sgd": {"lr": 2e-3, "momentum": 0.9, "num_directions": 20, "smoothing": 1e-3},
}


def demo_trials(*, budget: int = BUDGET, seeds: int = SEEDS) -> list[Trial]:
    """The demo's trials: every method of :data:`METHODS` for seeds ``0..seeds-1`` at ``budget``."""
    return [Trial(label=method, spec=RunSpec(task="digits", model="mlp:64-32-10", optimizer=method,
                                             options=dict(options), budget=budget, batch_size=128,
                                             eval_every=max(budget // 30, 1), seed=seed, device="cpu"))
            for method, options in METHODS.items() for seed in range(seeds)]


def run_demo(*, out_dir: str | Path = "runs/demo", budget: int | None = None, seeds: int | None = None) -> Path:
    """Run the comparison and write ``report.md``, ``report.html``, ``results.jsonl`` and the plots.

    Returns:
        the Markdown report's path.
    """
    import torch

    # A 2,410-parameter model: thread start-up costs more than it saves, and on a busy 2-core machine
    # two threads ran ten times slower than one (measured).
    torch.set_num_threads(1)
    out = Path(out_dir)
    budget = budget or BUDGET
    seeds = seeds or SEEDS
    # The demo owns these: a rerun replaces its own runs and rows instead of refusing the folder.
    if (out / RUNS).exists():
        shutil.rmtree(out / RUNS)
    for name in (RESULTS, SUITE_FILE):
        (out / name).unlink(missing_ok=True)
    started = time.perf_counter()
    run_trials(demo_trials(budget=budget, seeds=seeds), out_dir=out, suite="demo",
               log=lambda line: print(f"  {line}", flush=True))
    return _report(out, budget=budget, seeds=seeds, total_time=time.perf_counter() - started).markdown


def _report(out: Path, *, budget: int, seeds: int, total_time: float) -> Any:
    q = METHODS["zo-adam"]["num_directions"]
    intro = [
        "Task: scikit-learn digits (8x8), fixed split 1078 train / 359 val / 360 test; model MLP 64-32-10 (ReLU, "
        f"2,410 parameters); mini-batches of 128; budget {budget:,} evaluations per run, where one evaluation is "
        "one forward pass of one parameter vector over one batch (a backprop step counts one evaluation plus one "
        "backward pass). Each run ends on the weights of its best validation loss. Cells are median [min, max] "
        f"over {seeds} seed(s).",
        f"Zeroth-order methods spend {q + 1} evaluations per step (forward differences along {q} Gaussian "
        f"directions, scored as one batched call), so at an equal evaluation budget they take about {q}x fewer "
        "steps than Adam.",
    ]
    outro = [f"Total time {total_time:.0f} s (building, training and evaluating every run)."]
    return write_report(out, title="gradfree demo: backprop vs zeroth-order on digits", intro=intro, outro=outro)
