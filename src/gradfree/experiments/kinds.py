"""Trial kinds: what a benchmark trial runs. Training is one kind; applications register their own.

A kind is a spec dataclass (with a ``seed``, and a class attribute ``kind`` naming the kind) and a function
that runs one spec in a folder and returns a :class:`TrialOutcome`: the row's summary, its final metrics,
its history (curves), its headline metric and the files it wrote (pictures), which the runner turns into one
row of ``results.jsonl``. Registering a kind is one call::

    TRIAL_KINDS.add("attack", TrialKind(spec=AttackSpec, run=run_attack_trial), summary="...")

in the application's own module, listed in :data:`KIND_MODULES`. A kind may also give the report extra
sections (:mod:`gradfree.reports.sections`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Protocol

from gradfree.errors import ConfigError
from gradfree.registry import Registry


class TrialSpec(Protocol):
    """What every trial spec has: a seed, and the name of its kind."""

    kind: ClassVar[str]
    seed: int


@dataclass
class TrialOutcome:
    """What a trial reached, as the runner records it.

    Attributes:
        summary: top-level row fields (e.g. ``evaluations``, ``wall_time``, ``stopped``; queries, seconds).
        final: the final metrics, ``{split}_{metric}`` or plain names.
        history: rows of curves (e.g. one per validation, or success rate per query budget).
        headline: the headline metric as a dict (:class:`~gradfree.tasks.protocol.Metric` fields).
        artifacts: files the trial wrote, by name, as paths relative to its run folder.
        resolved: spec fields resolved while running (the default model, the device), merged into the row.
        provenance: versions and machine facts, when the trial recorded its own.
    """

    summary: dict[str, Any]
    final: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    headline: dict[str, Any] | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    resolved: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] | None = None


RunTrial = Callable[..., TrialOutcome]
"""``run(spec, *, run_dir: Path, resume: bool, data_dir, download: bool, progress) -> TrialOutcome``; it may
raise, and the runner records the error."""

Rebudget = Callable[[Any, int | None, float | None], Any]
"""``rebudget(spec, budget, time_limit) -> spec``: the spec with the command line's budget and time limit."""


@dataclass(frozen=True)
class TrialKind:
    """A registered kind of trial.

    Attributes:
        spec: its spec dataclass.
        run: runs one spec (see :data:`RunTrial`).
        resumable: a killed trial continues from its run folder (the runner keeps the folder then).
        rebudget: how ``--budget`` / ``--time`` apply to its specs (``None``: they do not).
    """

    spec: type[Any]
    run: RunTrial
    resumable: bool = False
    rebudget: Rebudget | None = None


TRIAL_KINDS: Registry[TrialKind] = Registry("trial kind")

# Modules that register trial kinds; imported on first lookup (the applications add theirs).
KIND_MODULES: list[str] = ["gradfree.experiments.training", "gradfree.detection.trials", "gradfree.attacks.trials",
                            "gradfree.explain.trials"]


def load_kinds() -> Registry[TrialKind]:
    """Import every module that registers trial kinds and return the registry."""
    for module in KIND_MODULES:
        importlib.import_module(module)
    return TRIAL_KINDS


def kind_of(spec: Any) -> str:
    """The kind named by ``spec``'s class attribute ``kind``."""
    name = getattr(type(spec), "kind", None)
    if not isinstance(name, str):
        raise ConfigError(f"{type(spec).__name__} is not a trial spec: it names no kind")
    return name


def trial_kind(spec: Any) -> TrialKind:
    """The registered kind of ``spec``."""
    return load_kinds().get(kind_of(spec))


def with_field(spec: Any, name: str, value: Any) -> Any:
    """``spec`` with field ``name`` set to ``value``; a :class:`ConfigError` when its kind has no such field."""
    if name not in {f.name for f in fields(spec)}:
        raise ConfigError(f"{kind_of(spec)} trials have no {name!r} setting")
    return replace(spec, **{name: value})
