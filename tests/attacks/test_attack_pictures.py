"""The pictures: a grid of originals, adversarial images and magnified perturbations, and success curves."""

from __future__ import annotations

from pathlib import Path

import torch
from attack_models import images, linear_model

from gradfree.attacks import build_attack
from gradfree.attacks.metrics import success_curve
from gradfree.attacks.pictures import adversarial_grid, query_grid, success_curves


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_grid_and_curves_are_written(tmp_path: Path) -> None:
    model = linear_model()
    x = images(4)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    square = build_attack("square")(model, x, y, norm="linf", eps=0.1, budget=200)
    nes = build_attack("nes")(model, x, y, targets=(y + 1) % 5, norm="linf", eps=0.1, budget=500)
    grid = adversarial_grid({"square": square, "nes": nes}, tmp_path / "grid.png", images=3,
                            class_names=[f"c{i}" for i in range(5)], title="linear model, eps 0.1")
    width, height = _png_size(grid)
    assert width > 300 and height > 200
    budgets = query_grid(500)
    assert budgets[0] == 1 and budgets[-1] == 500 and budgets == sorted(set(budgets))
    curves = success_curves({"square": (budgets, success_curve(square, budgets)),
                             "nes": (budgets, success_curve(nes, budgets))}, tmp_path / "curves.png")
    assert _png_size(curves)[0] > 300
    colour = build_attack("square")(linear_model(shape=(3, 4, 4)), images(2, shape=(3, 4, 4)),
                                    torch.zeros(2, dtype=torch.int64), norm="linf", eps=0.1, budget=20)
    assert _png_size(adversarial_grid({"square": colour}, tmp_path / "rgb.png"))[0] > 100
