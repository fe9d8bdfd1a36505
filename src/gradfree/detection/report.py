"""The report sections of detection trials (kind ``"detection"``): overview, mAP curves, precision-recall
curves, test pictures, the fine-tuning check, and settings — drawn from the rows alone (and the pictures the
trials wrote)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradfree.reports import plots
from gradfree.reports.blocks import Block, Bullets, Figure, Heading, Paragraph, TableBlock, file_part
from gradfree.reports.sections import REPORT_SECTIONS, Sections
from gradfree.reports.summary import SPREAD, Row, Table, by_method, median_spread, metric

ROUTES = {"scratch": "the whole network from its initialisation",
          "hybrid": "Adam start, head re-initialised and trained on cached backbone features",
          "finetune": "Adam start, head fine-tuned on a non-differentiable objective (cached features)"}


def _spec(row: Row) -> dict[str, Any]:
    return row.get("spec") or {}


def overview(rows: Sequence[Row]) -> list[Block]:
    """What ran and what was held equal."""
    ok = [r for r in rows if r.get("status") == "ok"]
    seeds = sorted({int(r.get("seed", 0)) for r in rows})
    models = ", ".join(f"`{m}`" for m in dict.fromkeys(str(_spec(r).get("model")) for r in rows))
    totals = sorted({round((_spec(r).get("time_limit") or 0) + (_spec(r).get("start_time") or 0)) for r in rows})
    text = (f"{len(rows)} detection trials ({len(ok)} ok) on the Kaggle car set (frame-range split, 320x192 "
            f"letterbox) with {models}; seeds {', '.join(map(str, seeds))}. Routes: "
            + "; ".join(f"**{k}**: {v}" for k, v in ROUTES.items()) + ". "
            f"Time budgets per trial (start plus own stage, seconds): {', '.join(map(str, totals))}; a trial's "
            "wall time counts its start detector's training, the feature caching and its own stage, never "
            "validation. mAP is COCO-style (101-point, greedy matching by score, at most 100 detections an "
            "image) in original pixels; precision, recall and F1 at score 0.25 and IoU 0.5. Cells are "
            f"{SPREAD}.")
    return [Paragraph(text)]


def _median_seed(members: Sequence[Row], key: str) -> Row:
    ranked = sorted(members, key=lambda r: metric(r, key) or 0.0)
    return ranked[(len(ranked) - 1) // 2]


def figures(rows: Sequence[Row], out: Path) -> list[Block]:
    """mAP against wall time, precision-recall curves, test pictures, and the fine-tuning table."""
    from gradfree.detection.pictures import precision_recall_plot

    blocks: list[Block] = [Heading("Plots")]
    for key, label, name in (("val_map50", "validation mAP@0.5", "map50_vs_time.png"),
                             ("val_map", "validation mAP@0.5:0.95", "map_vs_time.png")):
        path = plots.curves(rows, x_key="time", y_key=key, x_label="training wall time (s), start included",
                            y_label=f"{label} (lines), test (stars)", title=f"car detection: {label} vs wall time",
                            path=out / name, log_y=False, final_key=key.replace("val_", "test_"),
                            final_label="final test value (median, min–max)")
        if path is not None:
            blocks.append(Figure(path.name, f"{label} during training against training wall time (thin: "
                                            "seeds; thick: median), and the final test value (stars)."))
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for (_, method), members in by_method(rows).items():
        chosen = _median_seed(members, "test_map50")
        curve = chosen.get("pr_curve") or {}
        if curve.get("recall"):
            curves[f"{method} (seed {chosen.get('seed')}, AP {curve.get('ap50', 0):.3f})"] = (
                curve["recall"], curve["precision"])
    if curves:
        path = precision_recall_plot(curves, out / "precision_recall.png",
                                     title="test precision-recall at IoU 0.5 (median seed per method)")
        blocks.append(Figure(path.name, "Test precision-recall curves at IoU 0.5, one seed per method (the one "
                                        "with the median test mAP@0.5), interpolated as AP reads them."))
    for (_, method), members in by_method(rows).items():
        chosen = _median_seed(members, "test_map50")
        grid = _picture_beside_report(out, chosen, method)
        if grid is not None:
            blocks.append(Figure(grid, f"{method}, seed {chosen.get('seed')}: test images with the true "
                                       "boxes (green) and the predictions scoring 0.25 or more (orange, "
                                       "with their scores)."))
    blocks += _finetune_table(rows)
    return blocks


def _picture_beside_report(out: Path, row: Row, method: str) -> str | None:
    """The name of the row's detection grid copied next to the report (``detections_<method>.png``), or
    ``None`` when there is none. The grid is written into the trial's run folder, which results folders do not
    keep (``runs/`` holds checkpoints and weights); a copy beside the report survives, and redrawing the report
    from its rows alone reuses an earlier copy."""
    name = f"detections_{file_part(method)}.png"
    picture = (row.get("artifacts") or {}).get("test_images")
    if picture:
        source = Path(str(picture))
        source = source if source.is_absolute() else out / source
        if source.is_file() and source.resolve() != (out / name).resolve():
            shutil.copyfile(source, out / name)
    return name if (out / name).is_file() else None


def _finetune_table(rows: Sequence[Row]) -> list[Block]:
    tuned = [r for r in rows if _spec(r).get("route") == "finetune"]
    if not tuned:
        return []
    body, improved = [], 0
    for r in tuned:
        start, end = metric(r, "start_val_map50"), metric(r, "val_map50")
        better = start is not None and end is not None and end > start
        improved += better
        body.append([str(r.get("label")), str(r.get("seed")), f"{start:.4f}" if start is not None else "—",
                     f"{end:.4f}" if end is not None else "—", "yes" if better else "no",
                     _fmt(metric(r, "start_test_map50")), _fmt(metric(r, "test_map50"))])
    table = Table(["method", "seed", "start val mAP@0.5", "final val mAP@0.5", "improved", "start test mAP@0.5",
                   "final test mAP@0.5"], body, [False, True, True, True, False, True, True])
    return [Heading("Gradient-free fine-tuning on a non-differentiable objective"),
            Paragraph(f"Validation mAP@0.5 rose above the gradient-trained start in {improved} of {len(tuned)} "
                      "trials. The fine-tuned runs end on their last weights (no selection on validation), so "
                      "the comparison with the start is not biased by picking the best validation."),
            TableBlock(table)]


def _fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "—"


def settings(rows: Sequence[Row]) -> list[Block]:
    """Each method's settings (first seed) and the time split of the two-stage routes."""
    header = ["method", "route", "optimizer", "options", "model", "batch", "own stage", "start (Adam)",
              "objective", "start s", "features s", "stage s"]
    body = []
    for (_, method), members in by_method(rows).items():
        spec = _spec(members[0])
        options = ", ".join(f"{k}={v}" for k, v in (spec.get("options") or {}).items()) or "defaults"
        own = (f"{spec['time_limit']:g} s" if spec.get("time_limit") else f"{spec.get('budget'):,} evaluations")
        body.append([method, str(spec.get("route")), str(spec.get("optimizer")), options, str(spec.get("model")),
                     str(spec.get("batch_size") or "full"), own,
                     f"{spec['start_time']:g} s" if spec.get("start_time") else "—", str(spec.get("objective")),
                     median_spread([metric(r, "start_wall_time") for r in members], "{:.0f}"),
                     median_spread([metric(r, "feature_seconds") for r in members], "{:.1f}"),
                     median_spread([metric(r, "stage_wall_time") for r in members], "{:.0f}")])
    blocks: list[Block] = [Heading("Settings"), TableBlock(Table(header, body, [False] * 9 + [True] * 3),
                                                           caption="Each method's settings (first seed).")]
    notes = list(dict.fromkeys(f"{k}: {v}" for r in rows for k, v in (r.get("notes") or {}).items()))
    if notes:
        blocks.append(Bullets(notes))
    return blocks


REPORT_SECTIONS.add("detection", Sections(overview=overview, figures=figures, settings=settings),
                    summary="detection trials: mAP curves, precision-recall curves, test pictures, fine-tuning check")
