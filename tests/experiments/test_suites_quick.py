"""Suites: every registered suite builds well-formed trials at every size from registered names; each vision suite
(:mod:`gradfree.experiments.suites.vision`) and the mdp-mnist suites run their quick size end to end (runner and
report) on small generated data of the real shapes — CI has no MNIST or CIFAR-10. A ``shared_data`` test runs one
real quick suite where the datasets are present."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from gradfree.errors import ConfigError
from gradfree.experiments.runner import RESULTS, read_rows, run_trials, suite_trials, unregistered
from gradfree.experiments.suite import Trial, load_suites, suite_sizes
from gradfree.run import RunSpec

SUITES = [entry.name for entry in load_suites()]
VISION = [entry.name for entry in load_suites() if entry.item.__module__ == "gradfree.experiments.suites.vision"]
END_TO_END = [*VISION, "mdp-mnist", "mdp-mnist-minute"]

FIXTURE_SHAPES: dict[str, tuple[int, ...]] = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28),
                                              "cifar10": (3, 32, 32), "mdp-mnist": (1, 28, 28),
                                              "mdp-mnist-uncentred": (1, 28, 28)}
"""The input shape each real task gives; the fixture data has the same shape."""


def _fixture_task(name: str, *, seed: int = 0, **_: Any) -> Any:
    """A tiny learnable stand-in for a real dataset: 10 classes, each a noisy copy of its own pattern."""
    from gradfree.data.splits import DataSplits, Split
    from gradfree.tasks import ClassificationTask

    g = torch.Generator().manual_seed(1234)
    shape = FIXTURE_SHAPES[name]
    patterns = torch.randn(10, *shape, generator=g)

    def split(n: int) -> Split:
        y = torch.arange(n) % 10
        return Split(patterns[y] + 0.8 * torch.randn(n, *shape, generator=g), y)

    del seed
    return ClassificationTask(DataSplits(name, split(320), split(160), split(160), 10), default_model="mlp")


@pytest.fixture
def fixture_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the runs' task builder at generated data for the datasets CI lacks; other tasks are real."""
    import gradfree.run

    real = gradfree.run.build_task

    def build(name: str, **options: Any) -> Any:
        return _fixture_task(name, **options) if name in FIXTURE_SHAPES else real(name, **options)

    monkeypatch.setattr(gradfree.run, "build_task", build)


def _shrink(trial: Trial) -> Trial:
    """The trial at about a hundred evaluations or 0.25 s, with as many validations as it had; RSO tries at most
    4 weights per step (a step cannot be cut short by the time limit)."""
    spec = trial.spec
    if spec.budget is not None:
        factor = min(spec.budget, 100) / spec.budget
        spec = replace(spec, budget=min(spec.budget, 100))
    else:
        assert spec.time_limit is not None
        factor = 0.25 / spec.time_limit
        spec = replace(spec, time_limit=0.25)
    options = dict(spec.options)
    if "weights_per_step" in options:
        options["weights_per_step"] = min(options["weights_per_step"] or 4, 4)
    return replace(trial, spec=replace(spec, options=options, eval_every=max(1, round(spec.eval_every * factor))))


@pytest.mark.parametrize("suite", SUITES)
def test_trials_are_well_formed_at_every_size(suite: str) -> None:
    for size in suite_sizes(suite):
        trials = suite_trials(suite, size)
        assert trials, f"{suite} {size} has no trials"
        assert len({t.key for t in trials}) == len(trials)
        for t in trials:
            if isinstance(t.spec, RunSpec):  # a training trial; the applications' kinds check their own specs
                assert t.spec.budget or t.spec.time_limit
                assert t.spec.eval_every >= 1


def test_a_size_a_suite_does_not_have_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="suite 'digits' has no size 'long'; it has quick, full, gpu"):
        suite_trials("digits", "long")
    long = suite_trials("cifar10", "long")
    assert {t.group for t in long} == {"minutes=10", "minutes=60"}
    assert {t.label for t in long} == {"adam", "rso", "zo-adam"} and {t.spec.seed for t in long} == {0}
    # RSO anneals over the rounds that fit each run, not past them.
    assert {t.group: t.spec.options["rounds"] for t in long if t.label == "rso"} == {"minutes=10": 1, "minutes=60": 4}


