"""The benchmark runner: one row per trial (crashes too), resume, interrupts, overrides, the CLI."""

from __future__ import annotations

import json
import shutil
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gradfree.cli import main
from gradfree.errors import ConfigError
from gradfree.experiments.runner import (
    RESULTS,
    SUITE_FILE,
    Overrides,
    append_row,
    apply_overrides,
    latest_rows,
    read_rows,
    repair,
    run_dir_name,
    run_trials,
    suite_trials,
    unregistered,
)
from gradfree.experiments.suite import Trial
from gradfree.run import RunSpec


def _strict_rows(path: Path) -> list[dict[str, Any]]:
    """Every line parses as strict JSON (no NaN/Infinity constants)."""
    def no_constants(name: str) -> Any:
        raise AssertionError(f"non-JSON constant {name} in results")

    return [json.loads(line, parse_constant=no_constants) for line in path.read_text().splitlines()]


def _trial(label: str, *, seed: int = 0, budget: int = 240, **options: Any) -> Trial:
    spec = RunSpec(task="digits", model="mlp:64-8-10", optimizer="zo-adam" if label != "adam" else "adam",
                   options={"lr": 1e-2, "num_directions": 3, **options} if label != "adam" else {"lr": 3e-3},
                   budget=budget, batch_size=64, eval_every=80, seed=seed, device="cpu")
    return Trial(label=label, spec=spec, notes={"why": "test"})


def test_one_row_per_trial_and_a_crash_does_not_stop_the_run(tmp_path: Path) -> None:
    trials = [_trial("adam"), _trial("broken", nonsense=1), _trial("zo")]
    lines: list[str] = []
    outcome = run_trials(trials, out_dir=tmp_path, suite="unit", size="quick", log=lines.append)
    assert (outcome.ran, outcome.failed, outcome.skipped) == (3, 1, 0)
    rows = _strict_rows(tmp_path / RESULTS)
    assert [r["key"] for r in rows] == ["adam/seed0", "broken/seed0", "zo/seed0"]
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    ok, bad = rows[0], rows[1]
    assert ok["suite"] == "unit" and ok["label"] == "adam" and ok["seed"] == 0 and ok["notes"] == {"why": "test"}
    assert ok["spec"]["optimizer"] == "adam" and ok["spec"]["budget"] == 240 and ok["spec"]["device"] == "cpu"
    assert 240 <= ok["evaluations"] < 250 and ok["final"]["test_accuracy"] > 0.1
    assert [h["evaluations"] for h in ok["history"]] == [0, 80, 160, 240]
    assert all(h["kind"] == "val" for h in ok["history"])
    assert {"torch", "git_revision", "device", "gradfree"} <= set(ok["provenance"])
    assert bad["error"]["type"] == "ConfigError" and "takes no option nonsense" in bad["error"]["message"]
    assert "Traceback" in bad["error"]["traceback"] and bad["error"]["user_error"] is True
    assert "final" not in bad and bad["provenance"]["device"] == "cpu"
    assert "ERROR ConfigError" in lines[1] and "test acc" in lines[0]
    suite = json.loads((tmp_path / SUITE_FILE).read_text())
    assert suite["suite"] == "unit" and [t["key"] for t in suite["trials"]] == [t.key for t in trials]
    assert (tmp_path / "runs" / "adam" / "seed0" / "result.json").exists()


def test_resume_skips_finished_trials_and_reruns_failed_ones(tmp_path: Path) -> None:
    trials = [_trial("adam"), _trial("broken", nonsense=1)]
    run_trials(trials, out_dir=tmp_path, suite="unit", log=None)
    with pytest.raises(ConfigError, match="pass --resume"):
        run_trials(trials, out_dir=tmp_path, suite="unit", log=None)
    done = (tmp_path / "runs" / "adam" / "seed0" / "result.json").stat().st_mtime_ns
    # The failed trial is fixed (same key, a valid option) and rerun from scratch; the finished one is skipped.
    fixed = [trials[0], replace(trials[1], spec=replace(trials[1].spec, options={"lr": 1e-2, "num_directions": 3}))]
    outcome = run_trials(fixed, out_dir=tmp_path, suite="unit", resume=True, log=None)
    assert (outcome.ran, outcome.failed, outcome.skipped) == (1, 0, 1)
    assert (tmp_path / "runs" / "adam" / "seed0" / "result.json").stat().st_mtime_ns == done
    rows = _strict_rows(tmp_path / RESULTS)
    assert [(r["key"], r["status"]) for r in rows] == [("adam/seed0", "ok"), ("broken/seed0", "error"),
                                                       ("broken/seed0", "ok")]
    assert [r["status"] for r in latest_rows(rows)] == ["ok", "ok"]
    # Nothing left to do: a further resume appends nothing.
    assert run_trials(fixed, out_dir=tmp_path, suite="unit", resume=True, log=None).ran == 0
    assert len(_strict_rows(tmp_path / RESULTS)) == 3


