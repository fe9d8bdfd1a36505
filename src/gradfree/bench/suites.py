"""Benchmark suites: registered generators of trials (task, method + options, budget, seed).

A suite is a function ``suite(size) -> list[Trial]`` registered in :data:`SUITES`; ``size`` is "quick"
(a few minutes on 2 CPU cores, used by the smoke tests), "full" (about an hour on 2 CPU cores) or "gpu"
(larger, for a CUDA machine). Suites only describe trials; the runner executes them and appends one row
per trial, and reports are drawn from those rows.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from gradfree.registry import Registry
from gradfree.run import RunSpec

Size = Literal["quick", "full", "gpu"]
SIZES: tuple[Size, ...] = ("quick", "full", "gpu")


@dataclass(frozen=True)
class Trial:
    """One run of a suite.

    Attributes:
        label: the method's display name in tables and plots (e.g. "rso", "adam lr=1e-3").
        spec: the run (task, model, optimizer, options, budget, seed ...).
        group: an optional extra grouping key for reports (e.g. "batch=64" in a batch-size sweep).
        notes: free-form facts for the report (regularisation used, stopping rule ...).
    """

    label: str
    spec: RunSpec
    group: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique within a suite: identifies the trial's row when a run resumes."""
        group = f"{self.group}/" if self.group else ""
        return f"{group}{self.label}/seed{self.spec.seed}"


SuiteFn = Callable[[Size], list[Trial]]

SUITES: Registry[SuiteFn] = Registry("suite")

# Modules that register suites; imported on first lookup.
SUITE_MODULES: tuple[str, ...] = ("gradfree.bench.suites_vision", "gradfree.bench.suites_strategies",
                                  "gradfree.bench.suites_search")


def load_suites() -> Registry[SuiteFn]:
    """Import every module that registers suites and return the registry."""
    for module in SUITE_MODULES:
        importlib.import_module(module)
    return SUITES