@pytest.mark.parametrize("suite", VISION)
def test_vision_suite_sizes(suite: str) -> None:
    for size in ("quick", "full", "gpu"):
        trials = suite_trials(suite, size)
        assert all(t.notes.get("budget") and t.notes.get("hyper-parameters") for t in trials)
        seeds = {t.spec.seed for t in trials}
        assert (seeds == {0}) if size == "quick" else (len(seeds) >= 3)
    quick, full = suite_trials(suite, "quick"), suite_trials(suite, "full")
    assert {t.label for t in quick} == {t.label for t in full}


def test_suites_compare_what_their_question_needs() -> None:
    batch = suite_trials("rso-batch-size", "full")
    assert {t.group for t in batch} == {f"batch={b}" for b in (64, 256, 1024, 5000)}
    assert all(t.spec.batch_size == int(t.group.split("=")[1]) for t in batch)
    assert {t.label for t in batch} == {"rso", "sgd"}
    cifar = suite_trials("cifar10", "full")
    assert {"sgd", "momentum", "adam", "adamw", "rmsprop"} < {t.label for t in cifar}
    assert all(t.spec.time_limit and t.spec.budget is None for t in cifar)  # equal wall time
    assert len({t.spec.time_limit for t in cifar}) == 1
    for name in ("mnist-cnn", "fashion-mnist"):
        trials = suite_trials(name, "full")
        assert len({t.spec.budget for t in trials}) == 1 and {"sgd", "adam", "rso"} < {t.label for t in trials}
        assert all(t.spec.model and t.spec.model.startswith("lenet") for t in trials)


@pytest.mark.parametrize("suite", SUITES)
def test_suite_names_are_registered(suite: str) -> None:
    missing = unregistered(suite_trials(suite, "full") + suite_trials(suite, "gpu"))
    if missing:
        pytest.skip(f"suite {suite} uses names not registered yet: {', '.join(missing)}")


@pytest.mark.slow
@pytest.mark.parametrize("suite", END_TO_END)
def test_quick_suite_runs_end_to_end_on_fixture_data(suite: str, tmp_path: Path, fixture_data: None) -> None:
    from gradfree.reports.report import write_report

    trials = suite_trials(suite, "quick")
    runnable = [_shrink(t) for t in trials if not unregistered([t])]
    if not runnable:
        pytest.skip(f"suite {suite}: no trial's names are registered yet ({', '.join(unregistered(trials))})")
    outcome = run_trials(runnable, out_dir=tmp_path, suite=suite, size="quick", log=None)
    rows, bad = read_rows(tmp_path / RESULTS)
    errors = [f"{r['key']}: {r['error']['type']}: {r['error']['message']}" for r in rows if r["status"] != "ok"]
    assert not errors, "\n".join(errors)
    assert outcome.ran == len(runnable) == len(rows) and bad == 0
    files = write_report(tmp_path)
    names = {p.name for p in files.figures}
    assert {"loss_vs_evaluations.png", "loss_vs_time.png", "final_loss.png"} <= names
    if suite == "rso-batch-size":
        assert {"sweep_batch.png", "by_batch.png"} <= names


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_quick_suite_on_shared_mnist(tmp_path: Path, shared_data_dir: Path) -> None:
    if not (shared_data_dir / "mnist").is_dir():
        pytest.skip(f"real MNIST not found in {shared_data_dir}")
    from gradfree.experiments.runner import Overrides, run_suite

    # mnist-cnn's quick size on real MNIST, at a tenth of its budget to stay near a minute.
    outcome = run_suite("mnist-cnn", size="quick", out_dir=tmp_path, overrides=Overrides(budget=120),
                        data_dir=shared_data_dir, download=False, log=None)
    rows, _ = read_rows(tmp_path / RESULTS)
    assert outcome.failed == 0, [r.get("error") for r in rows if r["status"] != "ok"]
    adam = next(r for r in rows if r["label"] == "adam")
    assert adam["final"]["test_accuracy"] > 0.5  # 120 Adam steps on 1,000 real digits
    assert (tmp_path / "report.html").exists()
