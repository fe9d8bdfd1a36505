"""Checkpoints are data, never code: a crafted checkpoint runs nothing, and pickled adapter state needs trust."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from gradfree.cli import main
from gradfree.errors import UnsafeFileError
from gradfree.strategies.adapters.wrapped import from_blob, pickled_state_allowed, to_blob
from gradfree.train.files import load_checkpoint

ARGS = ["train", "--task", "digits", "--model", "mlp:64-8-10", "--optimizer", "zo-adam", "--budget", "400",
        "--eval-every", "100", "--no-progress"]


class Payload:
    """What an attacker pickles: unpickling it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_is_refused_in_one_line_and_runs_nothing(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out, marker = tmp_path / "run", tmp_path / "pwned"
    assert main([*ARGS, "--out", str(out)]) == 0
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    checkpoint["run_config"]["note"] = Payload(marker)
    torch.save(checkpoint, out / "checkpoint.pt")
    capsys.readouterr()
    assert main([*ARGS, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert not marker.exists(), "the checkpoint ran code"
    assert len(err.strip().splitlines()) == 1 and "not plain data" in err and "Traceback" not in err


def test_our_checkpoints_load_as_plain_data(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main([*ARGS, "--optimizer", "sep-cma", "--out", str(out)]) == 0
    checkpoint = load_checkpoint(out / "checkpoint.pt")  # weights_only=True
    assert checkpoint["optimizer"]["gradfree"]["state"]["strategy"] == "SepCMAES"
    assert main([*ARGS, "--optimizer", "sep-cma", "--out", str(out), "--resume"]) == 0


def test_a_pickled_adapter_state_loads_only_when_trusted(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    blob = to_blob(Payload(marker))
    with pytest.raises(UnsafeFileError, match="--trust-checkpoint"):
        from_blob(blob)
    assert not marker.exists()
    with pickled_state_allowed():
        from_blob(blob)  # the user said they trust it: now it runs
    assert marker.exists()


def test_an_adapter_run_resumes_only_with_trust_checkpoint(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("cma")
    out = tmp_path / "run"
    args = [*ARGS, "--optimizer", "pycma", "--opt", "popsize=8", "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    assert "--trust-checkpoint" in capsys.readouterr().err
    assert main([*args, "--resume", "--trust-checkpoint"]) == 0
