"""Pictures people look at: adversarial image grids and success-rate-against-queries curves.

Both write PNG files with matplotlib's Agg backend (imported here, lazily, so ``import gradfree`` stays
fast). Every grid cell names what it shows: the original with its true label, each attack's adversarial
image with the label the model gives it, and the perturbation magnified so that its largest pixel change
spans the grey range (mid-grey is no change; the factor is in the title).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from gradfree.train.files import save_bytes


class Shown(Protocol):
    """What a grid reads of a result: an :class:`~gradfree.attacks.base.AttackResult` or a saved subset."""

    x: Tensor
    x_adv: Tensor
    labels: Tensor
    targets: Tensor | None
    predicted: Tensor
    success: Tensor
    l2: Tensor
    linf: Tensor

    @property
    def num_images(self) -> int: ...


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _as_image(x: Tensor) -> np.ndarray:
    """One input as an ``(H, W)`` grey or ``(H, W, 3)`` colour array in ``[0, 1]``."""
    x = x.detach().cpu().to(torch.float32)
    if x.ndim == 1:  # flat inputs: square if they can be
        side = math.isqrt(x.numel())
        x = x.reshape(1, side, side) if side * side == x.numel() else x.reshape(1, 1, -1)
    if x.shape[0] == 1:
        return x[0].clamp(0, 1).numpy()
    return x[:3].permute(1, 2, 0).clamp(0, 1).numpy()


def _magnified(delta: Tensor) -> tuple[np.ndarray, float]:
    """The perturbation mapped to ``0.5 + delta * factor`` with its largest ``|delta|`` at 0 or 1."""
    peak = float(delta.abs().max())
    factor = 0.5 / peak if peak > 0 else 1.0
    return _as_image(0.5 + delta * factor), factor


def _png(fig: Any, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    save_bytes(buffer.getvalue(), path)
    return path


def adversarial_grid(results: Mapping[str, Shown], path: str | Path, *, images: int = 6,
                     class_names: Sequence[str] | None = None, title: str | None = None) -> Path:
    """A grid: one row per image; the original, then for each attack its adversarial image and perturbation.

    Args:
        results: attack label -> result, all on the same images (the first gives the originals).
        path: the PNG to write (atomically).
        images: rows (the first images of the batch).
        class_names: names of the labels (default: the label numbers).
        title: the figure's title.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    first = next(iter(results.values()))
    n = min(images, first.num_images)
    cols = 1 + 2 * len(results)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.75 * n + 0.4), squeeze=False)

    def name(label: int) -> str:
        return class_names[label] if class_names is not None else str(label)

    for i in range(n):
        ax = axes[i][0]
        img = _as_image(first.x[i])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"original\ntrue: {name(int(first.labels[i]))}", fontsize=7)
        for j, (label, r) in enumerate(results.items()):
            adv_ax, delta_ax = axes[i][1 + 2 * j], axes[i][2 + 2 * j]
            img = _as_image(r.x_adv[i])
            adv_ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            verdict = "fooled" if bool(r.success[i]) else "failed"
            target = f" (target {name(int(r.targets[i]))})" if r.targets is not None else ""
            adv_ax.set_title(f"{label}: {verdict}\npredicted: {name(int(r.predicted[i]))}{target}", fontsize=7)
            delta = (r.x_adv[i] - r.x[i]).detach().cpu()
            pic, factor = _magnified(delta)
            delta_ax.imshow(pic, cmap="gray" if pic.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            delta_ax.set_title(f"perturbation x{factor:.3g}\nL2 {float(r.l2[i]):.2f}, Linf {float(r.linf[i]):.3f}",
                               fontsize=7)
    for row in axes:
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    return _png(fig, Path(path))


def success_curves(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], path: str | Path, *,
                   title: str = "Success rate against query budget") -> Path:
    """Success rate (%) against queries per image (log scale), one line per attack.

    Args:
        curves: label -> (query budgets, success rates in [0, 1]) — e.g. from
            :func:`gradfree.attacks.metrics.success_curve`.
        path: the PNG to write (atomically).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for label, (budgets, rates) in curves.items():
        ax.plot(list(budgets), [100 * r for r in rates], marker=".", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("queries per image (log scale)")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-2, 102)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _png(fig, Path(path))


def query_grid(max_queries: int, *, points: int = 40) -> list[int]:
    """Roughly log-spaced query budgets from 1 to ``max_queries`` (for :func:`success_curves`)."""
    values = np.unique(np.round(np.logspace(0, math.log10(max(max_queries, 1)), points)).astype(int))
    return [int(v) for v in values]
