"""The ``"train"`` trial kind: one training run (:class:`~gradfree.run.RunSpec`) per trial.

Each trial trains in its run folder with :func:`gradfree.run.train_run`, checkpointing there, so a killed
trial continues from its checkpoint (same result as an uninterrupted run). Its row holds the run summary
(``evaluations``, ``backward``, ``steps``, ``wall_time``, ``stopped``, the monitored metric), the final
metrics, the validation history and the task's headline metric; the spec's resolved model and device and
the run's provenance come from its ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from gradfree.experiments.kinds import TRIAL_KINDS, TrialKind, TrialOutcome
from gradfree.run import RunSpec


def run_training_trial(spec: RunSpec, *, run_dir: Path, resume: bool, data_dir: str | Path | None = None,
                       download: bool = True, progress: bool | None = False) -> TrialOutcome:
    """Train ``spec`` in ``run_dir`` (continuing its checkpoint when ``resume``)."""
    from gradfree.run import train_run

    result = train_run(spec, out_dir=run_dir, resume=resume, data_dir=data_dir, download=download,
                       progress=progress)
    summary = result.summary()
    final = summary.pop("final")
    headline = summary.pop("headline")
    recorded: dict[str, Any] = {}
    config_file = run_dir / "config.json"
    if config_file.exists():
        try:
            recorded = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError):
            recorded = {}
    return TrialOutcome(summary=summary, final=final, headline=headline,
                        history=[h for h in result.history if h.get("kind") == "val"],
                        resolved=dict(recorded.get("config") or {}), provenance=recorded.get("provenance"))


def rebudget(spec: RunSpec, budget: int | None, time_limit: float | None) -> RunSpec:
    """The run with exactly this evaluation budget and/or time limit; ``eval_every`` scaled by the same ratio,
    so the run keeps about as many validations."""
    ratio = None
    if budget is not None and spec.budget:
        ratio = budget / spec.budget
    elif time_limit is not None and spec.time_limit and budget is None:
        ratio = time_limit / spec.time_limit
    eval_every = max(1, round(spec.eval_every * ratio)) if ratio is not None else spec.eval_every
    return replace(spec, budget=budget, time_limit=time_limit, eval_every=eval_every)


TRIAL_KINDS.add("train", TrialKind(spec=RunSpec, run=run_training_trial, resumable=True, rebudget=rebudget),
                summary="train a model (gradfree.run.RunSpec) and record its final metrics and validation history")