def test_rerun_runs_matching_finished_trials_again_with_their_new_settings(tmp_path: Path) -> None:
    trials = [_trial("adam"), _trial("zo")]
    run_trials(trials, out_dir=tmp_path, suite="unit", log=None)
    done = (tmp_path / "runs" / "adam" / "seed0" / "result.json").stat().st_mtime_ns
    changed = [trials[0], replace(trials[1], spec=replace(trials[1].spec, options={"lr": 3e-2, "num_directions": 2}))]
    with pytest.raises(ConfigError, match="with resume"):
        run_trials(changed, out_dir=tmp_path, suite="unit", log=None, rerun=["zo/*"])
    with pytest.raises(ConfigError, match="matches no trial"):
        run_trials(changed, out_dir=tmp_path, suite="unit", resume=True, log=None, rerun=["z0/*"])
    # A resume alone matches rows by key, so the changed trial counts as done; --rerun runs it again.
    assert run_trials(changed, out_dir=tmp_path, suite="unit", resume=True, log=None).ran == 0
    outcome = run_trials(changed, out_dir=tmp_path, suite="unit", resume=True, log=None, rerun=["zo/*"])
    assert (outcome.ran, outcome.skipped) == (1, 1)
    assert (tmp_path / "runs" / "adam" / "seed0" / "result.json").stat().st_mtime_ns == done
    latest = {r["key"]: r for r in latest_rows(_strict_rows(tmp_path / RESULTS))}
    assert latest["zo/seed0"]["spec"]["options"] == {"lr": 3e-2, "num_directions": 2}
    assert len(_strict_rows(tmp_path / RESULTS)) == 3


