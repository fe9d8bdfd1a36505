"""The report sections of training trials (kind ``"train"``): overview, training plots, settings.

Curves come from each row's validation history; bars and sweeps from its final metrics (see
:mod:`gradfree.reports.plots`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradfree.reports import plots
from gradfree.reports.blocks import Block, Bullets, Figure, Heading, Paragraph, TableBlock
from gradfree.reports.sections import REPORT_SECTIONS, Sections
from gradfree.reports.summary import SPREAD, Row, Table, by_method, has_accuracy


def _spec(row: Row) -> dict[str, Any]:
    return row.get("spec") or {}


def _one(values: Sequence[Any]) -> Any:
    distinct = list(dict.fromkeys(map(repr, values)))
    return values[0] if len(distinct) == 1 else None


def _budget_text(spec: dict[str, Any]) -> str:
    parts = []
    if spec.get("budget"):
        parts.append(f"{spec['budget']:,} evaluations")
    if spec.get("time_limit"):
        parts.append(f"{spec['time_limit']:g} s of training")
    return " or ".join(parts) or "no budget recorded"


def _overview_text(rows: Sequence[Row], ok: Sequence[Row]) -> str:
    specs = [_spec(r) for r in rows]
    tasks = ", ".join(dict.fromkeys(str(s.get("task")) for s in specs))
    models = ", ".join(f"`{m}`" for m in dict.fromkeys(str(s.get("model")) for s in specs))
    seeds = sorted({int(r.get("seed", 0)) for r in rows})
    budgets = list(dict.fromkeys(_budget_text(s) for s in specs))
    batch = list(dict.fromkeys(s.get("batch_size") for s in specs))
    text = (f"{len(rows)} trials ({len(ok)} ok, {len(rows) - len(ok)} failed) on task {tasks} with model {models}; "
            f"seeds {', '.join(map(str, seeds))}. ")
    text += (f"Every run has the same budget: {budgets[0]}. " if len(budgets) == 1
             else f"Budgets differ between trials ({'; '.join(budgets)}). ")
    if len(batch) == 1:
        text += f"Mini-batches of {batch[0] if batch[0] else 'the full training split'} rows. "
    text += ("One evaluation is one forward pass of one parameter vector over one batch; a backprop step counts "
             "one evaluation plus one backward pass; validation passes are not charged. Each run ends on the "
             f"weights of its best validation {_monitor(rows)}. Table cells are {SPREAD} (one value for one seed); "
             "wall time is training time: validation, checkpoints, data loading and the final evaluation are not "
             "counted.")
    return text


def _group_sweep(rows: Sequence[Row]) -> tuple[str, dict[str, float]] | None:
    """``(name, value per group)`` when every group is ``NAME=NUMBER`` with one NAME (e.g. ``batch=64``)."""
    groups = list(dict.fromkeys(str(r.get("group") or "") for r in rows))
    found: dict[str, float] = {}
    names = set()
    for g in groups:
        m = re.fullmatch(r"\s*([A-Za-z_][\w -]*?)\s*=\s*([-+0-9.eE]+)\s*", g)
        if m is None:
            return None
        try:
            found[g] = float(m.group(2))
        except ValueError:
            return None
        names.add(m.group(1))
    if len(names) != 1 or len(found) < 2:
        return None
    return names.pop(), found


def _budget_sweep(rows: Sequence[Row]) -> str | None:
    """``"budget"`` or ``"time_limit"`` when one method ran at several budgets (within one group)."""
    for key in ("budget", "time_limit"):
        for members in by_method(rows).values():
            if len({_spec(r).get(key) for r in members} - {None}) > 1:
                return key
    return None


SWEEP_LABELS = {"batch": "batch size (rows per evaluation)", "batch_size": "batch size (rows per evaluation)"}


def figures(rows: Sequence[Row], out: Path) -> list[Block]:
    """Write the training plots for the ``ok`` rows; return their figure blocks."""
    blocks: list[Block] = [Heading("Plots")]
    classification = has_accuracy(rows)
    loss_name = "validation loss (cross-entropy)" if classification else "validation loss"
    batch = _one([_spec(r).get("batch_size") for r in rows])
    evals_label = ("objective evaluations (forward passes of one parameter vector over "
                   + (f"a batch of {batch} rows)" if batch else "one batch)"))
    title_base = ", ".join(dict.fromkeys(f"{_spec(r).get('task')}, {_spec(r).get('model')}" for r in rows))

    def add(path: Path | None, caption: str) -> None:
        if path is not None:
            blocks.append(Figure(path.name, caption))

    add(plots.curves(rows, x_key="evaluations", y_key="val_loss", x_label=evals_label, y_label=loss_name,
                     title=f"{title_base}: validation loss vs evaluations", path=out / "loss_vs_evaluations.png"),
        "Validation loss against objective evaluations (thin lines: seeds; thick: median over seeds).")
    add(plots.curves(rows, x_key="time", y_key="val_loss", x_label="training wall time (s)",
                     y_label=loss_name, title=f"{title_base}: validation loss vs wall time",
                     path=out / "loss_vs_time.png"),
        "Validation loss against training wall time (validation not counted).")

    sweep = _budget_sweep(rows)
    metric_key = "test_accuracy" if classification else "test_loss"
    metric_label = "test accuracy" if classification else "test loss"
    if sweep is not None:
        unit = "evaluation budget" if sweep == "budget" else "time budget (s)"
        add(plots.sweep(rows, x_of=lambda r: _spec(r).get(sweep), x_label=unit,
                        panels=[(metric_key, f"final {metric_label}", classification)],
                        title=f"{title_base}: final {metric_label} vs {unit}", path=out / "accuracy_vs_budget.png"),
            f"Final {metric_label} against the run's {unit}, across trials of different budgets ({SPREAD}).")
    elif classification:
        time_only = all(not _spec(r).get("budget") and _spec(r).get("time_limit") for r in rows)
        x_key, x_label, name = (("time", "training wall time (s)", "accuracy_vs_time.png") if time_only
                                else ("evaluations", evals_label, "accuracy_vs_evaluations.png"))
        add(plots.curves(rows, x_key=x_key, y_key="val_accuracy", x_label=x_label,
                         y_label="validation accuracy (lines), test accuracy (stars)",
                         title=f"{title_base}: accuracy vs {'wall time' if time_only else 'evaluations'}",
                         path=out / name, log_y=False, percent=True, final_key="test_accuracy",
                         final_label="final test accuracy (median, min–max)"),
            "Validation accuracy during training (lines) and the final test accuracy (stars, median with "
            "min–max over seeds), against " + ("training wall time." if time_only else "evaluations. ")
            + ("" if time_only else "The test split is scored once, at the end."))

    add(plots.final_bars(rows, metrics=[("train_loss", "final train loss"), ("test_loss", "final test loss")],
                         y_label="loss" + (" (cross-entropy)" if classification else ""),
                         title=f"{title_base}: final loss (median, min–max over seeds)", path=out / "final_loss.png"),
        "Final train and test loss per method: bars are medians, whiskers min–max over seeds.")
    if classification:
        add(plots.final_bars(rows, metrics=[("train_accuracy", "train accuracy"), ("test_accuracy", "test accuracy")],
                             y_label="accuracy", percent=True,
                             title=f"{title_base}: final accuracy (median, min–max over seeds)",
                             path=out / "final_accuracy.png"),
            "Final train and test accuracy per method: bars are medians, whiskers min–max over seeds.")

    swept = _group_sweep(rows)
    if swept is not None:
        name, values = swept
        x_label = SWEEP_LABELS.get(name, name)
        y_key, y_label = ("val_accuracy", "validation accuracy") if classification else ("val_loss", "validation loss")
        add(plots.sweep(rows, x_of=lambda r: values.get(str(r.get("group") or "")), x_label=x_label,
                        panels=[(metric_key, f"final {metric_label}", classification),
                                ("steps_per_s", "updates per second", False),
                                ("evals_per_s", "evaluations per second", False)],
                        title=f"{title_base}: effect of {x_label}", path=out / f"sweep_{_slug(name)}.png"),
            f"Final {metric_label}, updates per second and evaluations per second against {x_label} ({SPREAD}).")
        add(plots.curves_by_group(rows, group_value=values.get, group_label=x_label,
                                  x_axes=[("steps", "updates (optimizer steps)"),
                                          ("time", "training wall time (s)")],
                                  y_key=y_key, y_label=y_label, percent=classification,
                                  title=f"{title_base}: {y_label} per update and per second, by {x_label}",
                                  path=out / f"by_{_slug(name)}.png"),
            f"What each method reaches per update (top) and per second (bottom) at each {x_label}: {y_label}, "
            "median over seeds.")
    return blocks if len(blocks) > 1 else []


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "group"


def settings(rows: Sequence[Row]) -> list[Block]:
    header = ["method", "optimizer", "options", "task", "model", "batch", "budget", "eval every", "train rows"]
    body: list[list[str]] = []
    grouped = any(g for g, _ in by_method(rows))
    for (group, method), members in by_method(rows).items():
        spec = _spec(members[0])
        options = ", ".join(f"{k}={v}" for k, v in (spec.get("options") or {}).items()) or "defaults"
        body.append(([group] if grouped else []) + [
            method, str(spec.get("optimizer")), options, str(spec.get("task")), str(spec.get("model")),
            str(spec.get("batch_size") or "full"), _budget_text(spec), f"{spec.get('eval_every', 0):,}",
            str(spec.get("train_subset") or "all")])
    table = Table((["group"] if grouped else []) + header, body, [False] * (len(header) + grouped))
    blocks: list[Block] = [Heading("Settings"), TableBlock(table, caption="Each method's settings (first seed).")]
    notes: dict[str, None] = {}
    for r in rows:
        for k, v in (r.get("notes") or {}).items():
            notes.setdefault(f"{k}: {v}", None)
    if notes:
        blocks.append(Bullets(list(notes)))
    return blocks


def _monitor(rows: Sequence[Row]) -> str:
    names = list(dict.fromkeys(str(r.get("monitor") or "loss") for r in rows))
    return names[0] if len(names) == 1 else "metric (" + ", ".join(names) + ")"


def overview(rows: Sequence[Row]) -> list[Block]:
    """What the training trials ran and what was held equal."""
    ok = [r for r in rows if r.get("status") == "ok"]
    return [Paragraph(_overview_text(rows, ok))]


REPORT_SECTIONS.add("train", Sections(overview=overview, figures=figures, settings=settings),
                    summary="training runs: loss and accuracy curves, final bars, sweeps, settings")
