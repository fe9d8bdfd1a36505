"""Pictures are written as PNGs people can open: grids of the right size, plots with their curves."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from gradfree.explain.pictures import auc_against_queries, convergence_plot, heatmap_grid, map_png


def test_a_heatmap_grid_has_a_row_per_image_and_a_column_per_method(tmp_path: Path) -> None:
    x = torch.rand(3, 3, 8, 8)
    maps = {"zo-smoothgrad": torch.randn(3, 3, 8, 8), "occlusion": torch.randn(3, 3, 8, 8)}
    out = heatmap_grid(x, maps, tmp_path / "grid.png", captions=["a", "b", "c"])
    with Image.open(out) as img:
        width, height = img.size
    assert width > height * 0.8  # three columns, three rows (and a title)
    flat = heatmap_grid(torch.rand(2, 64), {"m": torch.randn(2, 64)}, tmp_path / "flat.png")
    assert flat.stat().st_size > 0
    assert map_png(x[0], maps["occlusion"][0], tmp_path / "one.png", caption="test #0").stat().st_size > 0


def test_plots_draw_each_method_against_the_budget(tmp_path: Path) -> None:
    rows = {"zo-ig": [(100, 0.2, 0.18, 0.22), (1000, 0.1, 0.09, 0.12)], "rise": [(100, 0.3, 0.3, 0.3)]}
    for path in (auc_against_queries(rows, tmp_path / "auc.png"), convergence_plot(rows, tmp_path / "conv.png")):
        with Image.open(path) as img:
            assert img.size[0] > 300 and img.size[1] > 200
