"""Numbers drawn from result rows: metric lookup, grouping by method, median and spread over seeds, tables.

A row is one trial as the runner writes it (``label``, ``group``, ``seed``, ``status``, the run summary such as
``evaluations`` and ``wall_time`` at the top level, and the final metrics under ``final`` as
``{split}_{metric}``: ``train_loss``, ``test_accuracy``, ``test_rmse`` ...). Everything here works for any
task: columns appear only for metrics that some row holds, so a regression suite (losses, RMSE, R^2, no
accuracy) gets a table of its own metrics. The spread is always ``[min, max]`` over seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Row = dict[str, Any]

SPREAD = "median [min, max] over seeds"
"""What every table cell and error bar shows, in words, for report captions."""

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Column:
    """One table column: the metric looked up by :func:`metric`, its heading and its number format."""

    key: str
    label: str
    fmt: str


def metric(row: Row, key: str) -> float | None:
    """The finite number ``key`` of ``row`` (final metrics first, then the run summary), else ``None``.

    ``evals_per_s`` is derived: evaluations divided by training wall time. ``steps_per_s`` likewise.
    """
    if key in ("evals_per_s", "steps_per_s"):
        count = metric(row, "evaluations" if key == "evals_per_s" else "steps")
        seconds = metric(row, "wall_time")
        return count / seconds if count is not None and seconds else None
    final = row.get("final") or {}
    value = final.get(key, row.get(key))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def stats(values: Iterable[float | None]) -> tuple[float, float, float] | None:
    """``(median, min, max)`` of the values that are not ``None``; ``None`` when there are none."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def median_spread(values: Sequence[float | None], fmt: str) -> str:
    """``median [min, max]`` over seeds: just the value when one seed (or all seeds) gives it; a dash for none."""
    found = stats(values)
    if found is None:
        return "—"
    med, low, high = (fmt.format(v) for v in found)
    return med if low == high else f"{med} [{low}, {high}]"


def metric_names(rows: Iterable[Row]) -> set[str]:
    """The metric names (``accuracy``, ``loss``, ``rmse`` ...) that appear as ``{split}_{name}`` in rows."""
    names: set[str] = set()
    for row in rows:
        for key in row.get("final") or {}:
            split, _, name = key.partition("_")
            if split in SPLITS and name:
                names.add(name)
    return names


def has_accuracy(rows: Iterable[Row]) -> bool:
    """Whether the rows come from a classification task (they report an accuracy)."""
    return "accuracy" in metric_names(rows)


def headline(rows: Sequence[Row]) -> dict[str, Any]:
    """The headline metric the rows name (the task's: name, direction, label, percent); rows from before
    rows named it lead with accuracy when they have one, else with the loss."""
    for row in rows:
        found = row.get("headline")
        if isinstance(found, dict) and found.get("name"):
            return found
    if has_accuracy(rows):
        return {"name": "accuracy", "higher_is_better": True, "label": "accuracy", "percent": True}
    return {"name": "loss", "higher_is_better": False, "label": "loss", "percent": False}


def _fmt(name: str, lead: dict[str, Any]) -> str:
    percent = name == "accuracy" or (name == lead.get("name") and bool(lead.get("percent")))
    return "{:.2%}" if percent else "{:.4g}"


def columns_for(rows: Sequence[Row]) -> list[Column]:
    """The table's columns for these rows: the final train loss (when there is one), the headline metric on
    each split that has it, then for every other metric found its test value (or its bare key when rows hold
    it unprefixed), then the cost: evaluations, wall time and evaluations per second where rows have them.

    Classification leads with train/val/test accuracy; regression (headline R^2) with val and test loss as
    well, since its loss is the quantity trained.
    """
    names = metric_names(rows)
    lead = headline(rows)
    h = str(lead["name"])
    label = str(lead.get("label") or h)
    cols = [Column("train_loss", "final train loss", "{:.4g}")] if "loss" in names else []
    shown = {h}
    if not lead.get("percent") and h != "loss" and "loss" in names:
        cols += [Column(f"{s}_loss", f"{s} loss", "{:.4g}") for s in ("val", "test")]
        shown.add("loss")
    short = "acc" if h == "accuracy" else label
    cols += [Column(f"{s}_{h}", f"{s} {short}", _fmt(h, lead))
             for s in SPLITS if any(metric(r, f"{s}_{h}") is not None for r in rows)]
    for name in sorted(names - shown - {"loss"}):
        split = "test" if any(metric(r, f"test_{name}") is not None for r in rows) else "val"
        cols.append(Column(f"{split}_{name}", f"{split} {name}", _fmt(name, lead)))
    for bare in ("rmse", "r2", "mae"):  # a task may report these without a split prefix
        if bare not in names and any(metric(r, bare) is not None for r in rows):
            cols.append(Column(bare, bare, "{:.4g}"))
    if any(metric(r, "evaluations") is not None for r in rows):
        cols.append(Column("evaluations", "evaluations", "{:,.0f}"))
    cols.append(Column("wall_time", "wall time (s)", "{:.1f}"))
    if any(metric(r, "evaluations") is not None for r in rows):
        cols.append(Column("evals_per_s", "evaluations/s", "{:,.0f}"))
    return cols


def by_method(rows: Iterable[Row], *, method_key: str = "label") -> dict[tuple[str, str], list[Row]]:
    """Rows keyed by ``(group, method)`` in order of first appearance."""
    out: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        out.setdefault((str(row.get("group") or ""), str(row[method_key])), []).append(row)
    return out


@dataclass(frozen=True)
class Table:
    """A table as plain strings, rendered to Markdown here and to HTML by :mod:`gradfree.reports.html`."""

    header: list[str]
    rows: list[list[str]]
    numeric: list[bool]

    def markdown(self) -> str:
        """GitHub-flavoured Markdown (``|`` in a cell is escaped)."""
        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        lines = ["| " + " | ".join(cell(h) for h in self.header) + " |",
                 "|" + "|".join("---:" if n else "---" for n in self.numeric) + "|"]
        lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in self.rows]
        return "\n".join(lines)


def summary_table(rows: Sequence[Row], *, method_key: str = "label",
                  columns: Sequence[Column] | None = None) -> Table:
    """One line per method (per group and method when rows have groups); cells are median [min, max]."""
    columns = list(columns) if columns is not None else columns_for(rows)
    groups = by_method(rows, method_key=method_key)
    grouped = any(g for g, _ in groups)
    header = (["group"] if grouped else []) + ["method", "seeds"] + [c.label for c in columns]
    numeric = ([False] if grouped else []) + [False, True] + [True] * len(columns)
    body = []
    for (group, method), members in groups.items():
        cells = [median_spread([metric(r, c.key) for r in members], c.fmt) for c in columns]
        body.append(([group] if grouped else []) + [method, str(len(members))] + cells)
    return Table(header, body, numeric)


def results_table(rows: Sequence[Row], *, method_key: str = "label") -> str:
    """The Markdown results table: one line per method, each cell median [min, max] over its seeds."""
    return summary_table(rows, method_key=method_key).markdown()
