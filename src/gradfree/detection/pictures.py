"""Pictures of a detector at work: images with predicted boxes (and scores) drawn over the true ones, and
precision-recall curves. matplotlib is imported lazily, with the non-interactive Agg backend; files are
written atomically (:mod:`gradfree.train.files`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gradfree.data.images import Letterbox
from gradfree.train.files import save_bytes

TRUE_COLOUR = "#2ca02c"
PREDICTED_COLOUR = "#ff7f0e"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, *, dpi: int = 110) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    save_bytes(buf.getvalue(), path)
    _pyplot().close(fig)
    return path


@dataclass(frozen=True)
class Panel:
    """One image with its boxes, all in the image's own pixels.

    Attributes:
        image: ``(3, H, W)``, uint8 or float in [0, 1].
        truths: true boxes ``(k, 4)`` (``None``: unknown, e.g. a new image given to ``gradfree detect``).
        boxes: predicted boxes ``(m, 4)``.
        scores: their scores ``(m,)``.
        title: shown above the image.
    """

    image: Tensor
    truths: Tensor | None
    boxes: Tensor
    scores: Tensor
    title: str = ""


def _pixels(image: Tensor) -> np.ndarray:
    array = image.detach().cpu()
    if array.dtype != torch.uint8:
        array = (array.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return array.permute(1, 2, 0).numpy()


def draw_panel(ax: Any, panel: Panel, *, score_threshold: float = 0.25) -> None:
    """Draw ``panel`` on the axes ``ax``: true boxes in green, predictions scoring at least
    ``score_threshold`` in orange with their score."""
    from matplotlib.patches import Rectangle

    ax.imshow(_pixels(panel.image))
    if panel.truths is not None:
        for x1, y1, x2, y2 in panel.truths.tolist():
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=TRUE_COLOUR, linewidth=2.0))
    for (x1, y1, x2, y2), s in zip(panel.boxes.tolist(), panel.scores.tolist(), strict=True):
        if s < score_threshold:
            continue
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=PREDICTED_COLOUR, linewidth=1.2,
                               linestyle="--"))
        ax.text(x1, y1 - 2, f"{s:.2f}", color="black", fontsize=6,
                bbox={"facecolor": PREDICTED_COLOUR, "edgecolor": "none", "pad": 0.5, "alpha": 0.85})
    ax.set_title(panel.title, fontsize=7)
    ax.set_axis_off()


def detection_grid(panels: Sequence[Panel], path: str | Path, *, columns: int = 3, score_threshold: float = 0.25,
                   title: str = "") -> Path:
    """A PNG grid of ``panels`` (see :func:`draw_panel`), with a legend saying which colour is which."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    columns = max(1, min(columns, len(panels)))
    rows = max(1, math.ceil(len(panels) / columns))
    first = panels[0].image if panels else torch.zeros(3, 1, 1)
    aspect = first.shape[1] / max(first.shape[2], 1)
    width = 3.6 if columns > 1 else 6.0
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, width * aspect * rows + 0.8), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, panel in zip(axes.flat, panels, strict=False):
        draw_panel(ax, panel, score_threshold=score_threshold)
    handles = [Line2D([], [], color=TRUE_COLOUR, linewidth=2.0, label="true box")] if any(
        p.truths is not None for p in panels) else []
    handles.append(Line2D([], [], color=PREDICTED_COLOUR, linewidth=1.2, linestyle="--",
                          label=f"predicted (score >= {score_threshold:g})"))
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return _save(fig, Path(path))


def canvas_panel(image: Tensor, frame: Letterbox, truths: Tensor, boxes: Tensor, scores: Tensor, *,
                 title: str = "") -> Panel:
    """A panel of a letterboxed canvas cropped to the picture (the grey bands cut off), boxes in canvas pixels
    moved with the crop."""
    x0, y0 = int(frame.pad_x), int(frame.pad_y)
    w, h = round(frame.width * frame.scale_x), round(frame.height * frame.scale_y)
    shift = torch.tensor([x0, y0, x0, y0], dtype=boxes.dtype, device=boxes.device)
    return Panel(image[:, y0 : y0 + h, x0 : x0 + w], truths - shift.to(truths.dtype), boxes - shift, scores, title)


def precision_recall_plot(curves: dict[str, tuple[Any, Any]], path: str | Path, *, title: str = "",
                          iou: float = 0.5) -> Path:
    """Precision against recall, one line per label (``{label: (recall, precision)}``, e.g. from
    :meth:`~gradfree.tasks.detection_metrics.APResult.curve`), each made monotone as AP interpolates it."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 4.0))
    for label, (recall, precision) in curves.items():
        r, p = np.asarray(recall, dtype=float), np.asarray(precision, dtype=float)
        if r.size == 0:
            continue
        envelope = np.maximum.accumulate(p[::-1])[::-1]
        ax.step(np.concatenate([[0.0], r]), np.concatenate([[envelope[0]], envelope]), where="pre", label=label)
    ax.set_xlabel(f"recall (IoU >= {iou:g})")
    ax.set_ylabel("precision (interpolated)")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=7, loc="lower left")
    ax.set_title(title or "precision-recall", fontsize=9)
    return _save(fig, Path(path), dpi=130)
