"""``gradfree attack`` (add_parser + run) on a digits run: the files it writes and its clear errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from gradfree.attacks.command import add_parser, main, run
from gradfree.errors import ConfigError
from gradfree.victims import load_victim


@pytest.fixture
def run_dir(victim_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``gradfree train`` run folder: the digits victim's own (trained once per session)."""
    monkeypatch.setenv("GRADFREE_CACHE", str(victim_cache))
    folder = load_victim("digits-mlp").folder
    assert folder is not None
    return folder


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gradfree")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["attack", *argv])


def test_attack_a_run_writes_images_table_and_pictures(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = run(_args("--run", str(run_dir), "--method", "square", "--norm", "linf", "--eps", "0.3",
                     "--queries", "300", "--images", "5", "--out", str(out)))
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["method"] == "square" and summary["summary"]["images"] == 5
    assert len(summary["images"]) == 5 and all(r["queries"] <= 300 for r in summary["images"])
    assert "provenance" in summary and summary["options"]["p_init"] is None
    saved = torch.load(out / "adversarial.pt", weights_only=True)
    assert saved["x_adv"].shape == (5, 64) and saved["success"].dtype == torch.bool
    assert int(saved["success"].sum()) == round(summary["summary"]["success_rate"] * 5)
    assert (out / "table.md").read_text().startswith("| attack |")
    for name in ("grid.png", "success_curve.png", "adversarial/0000.png", "adversarial/0004.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ConfigError, match="not empty"):
        run(_args("--run", str(run_dir), "--method", "square", "--eps", "0.3", "--queries", "10", "--images", "2",
                  "--out", str(out)))


def test_targeted_label_only_attack_of_a_registered_victim(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "hsj"
    assert run(_args("--victim", "digits-mlp", "--method", "hopskipjump", "--targeted", "--queries", "400",
                     "--images", "3", "--opt", "iterations=3", "--out", str(out))) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["access"] == "label" and summary["options"]["iterations"] == 3
    assert all(r["target"] is not None and r["target"] != r["label"] for r in summary["images"])


def test_user_mistakes_are_one_line_errors(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attack", "--run", str(run_dir), "--method", "nes", "--queries", "50", "--images", "2",
                 "--out", str(tmp_path / "a")]) == 2  # nes needs --eps
    assert "eps" in capsys.readouterr().err
    assert main(["attack", "--run", str(tmp_path / "missing"), "--method", "square", "--eps", "0.1",
                 "--queries", "5", "--images", "1", "--out", str(tmp_path / "b")]) == 2
    assert "no finished run" in capsys.readouterr().err
