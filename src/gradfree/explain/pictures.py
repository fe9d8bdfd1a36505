"""Pictures of explanations: heat-map grids, AUC against queries, ZO-SmoothGrad's convergence.

matplotlib (Agg backend) is imported inside each function, so importing this module stays cheap; every file
is written atomically (:mod:`gradfree.train.files`). Inputs are shown min-max scaled per image (they are
standardised); a map is its sum over channels, drawn on a diverging scale symmetric about zero (red: evidence
for the explained class, blue: against), each map scaled to its own largest magnitude.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gradfree.explain.base import pixel_maps
from gradfree.train.files import save_bytes


def _figure_bytes(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def as_image(x: Tensor) -> Tensor:
    """One input as ``(C, H, W)``: images as they are, a flat input of square length (the 8x8 digits) as a
    one-channel square, any other flat input as a one-row strip."""
    if x.ndim == 3:
        return x
    flat = x.reshape(-1)
    side = int(round(flat.numel() ** 0.5))
    return flat.reshape(1, side, side) if side * side == flat.numel() else flat.reshape(1, 1, -1)


def _heat(m: Tensor) -> Tensor:
    """A map as an ``(H, W)`` heat array (summed over channels)."""
    return pixel_maps(as_image(m.detach().float().cpu()).unsqueeze(0))[0]


def display_image(x: Tensor) -> Tensor:
    """One input ``(C, H, W)`` (or flat, see :func:`as_image`) as an ``(H, W)`` or ``(H, W, 3)`` array in
    ``[0, 1]`` (min-max scaled)."""
    x = as_image(x.detach().float().cpu())
    x = (x - x.min()) / (x.max() - x.min()).clamp(min=1e-12)
    return x[0] if x.shape[0] == 1 else x[:3].permute(1, 2, 0)


def heatmap_grid(images: Tensor, maps: Mapping[str, Tensor], path: str | Path, *,
                 captions: Sequence[str] | None = None, title: str | None = None) -> Path:
    """A grid with one row per image: the input, then each method's map.

    Args:
        images: ``(N, C, H, W)`` the explained inputs (or flat ones, see :func:`as_image`).
        maps: method name -> maps of the inputs' shape (columns in this order).
        path: the PNG to write.
        captions: one line per row (e.g. the explained class), shown under the input.
        title: the figure's title.
    """
    plt = _pyplot()
    n, cols = images.shape[0], 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(1.5 * cols, 1.5 * n + 0.6), squeeze=False)
    for i in range(n):
        ax = axes[i][0]
        img = display_image(images[i])
        ax.imshow(img.numpy(), cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
        if captions is not None:
            ax.set_xlabel(captions[i], fontsize=7)
        for j, m in enumerate(maps.values(), start=1):
            heat = _heat(m[i])
            scale = float(heat.abs().max()) or 1.0
            axes[i][j].imshow(heat.numpy(), cmap="bwr", vmin=-scale, vmax=scale, interpolation="nearest")
    for j, name in enumerate(["input", *maps], start=0):
        axes[0][j].set_title(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "attribution maps (red: for the explained class, blue: against; each map on its own scale)",
                 fontsize=8)
    out = Path(path)
    save_bytes(_figure_bytes(fig), out)
    return out


def map_png(image: Tensor, heat: Tensor, path: str | Path, *, caption: str = "") -> Path:
    """One input beside its map (of the input's shape, summed over channels), as a small PNG with a colour
    bar."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(4.2, 2.1))
    img = display_image(image)
    left.imshow(img.numpy(), cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
    left.set_title(caption or "input", fontsize=8)
    h = _heat(heat)
    scale = float(h.abs().max()) or 1.0
    shown = right.imshow(h.numpy(), cmap="bwr", vmin=-scale, vmax=scale, interpolation="nearest")
    right.set_title("attribution (score units per pixel)", fontsize=7)
    fig.colorbar(shown, ax=right, fraction=0.046, pad=0.04)
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    out = Path(path)
    save_bytes(_figure_bytes(fig), out)
    return out


def auc_against_queries(points: Mapping[str, Sequence[tuple[float, float, float, float]]], path: str | Path, *,
                        metric: str = "deletion AUC", better: str = "lower is better", title: str = "") -> Path:
    """Median ``metric`` against the query budget per input, one line per method with its spread.

    Args:
        points: method -> ``(queries, median, low, high)`` rows (e.g. the median and range over seeds).
        metric, better: the y axis's label and which way is better.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, rows in points.items():
        rows = sorted(rows)
        q = [r[0] for r in rows]
        ax.plot(q, [r[1] for r in rows], marker="o", markersize=3, label=name)
        ax.fill_between(q, [r[2] for r in rows], [r[3] for r in rows], alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("queries per input (log scale)")
    ax.set_ylabel(f"{metric} ({better})")
    ax.set_title(title or f"{metric} against the query budget", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    out = Path(path)
    save_bytes(_figure_bytes(fig), out)
    return out


def convergence_plot(curves: Mapping[str, Sequence[tuple[float, float, float, float]]], path: str | Path, *,
                     title: str = "") -> Path:
    """Cosine similarity to autograd SmoothGrad (many samples) against the queries per input.

    Args:
        curves: label -> ``(queries, median, low, high)`` rows (e.g. ZO-SmoothGrad with orthogonal and with
            independent directions, and white-box SmoothGrad at the same number of samples).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, rows in curves.items():
        rows = sorted(rows)
        q = [r[0] for r in rows]
        ax.plot(q, [r[1] for r in rows], marker="o", markersize=3, label=name)
        ax.fill_between(q, [r[2] for r in rows], [r[3] for r in rows], alpha=0.15)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("queries (or gradient samples) per input, log scale")
    ax.set_ylabel("cosine similarity to autograd SmoothGrad")
    ax.set_title(title or "ZO-SmoothGrad converges to SmoothGrad", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    out = Path(path)
    save_bytes(_figure_bytes(fig), out)
    return out


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """``(N,)`` cosine similarity of the flattened rows of ``a`` and ``b``."""
    return torch.nn.functional.cosine_similarity(a.reshape(a.shape[0], -1).double(),
                                                 b.reshape(b.shape[0], -1).double(), dim=1)
