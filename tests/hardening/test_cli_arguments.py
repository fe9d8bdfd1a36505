"""Every argument is validated up front: a mistake is one line on stderr and exit status 2, never a traceback;
settings a task would ignore are errors, and a batch larger than the split is clamped with a warning."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradfree.cli import main
from gradfree.data.mnist import _train_val_indices
from gradfree.errors import ConfigError, GradfreeWarning
from gradfree.optim import build_optimizer
from gradfree.tasks import build_task
from gradfree.train import TrainConfig, Trainer

BASE = ["train", "--task", "digits", "--model", "mlp:64-8-10", "--no-progress"]


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse exits
            code = int(exit_.code or 0)
    return code, err.getvalue()


@pytest.mark.parametrize("extra, message", [
    (["--time", "nan", "--budget", "10"], "--time: expected a finite positive number"),
    (["--lr", "nan", "--budget", "10"], "--lr: expected a finite positive number"),
    (["--lr", "-1", "--budget", "10"], "--lr: expected a finite positive number"),
    (["--device", "tpu", "--budget", "10"], "unknown device 'tpu'"),
    (["--train-subset", "50", "--budget", "10"], "digits has a fixed"),
    (["--budget", "10", "--trust-checkpoint"], "--trust-checkpoint applies to --resume only"),
])
def test_bad_arguments_are_one_line(extra: list[str], message: str) -> None:
    code, err = _run([*BASE, *extra])
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_bad_output_folders_are_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, message in ((afile, "is a file, not a folder"), (afile / "sub", "is a file"),
                         (tmp_path / "none", "nothing to resume")):
        code, err = _run([*BASE, "--budget", "10", "--out", str(out), *(["--resume"] if "none" in str(out) else [])])
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "none").exists()  # nothing created for a refused run


def test_a_train_subset_smaller_than_the_classes_is_refused() -> None:
    labels = torch.arange(100) % 10
    with pytest.raises(ConfigError, match="fewer images than the 10 classes"):
        _train_val_indices(labels, val_size=20, train_subset=5, stratified=True, generator=torch.Generator())


def test_a_batch_larger_than_the_split_is_clamped_with_a_warning() -> None:
    task = build_task("digits")
    model = torch.nn.Sequential(torch.nn.Linear(64, 10))
    with pytest.warns(GradfreeWarning, match="larger than the training split"):
        trainer = Trainer(task, model, build_optimizer("adam", model.parameters()),
                          TrainConfig(budget=2, batch_size=100_000, progress=False))
    assert trainer.batches.batch_size is None
    code, err = _run([*BASE, "--optimizer", "adam", "--budget", "2", "--batch-size", "100000"])
    assert code == 0 and err.strip() == ("gradfree: warning: batch size 100000 is larger than the training split "
                                         "(1078 rows): every step uses the whole split")


FLAGS = st.sampled_from(["--task", "--model", "--optimizer", "--lr", "--opt", "--budget", "--time", "--batch-size",
                         "--eval-every", "--patience", "--seed", "--train-subset", "--augment", "--device",
                         "--threads", "--resume", "--no-download", "--nonsense"])
VALUES = st.one_of(st.sampled_from(["digits", "synthetic-regression", "mnist", "mlp:64-8-10", "mlp:10-4-1",
                                    "lenet", "zo-adam", "adam", "rso", "sep-cma", "0", "-3", "7", "40", "1e-2",
                                    "nan", "inf", "full", "cpu", "cuda:9", "shift:1", "lr=0.1", "bogus=1", "x"]),
                   st.text(alphabet="abc=:-.0123456789", max_size=6))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(FLAGS, VALUES), max_size=5))
def test_the_train_parser_runs_or_fails_in_one_line(pairs: list[tuple[str, str]]) -> None:
    """Generated argument lists: either the run happens (exit 0), or exit 2 with exactly one line on stderr."""
    argv = ["train", "--no-progress", "--budget", "30", "--no-download"]
    for flag, value in pairs:
        argv += [flag] if flag in ("--resume", "--no-download") else [flag, value]
    code, err = _run(argv)
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if not line.startswith("gradfree: warning:")]
    assert code == 0 or (code == 2 and len(lines) == 1), (argv, code, err)
