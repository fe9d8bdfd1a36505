"""A killed run resumed with --resume ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ARGS = ["--task", "digits", "--model", "mlp:64-32-10", "--seed", "3", "--batch-size", "64", "--no-progress",
        "--threads", "1"]
CASES = {
    "zo-adam": ["--optimizer", "zo-adam", "--budget", "40000", "--eval-every", "2000"],
    "adam": ["--optimizer", "adam", "--budget", "5000", "--eval-every", "250"],
    "open-es": ["--optimizer", "open-es", "--opt", "popsize=16", "--budget", "12000", "--eval-every", "500"],
}
ON_RAY = {"open-es": ["--ray-address", "local", "--ray-actors", "2"]}
"""Cases whose killed and resumed runs score their generations on a local Ray (the uninterrupted run they
are compared with does not: the numbers are the same either way)."""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gradfree.cli", "train", *ARGS, *args]


def _rows(path: Path) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:  # wall-clock fields differ between runs by nature
        row.pop("time", None)
        row.pop("wall_time", None)
    return rows


@pytest.mark.parametrize("method", list(CASES))
def test_killed_run_resumes_exactly(tmp_path: Path, method: str) -> None:
    if method in ON_RAY:
        pytest.importorskip("ray")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cli(*CASES[method], "--out", str(full)), check=True, env=env, capture_output=True)

    args = [*CASES[method], *ON_RAY.get(method, [])]
    # A session of its own, so that the kill takes the local Ray the run started with it.
    proc = subprocess.Popen(_cli(*args, "--out", str(killed)), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    metrics = killed / "metrics.jsonl"
    deadline = time.monotonic() + 60
    # Kill once a few validations (and so checkpoints) are on disk, well before the run can finish.
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "result.json").exists()

    resumed = subprocess.run(_cli(*args, "--out", str(killed), "--resume"), env=env, capture_output=True,
                             start_new_session=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(full / "model.pt")
    b = torch.load(killed / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(full / "metrics.jsonl") == _rows(killed / "metrics.jsonl")
    assert not list(killed.glob(".*.tmp")), "a temporary file was left behind"


def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    env = {**os.environ}
    out = tmp_path / "run"
    subprocess.run(_cli(*CASES["zo-adam"][:2], "--budget", "2000", "--out", str(out)), check=True, env=env,
                   capture_output=True)
    proc = subprocess.run(_cli(*CASES["zo-adam"][:2], "--budget", "4000", "--out", str(out), "--resume"),
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "different settings (budget)" in proc.stderr
    assert "Traceback" not in proc.stderr
