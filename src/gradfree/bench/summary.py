"""Median and spread over seeds, and the Markdown results table."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

COLUMNS: list[tuple[str, str, str]] = [
    ("train_loss", "final train loss", "{:.4f}"),
    ("val_accuracy", "val acc", "{:.2%}"),
    ("test_accuracy", "test acc", "{:.2%}"),
    ("evaluations", "evaluations", "{:,.0f}"),
    ("wall_time", "wall time (s)", "{:.1f}"),
]


def median_spread(values: Sequence[float | None], fmt: str) -> str:
    """``median [min, max]`` over seeds (just the value for one seed)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return "—"
    med = fmt.format(statistics.median(vals))
    if len(vals) == 1:
        return med
    return f"{med} [{fmt.format(min(vals))}, {fmt.format(max(vals))}]"


def results_table(rows: Sequence[dict[str, Any]], *, method_key: str = "method") -> str:
    """A Markdown table, one line per method, each cell ``median [min, max]`` over its seeds."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row[method_key]].append(row)
    head = "| method | seeds | " + " | ".join(label for _, label, _ in COLUMNS) + " |"
    rule = "|---|---:|" + "---:|" * len(COLUMNS)
    lines = [head, rule]
    for method, group in groups.items():
        cells = [median_spread([r.get(key) for r in group], fmt) for key, _, fmt in COLUMNS]
        lines.append(f"| {method} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
