"""``gradfree explain`` end to end on a small trained run (scikit-learn's digits: offline, seconds)."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pytest
import torch

from gradfree.errors import ConfigError
from gradfree.explain.command import add_parser, run


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gradfree.run import RunSpec, train_run

    folder = tmp_path_factory.mktemp("run") / "digits"
    train_run(RunSpec(task="digits", model="mlp:64-32-10", optimizer="adam", budget=100, batch_size=64,
                      eval_every=100, device="cpu"), out_dir=folder, progress=False)
    return folder


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gradfree")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_explain_writes_the_maps_and_the_scores(digits_run: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "explained"
    args = _parse(["explain", "--run", str(digits_run), "--method", "zo-smoothgrad", "--images", "3",
                   "--queries", "101", "--out", str(out), "--opt", "noise=0.2", "--threads", "1"])
    assert run(args) == 0
    assert "deletion AUC" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "maps").iterdir()) == ["image_000.png", "image_001.png", "image_002.png"]
    assert (out / "grid.png").stat().st_size > 0 and (out / "scores.md").read_text().count("\n") == 6
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(int(r["queries"]) == 101 for r in rows)
    assert all(0 <= float(r["deletion_auc"]) <= 1 and 0 <= float(r["insertion_auc"]) <= 1 for r in rows)
    saved = torch.load(out / "maps.pt", weights_only=True)
    assert saved["maps"].shape == (3, 64) and saved["queries"].tolist() == [101] * 3


def test_explain_refuses_unknown_methods_and_folders_clearly(digits_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown explanation method"):
        run(_parse(["explain", "--run", str(digits_run), "--method", "zo-smoothgrd", "--out", str(tmp_path)]))
    from gradfree.errors import GradfreeError

    with pytest.raises(GradfreeError, match="no finished run"):
        run(_parse(["explain", "--run", str(tmp_path), "--out", str(tmp_path / "o")]))