def test_an_interrupted_rerun_leaves_the_finished_trial_and_its_files(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import gradfree.experiments.runner as runner

    trials = [_trial("adam")]
    run_trials(trials, out_dir=tmp_path, suite="unit", log=None)
    run_dir = tmp_path / "runs" / "adam" / "seed0"
    done = (run_dir / "result.json").read_bytes()

    def interrupted(*args: object, **kwargs: object) -> None:
        (run_dir / "partial.txt").parent.mkdir(parents=True)
        (run_dir / "partial.txt").write_text("half a rerun")
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_trial", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_trials(trials, out_dir=tmp_path, suite="unit", resume=True, log=None, rerun=["adam/*"])
    assert (run_dir / "result.json").read_bytes() == done and not (run_dir / "partial.txt").exists()
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["seed0"]
    monkeypatch.undo()
    # A killed rerun (no chance to clean up) is settled by the next call: put back, since its row never came...
    run_dir.rename(run_dir.with_name("seed0.before-rerun-1"))
    (run_dir / "partial.txt").parent.mkdir(parents=True)
    (run_dir / "partial.txt").write_text("half a rerun")
    assert run_trials(trials, out_dir=tmp_path, suite="unit", resume=True, log=None).ran == 0
    assert (run_dir / "result.json").read_bytes() == done and not (run_dir / "partial.txt").exists()
    # ... or dropped, when the rerun's row was written before the kill; a finished rerun leaves nothing aside.
    run_trials(trials, out_dir=tmp_path, suite="unit", resume=True, log=None, rerun=["adam/*"])
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["seed0"]
    shutil.copytree(run_dir, run_dir.with_name("seed0.before-rerun-1"))
    assert run_trials(trials, out_dir=tmp_path, suite="unit", resume=True, log=None).ran == 0
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["seed0"] and (run_dir / "result.json").exists()
    assert len(_strict_rows(tmp_path / RESULTS)) == 2


def test_only_runs_the_matching_trials_and_shards_share_one_folder(tmp_path: Path) -> None:
    trials = [_trial("adam"), _trial("zo")]
    with pytest.raises(ConfigError, match="--only 'sgd/\\*' matches no trial"):
        run_trials(trials, out_dir=tmp_path, suite="unit", log=None, only=["sgd/*"])
    outcome = run_trials(trials, out_dir=tmp_path, suite="unit", log=None, only=["zo/*"])
    assert (outcome.total, outcome.ran, outcome.skipped) == (1, 1, 0)
    assert [r["key"] for r in _strict_rows(tmp_path / RESULTS)] == ["zo/seed0"]
    assert not (tmp_path / "runs" / "adam").exists()
    # A second shard resumes into the same folder and runs the rest; the first shard's row stays.
    outcome = run_trials(trials, out_dir=tmp_path, suite="unit", resume=True, log=None, only=["adam/*"])
    assert (outcome.total, outcome.ran, outcome.skipped) == (1, 1, 0)
    rows = _strict_rows(tmp_path / RESULTS)
    assert [(r["key"], r["status"]) for r in rows] == [("zo/seed0", "ok"), ("adam/seed0", "ok")]
    assert run_trials(trials, out_dir=tmp_path, suite="unit", resume=True, log=None).ran == 0
    with pytest.raises(ConfigError, match="matches no trial of the trials --only selects"):
        run_trials(trials, out_dir=tmp_path, suite="unit", resume=True, log=None, only=["adam/*"], rerun=["zo/*"])


def test_resume_refuses_other_arguments(tmp_path: Path) -> None:
    run_trials([_trial("adam")], out_dir=tmp_path, suite="unit", size="quick", log=None)
    with pytest.raises(ConfigError, match="size='quick'"):
        run_trials([_trial("adam")], out_dir=tmp_path, suite="unit", size="full", resume=True, log=None)


def test_interrupted_trial_resumes_from_its_checkpoint_like_an_uninterrupted_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gradfree.train.trainer import Trainer

    trials = [_trial("adam"), _trial("zo", budget=400)]
    reference = run_trials([trials[1]], out_dir=tmp_path / "straight", suite="unit", log=None)
    assert reference.failed == 0
    straight = _strict_rows(tmp_path / "straight" / RESULTS)[0]

    real_validate = Trainer._validate
    calls = {"n": 0}

    def validate_then_interrupt(self: Trainer) -> bool:
        stop = real_validate(self)
        if self.optimizer.__class__.__name__ == "ZOAdam":
            calls["n"] += 1
            if calls["n"] == 3:  # after the third validation's checkpoint: like a Ctrl-C mid-run
                raise KeyboardInterrupt
        return stop

    monkeypatch.setattr(Trainer, "_validate", validate_then_interrupt)
    out = tmp_path / "bench"
    with pytest.raises(KeyboardInterrupt):
        run_trials(trials, out_dir=out, suite="unit", log=None)
    rows = _strict_rows(out / RESULTS)  # consistent: the finished trial's row only
    assert [r["key"] for r in rows] == ["adam/seed0"]
    assert (out / "runs" / "zo" / "seed0" / "checkpoint.pt").exists()

    monkeypatch.setattr(Trainer, "_validate", real_validate)
    outcome = run_trials(trials, out_dir=out, suite="unit", resume=True, log=None)
    assert (outcome.ran, outcome.skipped) == (1, 1)
    resumed = _strict_rows(out / RESULTS)[-1]
    assert resumed["resumed"] is True and resumed["status"] == "ok"
    assert resumed["final"] == straight["final"]
    assert resumed["evaluations"] == straight["evaluations"]
    assert [h["val_loss"] for h in resumed["history"]] == [h["val_loss"] for h in straight["history"]]


def test_a_torn_last_line_is_skipped_by_readers_and_cut_on_resume(tmp_path: Path) -> None:
    run_trials([_trial("adam")], out_dir=tmp_path, suite="unit", log=None)
    with open(tmp_path / RESULTS, "a") as f:
        f.write('{"key": "zo/seed0", "status": "o')  # a machine died mid-write
    rows, bad = read_rows(tmp_path / RESULTS)
    assert len(rows) == 1 and bad == 1
    lines: list[str] = []
    run_trials([_trial("adam"), _trial("zo")], out_dir=tmp_path, suite="unit", resume=True, log=lines.append)
    assert "torn last line" in lines[0]
    assert [r["key"] for r in _strict_rows(tmp_path / RESULTS)] == ["adam/seed0", "zo/seed0"]


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_a_process_writing_a_row_holds_off_another_process_s_repair(tmp_path: Path) -> None:
    import fcntl

    path = tmp_path / RESULTS
    path.write_text('{"key": "a/seed0", "status": "ok"}\n{"key": "b/seed0", "st')  # a row being written
    done = threading.Event()
    with open(path, "rb") as writer:
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)  # what append_row holds while it writes
        repairing = threading.Thread(target=lambda: (repair(path), done.set()))
        repairing.start()
        assert not done.wait(0.3)  # the repair waits for the writer ...
        with open(path, "a") as f:
            f.write('atus": "ok"}\n')  # ... which finishes its line
        fcntl.flock(writer.fileno(), fcntl.LOCK_UN)
    repairing.join(5)
    assert done.is_set() and [r["key"] for r in _strict_rows(path)] == ["a/seed0", "b/seed0"]


def test_rows_are_strict_json_even_with_non_finite_numbers(tmp_path: Path) -> None:
    append_row(tmp_path / RESULTS, {"key": "a", "best_val_loss": float("inf"), "final": {"x": float("nan")},
                                    "history": [{"v": float("-inf")}]})
    (row,) = _strict_rows(tmp_path / RESULTS)
    assert row == {"key": "a", "best_val_loss": None, "final": {"x": None}, "history": [{"v": None}]}


def test_overrides_seeds_budget_and_device() -> None:
    trials = [_trial("a", seed=0), _trial("a", seed=1), _trial("b", seed=0)]
    out = apply_overrides(trials, Overrides(seeds=3, budget=480, device="cuda"))
    assert [t.key for t in out] == ["a/seed0", "a/seed1", "a/seed2", "b/seed0", "b/seed1", "b/seed2"]
    assert all(t.spec.budget == 480 and t.spec.time_limit is None and t.spec.device == "cuda" for t in out)
    assert all(t.spec.eval_every == 160 for t in out)  # 80 * 480 / 240: as many validations as before
    timed = apply_overrides(out, Overrides(time_limit=5.0))
    assert all(t.spec.budget is None and t.spec.time_limit == 5.0 for t in timed)
    with pytest.raises(ConfigError, match="share the key"):
        apply_overrides([_trial("a"), _trial("a")], Overrides())
    with pytest.raises(ConfigError, match="--seeds"):
        Overrides(seeds=0)


def test_suite_trials_checks_the_size_and_names() -> None:
    with pytest.raises(ConfigError, match="unknown suite size"):
        suite_trials("digits", "huge")
    with pytest.raises(ConfigError, match="unknown suite 'mnist-cn'"):
        suite_trials("mnist-cn", "quick")
    assert unregistered([replace(_trial("a"), spec=replace(_trial("a").spec, optimizer="nope"))]) == \
        ["optimizer 'nope'"]
    assert run_dir_name("batch=64/adam lr=1e-3/seed0") == "batch=64/adam_lr=1e-3/seed0"
    assert run_dir_name("../x/seed0") == "_/x/seed0"


def test_cli_bench_then_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b"
    code = main(["bench", "digits", "--quick", "--budget", "100", "--out", str(out), "--threads", "1",
                 "--no-report"])
    captured = capsys.readouterr().out
    rows = _strict_rows(out / RESULTS)
    assert code == 0, [r["error"] for r in rows if r["status"] != "ok"]
    assert "suite digits (quick): 7 trials" in captured and "7 trials run (0 failed)" in captured
    assert len(rows) == 7 and all(r["status"] == "ok" and r["spec"]["budget"] == 100 for r in rows)
    assert not (out / "report.md").exists()
    assert main(["report", str(out)]) == 0
    assert "| sep-cma | 1 |" in (out / "report.md").read_text() and (out / "report.html").exists()
    # A rerun into the same folder needs --resume; with it, nothing is redone.
    assert main(["bench", "digits", "--quick", "--budget", "100", "--out", str(out)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["bench", "digits", "--quick", "--budget", "100", "--out", str(out), "--resume",
                 "--no-report"]) == 0
    assert "0 trials run (0 failed), 7 done earlier" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["bench", "mnist-cn", "--quick"], "unknown suite 'mnist-cn'. Did you mean mnist-cnn"),
    (["report", "/nonexistent/folder"], "results.jsonl does not exist"),
])
def test_cli_mistakes_give_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_lists_suites(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "suites"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist-cnn", "rso-batch-size", "cifar10", "fashion-mnist", "digits"):
        assert name in out
