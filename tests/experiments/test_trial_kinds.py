"""The trial-kind seam: a kind that is not a training run plugs into suites, the runner and the reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gradfree.errors import ConfigError
from gradfree.experiments.kinds import TRIAL_KINDS, TrialKind, TrialOutcome
from gradfree.experiments.rows import RESULTS, read_rows
from gradfree.experiments.runner import Overrides, apply_overrides, run_trials
from gradfree.experiments.suite import Trial
from gradfree.reports.blocks import Block, Figure, Heading
from gradfree.reports.report import write_report
from gradfree.reports.sections import REPORT_SECTIONS, Sections
from gradfree.run import RunSpec


@dataclass(frozen=True)
class EchoSpec:
    """A made-up application trial: it 'scores' ``value`` plus the seed and draws one picture."""

    kind: ClassVar[str] = "unit-echo"
    value: float = 1.0
    seed: int = 0


def run_echo(spec: EchoSpec, *, run_dir: Path, resume: bool, **_: Any) -> TrialOutcome:
    if spec.value < 0:
        raise ConfigError("negative value")
    (run_dir / "picture.png").write_bytes(b"\x89PNG fake")
    score = spec.value + spec.seed
    return TrialOutcome(summary={"wall_time": 0.5, "queries": 10 * score},
                        final={"test_score": score, "test_other": 2.0},
                        headline={"name": "score", "higher_is_better": True, "label": "score", "percent": False},
                        history=[{"queries": 1, "score": 0.0}], artifacts={"picture": "picture.png"})


def echo_figures(rows: Any, out: Path) -> list[Block]:
    return [Heading("Echo pictures"), *(Figure(r["artifacts"]["picture"], f"picture of {r['key']}") for r in rows)]


if "unit-echo" not in TRIAL_KINDS:
    TRIAL_KINDS.add("unit-echo", TrialKind(spec=EchoSpec, run=run_echo), summary="test kind")
    REPORT_SECTIONS.add("unit-echo", Sections(figures=echo_figures), summary="test kind")


def test_a_new_kind_runs_records_its_rows_and_draws_its_sections(tmp_path: Path) -> None:
    trials = [Trial("echo", EchoSpec(value=1.0, seed=s)) for s in (0, 1)] + [Trial("bad", EchoSpec(value=-1.0))]
    outcome = run_trials(trials, out_dir=tmp_path, suite="unit", log=None)
    assert (outcome.ran, outcome.failed) == (3, 1)
    rows, _ = read_rows(tmp_path / RESULTS)
    ok = [r for r in rows if r["status"] == "ok"]
    assert [r["kind"] for r in rows] == ["unit-echo"] * 3
    assert [r["final"]["test_score"] for r in ok] == [1.0, 2.0] and ok[1]["queries"] == 20.0
    assert ok[0]["artifacts"] == {"picture": "runs/echo/seed0/picture.png"}
    assert (tmp_path / ok[0]["artifacts"]["picture"]).exists()
    report = write_report(tmp_path).markdown.read_text()
    assert "| method | seeds | test score | test other | wall time (s) |" in report  # its own metrics only
    assert "| echo | 2 | 1.5 [1, 2] | 2 | 0.5 |" in report
    assert "## Echo pictures" in report and "runs/echo/seed0/picture.png" in report
    assert "negative value" in report  # the failed trial is listed with its error


def test_overrides_apply_through_the_kinds_fields() -> None:
    echo = [Trial("echo", EchoSpec())]
    assert [t.spec.seed for t in apply_overrides(echo, Overrides(seeds=3))] == [0, 1, 2]
    with pytest.raises(ConfigError, match="unit-echo trials take no --budget"):
        apply_overrides(echo, Overrides(budget=10))
    with pytest.raises(ConfigError, match="unit-echo trials have no 'device' setting"):
        apply_overrides(echo, Overrides(device="cpu"))
    train = [Trial("adam", RunSpec(budget=100, eval_every=10))]
    spec = apply_overrides(train, Overrides(budget=200, device="cpu"))[0].spec
    assert isinstance(spec, RunSpec) and (spec.budget, spec.eval_every, spec.device) == (200, 20, "cpu")
    assert Trial("x", EchoSpec()).kind == "unit-echo" and train[0].kind == "train"
