"""`gradfree train --ray-address local`: a population strategy trained with generations scored on Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradfree.cli import main

pytest.importorskip("ray")


def test_train_on_local_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import ray

    out = tmp_path / "run"
    try:
        code = main(["train", "--optimizer", "open-es", "--opt", "popsize=8", "--budget", "400", "--eval-every",
                     "200", "--model", "mlp:64-8-10", "--ray-address", "local", "--ray-actors", "2",
                     "--out", str(out)])
    finally:
        ray.shutdown()
    assert code == 0
    assert "open-es on digits (generations on Ray): stopped by budget after 400 evaluations" in capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert result["stopped"] == "budget" and result["evaluations"] == 400
    assert json.loads((out / "config.json").read_text())["ray"] == {"address": "local", "actors": 2}
    assert 0.0 <= result["final"]["test_accuracy"] <= 1.0


def test_ray_needs_a_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--optimizer", "zo-adam", "--budget", "100", "--ray-address", "local"]) == 2
    assert "needs a population strategy" in capsys.readouterr().err


def test_ray_needs_the_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--optimizer", "open-es", "--budget", "100", "--ray-address", "local",
                 "--device", "cuda"]) == 2
    err = capsys.readouterr().err  # no CUDA here, or a CUDA machine: either way one clear line
    assert "CPU actors" in err or "no CUDA device" in err
