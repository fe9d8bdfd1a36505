"""Plots drawn from result rows (never from memory): loss against evaluations and against wall time.

matplotlib is imported here, lazily, with the non-interactive Agg backend.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradfree.train.files import save_bytes


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    save_bytes(buf.getvalue(), path)


def loss_curves(runs: Sequence[dict[str, Any]], *, x_key: str, x_label: str, path: Path,
                title: str, y_key: str = "val_loss", y_label: str = "validation loss (cross-entropy)") -> Path:
    """One line per run (colour per method, one style per seed) of ``y_key`` against ``x_key``.

    Args:
        runs: rows with ``method``, ``seed`` and ``history`` (the metrics-log rows of kind "val").
        x_key: ``"evaluations"`` or ``"time"``.
        path: the PNG to write.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours: dict[str, Any] = {}
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_method[run["method"]].append(run)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (method, method_runs) in enumerate(by_method.items()):
        colours[method] = cycle[i % len(cycle)]
        for j, run in enumerate(method_runs):
            points = [(r[x_key], r[y_key]) for r in run["history"]
                      if r.get("kind") == "val" and r.get(y_key) is not None and r.get(x_key) is not None]
            if x_key == "time":  # the first validation is at t=0, which a log axis cannot show
                points = [p for p in points if p[0] > 0]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, color=colours[method], alpha=0.85, linewidth=1.4,
                    label=method if j == 0 else None)
    ax.set_yscale("log")
    if x_key == "time":
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="method (one line per seed)")
    _save(fig, path)
    plt.close(fig)
    return path
