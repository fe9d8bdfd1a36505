"""Plots drawn from result rows (never from memory): curves from each row's history, bars and sweeps from its
final metrics.

Every plot takes runner rows (see :mod:`gradfree.reports.summary`), writes one PNG atomically and returns its
path, or ``None`` when the rows hold nothing to draw (e.g. an accuracy plot for a regression task). Methods
keep one colour across all plots of a report. Curves show each seed as a thin line and the median over seeds
(on the x values all seeds share, linearly interpolated) as a thick one; bars and sweep points show the median
with min–max error bars. matplotlib is imported here, lazily, with the non-interactive Agg backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gradfree.reports.summary import Row, by_method, metric, stats
from gradfree.train.files import save_bytes

FINAL_X = {"evaluations": "evaluations", "time": "wall_time", "steps": "steps"}
"""The summary key that gives a run's final x for each history x key."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, bbox_inches="tight")
    save_bytes(buf.getvalue(), path)
    _pyplot().close(fig)
    return path


def colours(methods: Sequence[str]) -> dict[str, Any]:
    """A fixed colour per method name (tab10, then tab20), in the order given."""
    plt = _pyplot()
    palette = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("tab20").colors[1::2])
    return {m: palette[i % len(palette)] for i, m in enumerate(dict.fromkeys(methods))}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def history_points(row: Row, x_key: str, y_key: str, *, positive_x: bool = False) -> list[tuple[float, float]]:
    """``(x, y)`` from the row's validation history, skipping missing values.

    With ``positive_x`` (for a log axis) the starting point is left out too: it sits at 0 evaluations, 0 steps
    and a wall time of microseconds, which a log axis cannot show or would stretch over decades.
    """
    points = []
    for h in row.get("history") or []:
        if h.get("kind", "val") != "val":
            continue
        x, y = h.get(x_key), h.get(y_key)
        if positive_x and (h.get("evaluations") == 0 or h.get("steps") == 0):
            continue
        if _finite(x) and _finite(y) and (x > 0 or not positive_x):
            points.append((float(x), float(y)))
    return points


LOG_SPAN = 20.0
"""An axis goes logarithmic (when left to choose) where its positive values span more than this factor."""


def choose_log_x(rows: Sequence[Row], x_key: str, y_key: str) -> float | None:
    """Where a log x axis should start, or ``None`` for a linear one.

    Log when the history's ``x_key`` values past the starting point span more than :data:`LOG_SPAN`; the
    axis is then symmetric-log, linear from 0 up to the smallest such value, so the starting point (0
    evaluations, 0 updates, ~0 s) stays on the plot.
    """
    xs = [x for r in rows for x, _ in history_points(r, x_key, y_key, positive_x=True)]
    return min(xs) if xs and max(xs) / min(xs) > LOG_SPAN else None


def _log_x_axis(ax: Any, start: float | None) -> None:
    if start is not None:
        ax.set_xscale("symlog", linthresh=start, linscale=0.5)
        _plain_log_labels(ax.xaxis)


def _axis_label(label: str, start: float | None) -> str:
    return _wrap(f"{label}, log scale above {start:.2g}" if start is not None else label)


def _wrap(label: str, width: int = 60) -> str:
    """Long axis labels on two lines, so that they never run past a panel."""
    import textwrap

    return "\n".join(textwrap.wrap(label, width)) if len(label) > width else label


def median_curve(series: Sequence[Sequence[tuple[float, float]]]) -> tuple[list[float], list[float]] | None:
    """The median over series on the x values inside every series' range (linear interpolation)."""
    import numpy as np

    series = [s for s in series if len(s) >= 2]
    if len(series) < 2:
        return None
    low = max(s[0][0] for s in series)
    high = min(s[-1][0] for s in series)
    grid = sorted({x for s in series for x, _ in s if low <= x <= high})
    if len(grid) < 2:
        return None
    ys = np.stack([np.interp(grid, [p[0] for p in s], [p[1] for p in s]) for s in series])
    return list(grid), list(np.median(ys, axis=0))


