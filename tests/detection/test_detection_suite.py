"""The car-detection suite, its trial kind (three routes) and its report, end to end on a generated folder."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from car_fixtures import make_car_folder

import gradfree.detection.report  # noqa: F401  (registers the report sections)
import gradfree.detection.suite  # noqa: F401  (registers the suite)
from gradfree.detection.trials import DetectionTrialSpec, rebudget
from gradfree.errors import ConfigError
from gradfree.experiments.runner import RESULTS, Overrides, apply_overrides, read_rows, run_trials, suite_trials
from gradfree.experiments.suite import Trial, suite_sizes

ROUTES = {"sgd": "scratch", "momentum": "scratch", "adam": "scratch", "zo-adam": "scratch", "mezo": "scratch",
          "sep-cma": "scratch", "rso": "scratch", "hybrid": "hybrid", "finetune-f1": "finetune"}


def test_the_suite_compares_every_route_at_equal_time_at_every_size() -> None:
    for size in suite_sizes("car-detection"):
        trials = suite_trials("car-detection", size)
        assert {t.label: t.spec.route for t in trials} == ROUTES  # type: ignore[attr-defined]
        seeds = {t.spec.seed for t in trials}
        assert seeds == ({0} if size == "quick" else {0, 1, 2})
        by = {t.label: t.spec for t in trials if t.spec.seed == 0}
        adam, hybrid, tune = by["adam"], by["hybrid"], by["finetune-f1"]
        assert all(t.spec.eval_every >= 1 and t.spec.time_limit for t in trials)  # type: ignore[attr-defined]
        if size != "gpu":  # equal total time: the hybrid's start and its own stage add up to the others' time
            assert hybrid.start_time + hybrid.time_limit == adam.time_limit == by["zo-adam"].time_limit  # type: ignore[attr-defined]
        assert tune.start_time == adam.time_limit and tune.objective == "f1"  # type: ignore[attr-defined]
        assert all(t.notes.get("budget") and t.notes.get("hyper-parameters") for t in trials)
    gpu = {t.label: t.spec for t in suite_trials("car-detection", "gpu") if t.spec.seed == 0}
    assert gpu["adam"].time_limit == 720 and gpu["zo-adam"].time_limit == 3600  # the target budgets
    assert gpu["hybrid"].start_time + gpu["hybrid"].time_limit == 900  # type: ignore[attr-defined]


def test_overrides_rescale_every_time_of_a_trial() -> None:
    hybrid = DetectionTrialSpec(route="hybrid", optimizer="zo-adam", time_limit=45.0, start_time=45.0,
                                eval_every=100, start_eval_every=20)
    longer = rebudget(hybrid, None, 180.0)
    assert (longer.start_time, longer.time_limit, longer.eval_every, longer.start_eval_every) == (90, 90, 200, 40)
    counted = rebudget(hybrid, 5000, None)
    assert counted.budget == 5000 and counted.time_limit is None and counted.start_time == 45.0
    trials = apply_overrides([Trial("hybrid", hybrid)], Overrides(seeds=2, device="cpu"))
    assert [(t.spec.seed, t.spec.device) for t in trials] == [(0, "cpu"), (1, "cpu")]  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="needs start_time"):
        DetectionTrialSpec(route="hybrid", time_limit=1.0)
    with pytest.raises(ConfigError, match="non-differentiable objective"):
        DetectionTrialSpec(route="scratch", objective="f1", time_limit=1.0)


def _tiny(trial: Trial) -> Trial:
    spec = trial.spec
    assert isinstance(spec, DetectionTrialSpec)
    return replace(trial, spec=replace(spec, model="yolo:4-4-4-4-4", time_limit=None, budget=6, eval_every=3,
                                       start_time=0.6 if spec.start_time else None, start_eval_every=4,
                                       device="cpu", pictures=3))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:batch size .* is larger than the training split")
def test_each_route_runs_end_to_end_with_its_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gradfree.reports.report import write_report

    monkeypatch.setenv("GRADFREE_CACHE", str(tmp_path / "cache"))
    make_car_folder(tmp_path, frames=tuple(range(0, 800, 20)))
    trials = [_tiny(t) for t in suite_trials("car-detection", "quick") if t.label in ("adam", "hybrid", "finetune-f1")]
    out = tmp_path / "bench"
    outcome = run_trials(trials, out_dir=out, suite="car-detection", size="quick", data_dir=tmp_path, log=None)
    rows, _ = read_rows(out / RESULTS)
    assert outcome.failed == 0, [r["error"]["message"] for r in rows if r["status"] != "ok"]
    by = {r["label"]: r for r in rows}
    for row in rows:
        assert row["headline"]["name"] == "map50" and 0 <= row["final"]["test_map50"] <= 1
        assert len(row["pr_curve"]["recall"]) == len(row["pr_curve"]["precision"])
        assert (out / row["artifacts"]["test_images"]).is_file()
        run = out / row["run_dir"]
        assert json.loads((run / "config.json").read_text())["config"]["model"] == "yolo:4-4-4-4-4"
    # the two-stage routes share one cached start per seed and count its time
    hybrid, tune = by["hybrid"], by["finetune-f1"]
    assert hybrid["wall_time"] == pytest.approx(hybrid["start_wall_time"] + hybrid["feature_seconds"]
                                                + hybrid["stage_wall_time"])
    assert hybrid["start_val_map50"] == tune["start_val_map50"]
    assert len(list((tmp_path / "cache" / "detectors").iterdir())) == 1
    assert [h["stage"] for h in hybrid["history"]][-1] == "hybrid" and hybrid["history"][0]["stage"] == "start"
    assert tune["val_map50_gain"] == pytest.approx(tune["final"]["val_map50"] - tune["start_val_map50"])
    # the whole detector was saved, not only the head the trainer trained: detect can read it
    from gradfree.detection.command import load_detector

    assert sum(p.numel() for p in load_detector(out / hybrid["run_dir"]).model.parameters()) > 1000
    report = write_report(out).markdown.read_text()
    for text in ("map50_vs_time.png", "precision_recall.png", "detections_adam.png", "detections_finetune-f1.png",
                 "Gradient-free fine-tuning on a non-differentiable objective", "| hybrid | 1 |"):
        assert text in report
    # the pictures are copied beside the report: results folders do not keep runs/, and a redraw from the rows
    # alone (runs/ gone) still shows them
    assert "](runs/" not in report and (out / "detections_hybrid.png").is_file()
    shutil.rmtree(out / "runs")
    assert "detections_adam.png" in write_report(out).markdown.read_text()
