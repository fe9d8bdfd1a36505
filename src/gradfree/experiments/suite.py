"""Benchmark suites: registered generators of trials.

A suite is a function ``suite(size) -> list[Trial]`` registered in :data:`SUITES`; ``size`` is "quick"
(a few minutes on 2 CPU cores, used by the smoke tests), "full" (about an hour on 2 CPU cores), "gpu"
(larger, for a CUDA machine), or "long" for the suites that declare it (hours of runs on one core each, e.g.
CIFAR-10's 10- and 60-minute curves). A suite lists its sizes in its registration's ``sizes`` tag. Suites
only describe trials; the runner executes them and appends one row
per trial, and reports are drawn from those rows.

A trial's ``spec`` is a dataclass of a registered trial kind (:mod:`gradfree.experiments.kinds`): a
:class:`~gradfree.run.RunSpec` for a training run (kind ``"train"``), or an application's own spec (an attack
on a trained victim, an explanation...). Every spec has a ``seed``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from gradfree.experiments.kinds import TrialSpec, kind_of
from gradfree.registry import Registry

Size = Literal["quick", "full", "gpu", "long"]
SIZES: tuple[Size, ...] = ("quick", "full", "gpu", "long")
STANDARD_SIZES: tuple[Size, ...] = ("quick", "full", "gpu")
"""The sizes every suite has; others (``long``) only where a suite's ``sizes`` tag names them."""


def suite_sizes(name: str) -> tuple[Size, ...]:
    """The sizes the registered suite ``name`` declares (the standard three by default)."""
    return tuple(load_suites().entry(name).tags.get("sizes", STANDARD_SIZES))


@dataclass(frozen=True)
class Trial:
    """One run of a suite.

    Attributes:
        label: the method's display name in tables and plots (e.g. "rso", "adam lr=1e-3").
        spec: what to run: a spec dataclass of a registered trial kind (a :class:`~gradfree.run.RunSpec`
            trains a model).
        group: an optional extra grouping key for reports (e.g. "batch=64" in a batch-size sweep).
        notes: free-form facts for the report (regularisation used, stopping rule ...).
    """

    label: str
    spec: TrialSpec
    group: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique within a suite: identifies the trial's row when a run resumes."""
        group = f"{self.group}/" if self.group else ""
        return f"{group}{self.label}/seed{self.spec.seed}"

    @property
    def kind(self) -> str:
        """The registered trial kind of the spec (``"train"`` for a :class:`~gradfree.run.RunSpec`)."""
        return kind_of(self.spec)


SuiteFn = Callable[[Size], list[Trial]]

SUITES: Registry[SuiteFn] = Registry("suite")

# Modules that register suites; imported on first lookup.
SUITE_MODULES: list[str] = ["gradfree.experiments.suites.vision", "gradfree.experiments.suites.strategies",
                            "gradfree.experiments.suites.search", "gradfree.detection.suite", "gradfree.attacks.suites",
                            "gradfree.explain.suites"]


def load_suites() -> Registry[SuiteFn]:
    """Import every module that registers suites and return the registry."""
    for module in SUITE_MODULES:
        importlib.import_module(module)
    return SUITES
