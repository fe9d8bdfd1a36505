"""The command line: listing, training, and one clear line (exit 2) for user mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradfree.cli import main


def test_list_shows_every_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ["zo-adam [zeroth-order]", "mezo [zeroth-order]", "adam [gradient]", "rmsprop [gradient]",
                 "digits", "mnist", "mlp", "gaussian", "coordinate", "sep-cma"]:
        assert name in out


def test_train_writes_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["train", "--task", "digits", "--model", "mlp:64-16-10", "--optimizer", "zo-sgd", "--lr", "1e-3",
                 "--opt", "num_directions=8", "--opt", "momentum=0.9", "--budget", "900", "--eval-every", "300",
                 "--seed", "1", "--out", str(out), "--no-progress"])
    assert code == 0
    assert "zo-sgd on digits: stopped by budget after 900 evaluations" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["options"] == {"num_directions": 8, "momentum": 0.9, "lr": 1e-3}


@pytest.mark.parametrize("argv, message", [
    (["train", "--optimizer", "zo-adamm", "--budget", "10"], "unknown optimizer 'zo-adamm'. Did you mean zo-adam"),
    (["train", "--task", "cifar", "--budget", "10"], "unknown task 'cifar'"),
    (["train"], "set an evaluation budget, a time limit, or both"),
    (["train", "--model", "mlp:64-x-10", "--budget", "10"], "bad MLP widths"),
    (["train", "--model", "mlp:32-10", "--budget", "10"], "does not accept inputs of shape (64,)"),
    (["train", "--model", "mlp:64-7", "--budget", "10"], "the task has 10 classes"),
    (["train", "--opt", "nonsense=1", "--budget", "10"], "takes no option nonsense"),
    (["train", "--optimizer", "adam", "--opt", "num_directions=3", "--budget", "10"], "takes no option"),
    (["train", "--resume", "--budget", "10"], "--resume needs --out"),
    (["train", "--device", "cuda", "--budget", "10"], "no CUDA device"),
])
def test_user_mistakes_give_one_clear_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_argument_types_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["train", "--batch-size", "0"], ["train", "--opt", "novalue"], ["train", "--budget", "-3"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_existing_output_folder_is_not_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["train", "--budget", "100", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_mnist_offline_without_files_says_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GRADFREE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GRADFREE_DATA", raising=False)
    code = main(["train", "--task", "mnist", "--budget", "10", "--data-dir", str(tmp_path / "empty"),
                 "--no-download"])
    assert code == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and "GRADFREE_DATA" in err and "--data-dir" in err


@pytest.mark.parametrize("command", ["detect", "attack", "explain"])
def test_application_commands_are_wired_in(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and f"usage: gradfree {command}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main([command])  # its required arguments are missing: one line, status 2
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1 and "required" in err


def test_list_names_every_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for family in ("optimizers:", "tasks:", "suites:", "kinds:", "attacks:", "explainers:"):
        assert family in out
    for name in ("car-detection", "zoo-adam", "zo-smoothgrad", "attacks-mnist", "explain-cifar10", "detection"):
        assert name in out


def test_options_read_literals_and_any_case_booleans() -> None:
    """--opt values are Python literals, else strings; true/false in any case are booleans, never the
    (truthy) strings."""
    from gradfree.cli import parse_option

    assert parse_option("steps=8") == ("steps", 8) and parse_option("lr=1e-3") == ("lr", 1e-3)
    assert parse_option("gradient=masks") == ("gradient", "masks")
    assert parse_option("scales=(1, 2)") == ("scales", (1, 2))
    for text, value in (("complete=true", True), ("complete=False", False), ("complete=FALSE", False)):
        assert parse_option(text) == ("complete", value)