def _panels(plt: Any, count: int, *, width: float = 6.4, height: float = 4.0, sharey: bool = True
            ) -> tuple[Any, list[Any]]:
    cols = 2 if count == 4 else min(count, 3)
    rows = math.ceil(count / cols)
    if count > 1:  # several panels: each a little smaller, the figure still readable at page width
        width, height = width * 0.75, height * 0.85
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + (1.6 if count > 1 else 0.6), height * rows),
                             squeeze=False, sharey=sharey, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def _plain_log_labels(axis: Any) -> None:
    """Log-axis tick labels as plain numbers (0.4, 2) instead of 4x10^-1."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "1235" else ""))


def _grid(ax: Any) -> None:
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.08)


def _log_ok(values: Sequence[float]) -> bool:
    return bool(values) and min(values) > 0 and max(values) / min(values) > 4


def _percent_axis(axis: Any) -> None:
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(1.0))


def curves(rows: Sequence[Row], *, x_key: str, y_key: str, x_label: str, y_label: str, title: str, path: Path,
           log_y: bool | None = None, percent: bool = False,
           final_key: str | None = None, final_label: str = "") -> Path | None:
    """``y_key`` against ``x_key`` from each row's history: one panel per group, one colour per method.

    Args:
        rows: runner rows (failed rows have no history and are skipped).
        x_key, y_key: history keys, e.g. ``"evaluations"`` / ``"time"`` / ``"steps"`` and ``"val_loss"``.
        log_y: log y axis; ``None`` chooses it when all values are positive and span more than 4x.
        percent: format y as a percentage (accuracies).
        final_key: also mark each method's median final value of this metric (e.g. ``"test_accuracy"``)
            at its median final x, with ``final_label`` in the legend.
    """
    plt = _pyplot()
    groups = by_method(rows)
    panel_names = list(dict.fromkeys(g for g, _ in groups))
    colour = colours([m for _, m in groups])
    log_x = choose_log_x(rows, x_key, y_key)  # e.g. wall times of backprop vs gradient-free runs
    series_by_key = {key: [history_points(r, x_key, y_key) for r in members]
                     for key, members in groups.items()}
    all_y = [y for ss in series_by_key.values() for s in ss for _, y in s]
    if not all_y:
        return None
    fig, axes = _panels(plt, len(panel_names))
    use_log_y = _log_ok(all_y) if log_y is None else log_y
    marked = False
    for ax, panel in zip(axes, panel_names, strict=True):
        for (group, method), members in groups.items():
            if group != panel:
                continue
            series = [s for s in series_by_key[(group, method)] if s]
            c = colour[method]
            many = len(series) > 1
            for s in series:
                xs, ys = zip(*s, strict=True)
                ax.plot(xs, ys, color=c, alpha=0.35 if many else 0.9, linewidth=0.9 if many else 1.8,
                        marker="o" if len(s) == 1 else None, label=None if many else method)
            med = median_curve(series)
            if med is not None:
                ax.plot(*med, color=c, linewidth=2.2, label=method)
            elif many:
                ax.plot([], [], color=c, linewidth=2.2, label=method)
            if final_key is not None:
                xs_final = [metric(r, FINAL_X.get(x_key, x_key)) for r in members]
                ys_final = [metric(r, final_key) for r in members]
                fx, fy = stats(xs_final), stats(ys_final)
                if fx is not None and fy is not None:
                    ax.errorbar([fx[0]], [fy[0]], yerr=[[fy[0] - fy[1]], [fy[2] - fy[0]]], color=c, marker="*",
                                markersize=11, markeredgecolor="black", capsize=3, linestyle="none",
                                label=final_label if not marked else None, zorder=5)
                    marked = True
        _log_x_axis(ax, log_x)
        if use_log_y:
            ax.set_yscale("log")
            _plain_log_labels(ax.yaxis)
        if percent:
            _percent_axis(ax.yaxis)
        ax.set_xlabel(_axis_label(x_label, log_x), fontsize=9 if panel else 10)
        ax.set_title(panel if panel else title, fontsize=10 if panel else 11)
        _grid(ax)
    for ax in axes:
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(y_label)
    _legend(fig, axes, many_seeds=any(len(m) > 1 for m in groups.values()))
    if panel_names != [""]:
        fig.suptitle(title)
    return _save(fig, path)


def _legend(fig: Any, axes: Sequence[Any], *, many_seeds: bool) -> None:
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    title = "method (thin: seeds, thick: median)" if many_seeds else "method"
    if len(axes) == 1 and len(handles) <= 5:
        axes[0].legend(handles.values(), handles.keys(), title=title, fontsize=8, title_fontsize=8)
    else:
        fig.legend(handles.values(), handles.keys(), title=title, fontsize=8, title_fontsize=8,
                   loc="outside right center")


def final_bars(rows: Sequence[Row], *, metrics: Sequence[tuple[str, str]], y_label: str, title: str,
               path: Path, percent: bool = False) -> Path | None:
    """Median final value per method with min–max error bars; one panel per metric, grouped bars per group.

    Args:
        metrics: ``(key, panel title)`` pairs, e.g. ``[("train_loss", "train"), ("test_loss", "test")]``.
    """
    plt = _pyplot()
    groups = by_method(rows)
    metrics = [(k, t) for k, t in metrics if any(metric(r, k) is not None for r in rows)]
    if not metrics or not groups:
        return None
    group_names = list(dict.fromkeys(g for g, _ in groups))
    methods = list(dict.fromkeys(m for _, m in groups))
    colour = colours(methods)
    width = 0.8 / len(methods) if len(group_names) > 1 else 0.7
    fig, axes = _panels(plt, len(metrics), width=max(5.0, 1.0 + 0.7 * len(groups)), sharey=False)
    for ax, (key, panel_title) in zip(axes, metrics, strict=True):
        for j, method in enumerate(methods):
            for i, group in enumerate(group_names):
                found = stats([metric(r, key) for r in groups.get((group, method), [])])
                if found is None:
                    continue
                med, low, high = found
                x = i + (j - (len(methods) - 1) / 2) * width if len(group_names) > 1 else j
                ax.bar(x, med, width=width * 0.92, color=colour[method], label=method if i == 0 else None,
                       yerr=[[med - low], [high - med]], capsize=3, ecolor="black", error_kw={"linewidth": 1})
                ax.annotate(f"{med:.1%}" if percent else f"{med:.3g}", (x, high), textcoords="offset points",
                            xytext=(0, 2), ha="center", fontsize=7)
        if len(group_names) > 1:
            ax.set_xticks(range(len(group_names)), group_names)
        else:
            ax.set_xticks(range(len(methods)), methods, rotation=30 if len(methods) > 4 else 0, ha="right"
                          if len(methods) > 4 else "center")
        if percent:
            _percent_axis(ax.yaxis)
        ax.set_title(panel_title, fontsize=10)
        ax.set_ylabel(y_label)
        ax.grid(True, axis="y", alpha=0.3)
    if len(group_names) > 1:
        _legend(fig, axes, many_seeds=False)
    fig.suptitle(title)
    return _save(fig, path)


def sweep(rows: Sequence[Row], *, x_of: Callable[[Row], float | None], x_label: str,
          panels: Sequence[tuple[str, str, bool]], title: str, path: Path, log_x: bool | None = None
          ) -> Path | None:
    """Final metrics against a value that differs between trials (batch size, budget ...), per method.

    Args:
        x_of: the trial's x (e.g. its batch size from its spec); rows giving ``None`` are left out.
        panels: ``(metric key, y label, as percent)`` per panel, e.g. ``("test_accuracy", "test accuracy",
            True)`` or ``("steps_per_s", "updates per second", False)``.
    """
    plt = _pyplot()
    methods = list(dict.fromkeys(str(r["label"]) for r in rows))
    panels = [p for p in panels if any(metric(r, p[0]) is not None and x_of(r) is not None for r in rows)]
    if not panels:
        return None
    colour = colours(methods)
    xs_all = [x for r in rows if (x := x_of(r)) is not None]
    use_log_x = _log_ok(xs_all) if log_x is None else log_x
    fig, axes = _panels(plt, len(panels), width=5.2, sharey=False)
    for ax, (key, y_label, percent) in zip(axes, panels, strict=True):
        for method in methods:
            by_x: dict[float, list[float | None]] = {}
            for r in rows:
                x = x_of(r)
                if r["label"] == method and x is not None:
                    by_x.setdefault(x, []).append(metric(r, key))
            points = [(x, s) for x in sorted(by_x) if (s := stats(by_x[x])) is not None]
            if not points:
                continue
            xs = [x for x, _ in points]
            med = [s[0] for _, s in points]
            err = [[s[0] - s[1] for _, s in points], [s[2] - s[0] for _, s in points]]
            ax.errorbar(xs, med, yerr=err, color=colour[method], marker="o", capsize=3, linewidth=1.6,
                        label=method)
        if use_log_x:
            ax.set_xscale("log")
            ax.set_xticks(sorted(set(xs_all)), [f"{x:g}" for x in sorted(set(xs_all))])
            ax.minorticks_off()
        if percent:
            _percent_axis(ax.yaxis)
        ax.set_xlabel(_wrap(x_label, 45))
        ax.set_ylabel(y_label)
        _grid(ax)
    _legend(fig, axes, many_seeds=False)
    fig.suptitle(f"{title} ({'median, min–max over seeds'})")
    return _save(fig, path)


def curves_by_group(rows: Sequence[Row], *, group_value: Callable[[str], float | None], group_label: str,
                    x_axes: Sequence[tuple[str, str]], y_key: str, y_label: str, title: str, path: Path,
                    percent: bool = False) -> Path | None:
    """One column per method, one row per x axis; one line per group (median over seeds), coloured by value.

    Shows how a swept setting (the group, e.g. ``batch=64``) changes each method's curve: against updates
    and against seconds, say, when ``x_axes`` is ``[("steps", "updates"), ("time", "seconds")]`` (history key,
    axis label; :func:`choose_log_x` picks the scale).
    """
    plt = _pyplot()
    groups = by_method(rows)
    methods = list(dict.fromkeys(m for _, m in groups))
    values = {g: group_value(g) for g, _ in groups}
    ordered = sorted((v, g) for g, v in values.items() if v is not None)
    if not ordered or not any(history_points(r, "evaluations", y_key) for r in rows):
        return None
    cmap = plt.get_cmap("viridis")
    shade = {g: cmap(i / max(len(ordered) - 1, 1) * 0.9) for i, (_, g) in enumerate(ordered)}
    fig, axes = plt.subplots(len(x_axes), len(methods), figsize=(4.6 * len(methods) + 1.2, 3.6 * len(x_axes)),
                             squeeze=False, sharey=True, layout="constrained")
    for i, (x_key, x_label) in enumerate(x_axes):
        log_x = choose_log_x(rows, x_key, y_key)
        for j, method in enumerate(methods):
            ax = axes[i][j]
            for _, group in ordered:
                series = [history_points(r, x_key, y_key) for r in groups.get((group, method), [])]
                series = [s for s in series if s]
                if not series:
                    continue
                med = median_curve(series)
                xs, ys = med if med is not None else zip(*series[0], strict=True)
                ax.plot(list(xs), list(ys), color=shade[group], linewidth=1.8, label=group,
                        marker="o" if len(list(xs)) == 1 else None)
            _log_x_axis(ax, log_x)
            if percent:
                _percent_axis(ax.yaxis)
            ax.set_xlabel(_axis_label(x_label, log_x))
            if j == 0:
                ax.set_ylabel(y_label)
            if i == 0:
                ax.set_title(method)
            _grid(ax)
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    order = [g for _, g in ordered if g in handles]
    fig.legend([handles[g] for g in order], order, title=group_label, fontsize=8, title_fontsize=8,
               loc="outside right center")
    fig.suptitle(title)
    return _save(fig, path)


def loss_curves(runs: Sequence[Row], *, x_key: str, x_label: str, path: Path, title: str,
                y_key: str = "val_loss", y_label: str = "validation loss (cross-entropy)") -> Path | None:
    """Validation loss against ``x_key``: :func:`curves` with the demo's defaults."""
    return curves(runs, x_key=x_key, y_key=y_key, x_label=x_label, y_label=y_label, title=title, path=path)
