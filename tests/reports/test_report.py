"""The report: drawn from results.jsonl alone, for classification, regression, failed rows and sweeps; the HTML
page is self-contained."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gradfree.experiments.runner import RESULTS, append_row
from gradfree.reports.report import write_report
from gradfree.reports.summary import columns_for, median_spread, metric, summary_table

PNG = b"\x89PNG\r\n\x1a\n"


def _history(scale: float, *, evals: int = 1000, accuracy: bool = True, per_step: int = 1) -> list[dict[str, Any]]:
    rows = []
    for i in range(6):
        e = i * evals // 5
        row = {"kind": "val", "evaluations": e, "steps": e // per_step, "time": 0.5 * i, "backward": 0,
               "train_loss": 2.0 * scale / (1 + i), "val_loss": 2.2 * scale / (1 + i)}
        if accuracy:
            row["val_accuracy"] = min(0.1 + 0.15 * i / scale, 1.0)
        rows.append(row)
    return rows


def _row(label: str, seed: int, *, scale: float = 1.0, group: str = "", budget: int = 1000,
         task: str = "digits", regression: bool = False, batch: int = 64, per_step: int = 1) -> dict[str, Any]:
    if regression:
        final = {f"{s}_loss": 0.5 * scale + 0.01 * seed for s in ("train", "val", "test")}
        final.update(test_rmse=0.7 * scale, test_r2=1 - 0.3 * scale)
    else:
        final = {"train_loss": 0.3 * scale + 0.01 * seed, "train_accuracy": 0.95 / scale,
                 "val_loss": 0.4 * scale, "val_accuracy": 0.9 / scale, "test_loss": 0.45 * scale,
                 "test_accuracy": 0.9 / scale - 0.01 * seed}
    key = f"{group + '/' if group else ''}{label}/seed{seed}"
    return {"suite": "unit", "size": "quick", "key": key, "label": label, "group": group, "seed": seed,
            "spec": {"task": task, "model": "mlp:64-8-10", "optimizer": label, "options": {"lr": 0.1},
                     "budget": budget, "time_limit": None, "batch_size": batch, "eval_every": budget // 5,
                     "seed": seed, "train_subset": None, "device": "cpu"},
            "notes": {"budget": "equal evaluations"}, "status": "ok", "evaluations": budget, "backward": 0,
            "rejected": 0, "steps": budget // per_step, "wall_time": 2.5 * scale, "stopped": "budget",
            "monitor": "loss", "best_val": 0.4, "headline": _headline(regression), "final": final,
            "history": _history(scale, evals=budget, accuracy=not regression, per_step=per_step), "error": None,
            "provenance": {"torch": "2.x", "git_revision": "abc", "device": "cpu", "gradfree": "0.1.0"},
            "started_at": "2026-01-01T00:00:00+00:00"}


def _headline(regression: bool) -> dict[str, Any]:
    if regression:
        return {"name": "r2", "higher_is_better": True, "label": "R²", "percent": False}
    return {"name": "accuracy", "higher_is_better": True, "label": "accuracy", "percent": True}


def _failed(label: str) -> dict[str, Any]:
    return {"suite": "unit", "size": "quick", "key": f"{label}/seed0", "label": label, "group": "", "seed": 0,
            "spec": {"task": "digits", "model": "mlp:64-8-10", "optimizer": label, "budget": 1000},
            "status": "error",
            "error": {"type": "ConfigError", "message": "optimizer 'x' takes no option nonsense; it takes: lr",
                      "traceback": "Traceback (most recent call last):\n  File ...\nConfigError: boom <b>&"},
            "provenance": {"device": "cpu"}}


def _write(folder: Path, rows: list[dict[str, Any]]) -> Path:
    for row in rows:
        append_row(folder / RESULTS, row)
    return folder


def _check_html(path: Path) -> str:
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    # Self-contained: no scripts, no linked style sheets, nothing fetched from anywhere.
    assert "<script" not in text and "<link" not in text and "@import" not in text and "url(" not in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    sources = re.findall(r'<img src="([^"]*)"', text)
    assert sources
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG
    return text


def test_classification_report_from_rows_alone(tmp_path: Path) -> None:
    rows = [_row("adam", s) for s in range(3)] + [_row("zo-adam", s, scale=2.0) for s in range(3)]
    _write(tmp_path, rows + [_failed("broken")])
    files = write_report(tmp_path)
    md = files.markdown.read_text()
    assert "# Benchmark: unit (quick)" in md
    # adam's test accuracies over seeds are 0.90, 0.89, 0.88: median [min, max].
    assert "| adam | 3 | 0.31 [0.3, 0.32] | 95.00% | 90.00% | 89.00% [88.00%, 90.00%] | 1,000 | 2.5 | 400 |" in md
    assert "| zo-adam | 3 |" in md
    assert "## Failed trials" in md and "| broken/seed0 | ConfigError | optimizer 'x' takes no option" in md
    assert "median [min, max] over seeds" in md
    names = {p.name for p in files.figures}
    assert names == {"loss_vs_evaluations.png", "loss_vs_time.png", "accuracy_vs_evaluations.png",
                     "final_loss.png", "final_accuracy.png"}
    for name in names:
        assert (tmp_path / name).read_bytes()[:8] == PNG
        assert f"]({name})" in md
    html = _check_html(files.html)
    assert "ConfigError: boom &lt;b&gt;&amp;" in html  # the traceback, escaped
    assert "<details><summary>traceback of <code>" not in html and "traceback of broken/seed0" in html


def test_regression_rows_get_their_own_columns_and_no_accuracy_plot(tmp_path: Path) -> None:
    rows = [_row(m, s, scale=k, regression=True, task="housing") for m, k in (("adam", 1.0), ("mezo", 1.5))
            for s in range(2)]
    files = write_report(_write(tmp_path, rows))
    md = files.markdown.read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method |"))
    assert header == ("| method | seeds | final train loss | val loss | test loss | test R² | test rmse | "
                      "evaluations | wall time (s) | evaluations/s |")
    assert "acc" not in header
    names = {p.name for p in files.figures}
    assert "accuracy_vs_evaluations.png" not in names and "final_accuracy.png" not in names
    assert {"loss_vs_evaluations.png", "loss_vs_time.png", "final_loss.png"} <= names
    _check_html(files.html)


def test_group_sweep_plots_accuracy_per_update_and_per_second(tmp_path: Path) -> None:
    rows = [_row(m, 0, scale=k * (1 + b / 5000), group=f"batch={b}", batch=b, per_step=p)
            for b in (64, 256, 1024) for m, k, p in (("rso", 2.0, 513), ("sgd", 1.0, 1))]
    files = write_report(_write(tmp_path, rows))
    md = files.markdown.read_text()
    assert "| group | method | seeds |" in md and "| batch=256 | rso | 1 |" in md
    names = {p.name for p in files.figures}
    assert {"sweep_batch.png", "by_batch.png"} <= names
    assert "batch size" in md


def test_budget_sweep_plots_accuracy_against_budget(tmp_path: Path) -> None:
    rows = [_row("adam", 0, scale=3000 / b, group=f"budget={b}", budget=b) for b in (1000, 2000, 3000)]
    # Same method at several budgets within one group: the sweep is recognised from the specs too.
    rows += [_row("sgd", s, budget=b) | {"key": f"sgd/b{b}/seed{s}"} for b in (1000, 3000) for s in range(2)]
    files = write_report(_write(tmp_path, rows))
    assert "accuracy_vs_budget.png" in {p.name for p in files.figures}
    assert "accuracy_vs_evaluations.png" not in {p.name for p in files.figures}


def test_only_failures_and_unreadable_lines(tmp_path: Path) -> None:
    _write(tmp_path, [_failed("a"), _failed("b")])
    with open(tmp_path / RESULTS, "a") as f:
        f.write("{not json\n")
    files = write_report(tmp_path)
    md = files.markdown.read_text()
    assert "No trial finished" in md and "| a/seed0 | ConfigError |" in md and "1 unreadable line(s)" in md
    assert files.figures == []
    assert "<img" not in files.html.read_text()


def test_a_rerun_supersedes_the_failed_attempt(tmp_path: Path) -> None:
    _write(tmp_path, [_failed("adam"), _row("adam", 0)])
    md = write_report(tmp_path).markdown.read_text()
    assert "Failed trials" not in md and "| adam | 1 |" in md and "1 earlier attempt(s) superseded" in md


def test_summary_helpers() -> None:
    assert median_spread([1.0, None, 3.0, 2.0], "{:.1f}") == "2.0 [1.0, 3.0]"
    assert median_spread([None], "{:.1f}") == "—" and median_spread([0.5], "{:.1f}") == "0.5"
    row = _row("adam", 0)
    assert metric(row, "test_accuracy") == 0.9 and metric(row, "evals_per_s") == 400.0
    assert metric({"final": {"x": None}, "x": 1}, "x") is None
    assert [c.key for c in columns_for([row])][:4] == ["train_loss", "train_accuracy", "val_accuracy",
                                                        "test_accuracy"]
    table = summary_table([row, _row("a|b", 0)])
    assert "a\\|b" in table.markdown()


def test_missing_results_is_a_clear_error(tmp_path: Path) -> None:
    from gradfree.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        write_report(tmp_path)
    (tmp_path / RESULTS).write_text("")
    with pytest.raises(ConfigError, match="holds no result rows"):
        write_report(tmp_path)


def test_synthetic_rows_have_the_runners_shape(tmp_path: Path) -> None:
    """The rows above stand in for real ones: their keys must be keys the runner writes."""
    from gradfree.experiments.runner import run_trials
    from gradfree.experiments.suite import Trial
    from gradfree.run import RunSpec

    spec = RunSpec(task="digits", model="mlp:64-8-10", optimizer="adam", budget=40, eval_every=20, device="cpu")
    run_trials([Trial("adam", spec)], out_dir=tmp_path, suite="unit", log=None)
    real = json.loads((tmp_path / RESULTS).read_text())
    fake = _row("adam", 0)
    assert set(fake) <= set(real) and set(fake["final"]) == set(real["final"])
    assert set(fake["spec"]) <= set(real["spec"]) and set(fake["history"][0]) == set(real["history"][0])
    assert set(_failed("x")) <= set(real) | {"error"}
    write_report(tmp_path)
