"""The benchmark runner: runs a suite's trials and appends one JSON row per trial, crash or not, and resumes.

``OUT/results.jsonl`` is the only record a report is drawn from. Each row holds the suite, the trial (key,
label, group, seed, the resolved :class:`~gradfree.run.RunSpec`, notes), its status (``"ok"`` or
``"error"``), the run summary at the top level (``evaluations``, ``wall_time``, ``stopped`` ...), the final
metrics under ``final``, the validation history under ``history``, the error (type, message, traceback) of a
crashed trial under ``error``, and provenance (versions, git revision, device). A row is appended whole with
one ``write`` and fsynced, so an interrupt leaves the file consistent; a torn last line (a killed machine) is
cut off when the run resumes, and readers skip it.

Each trial trains in ``OUT/runs/<key>`` and checkpoints there. ``resume`` skips trials whose latest row is
``"ok"``, continues a trial that was killed mid-run from its checkpoint (same result as an uninterrupted run),
and reruns trials whose latest row is an error from scratch. ``OUT/suite.json`` records the suite, its size,
the overrides and the trial list; a resume with other arguments is refused rather than mixing two benchmarks
in one file.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradfree.errors import ConfigError, GradfreeError

if TYPE_CHECKING:
    from gradfree.bench.suites import Trial
    from gradfree.run import RunSpec

RESULTS = "results.jsonl"
SUITE_FILE = "suite.json"
RUNS = "runs"

Row = dict[str, Any]
Log = Callable[[str], None]


# ------------------------------------------------------------------------------------------ the results file
def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null (recursively) so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def append_row(path: Path, row: Row) -> None:
    """Append ``row`` as one JSON line with a single ``write``, then fsync.

    The line is built completely before the file is touched, so a keyboard interrupt either happens before
    the write (no row) or after it (the whole row): Python delivers the signal between calls, not inside
    ``os.write``.
    """
    data = (json.dumps(_clean(row), allow_nan=False, default=str) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_rows(path: Path) -> tuple[list[Row], int]:
    """The rows of a results file, and how many lines could not be parsed (a torn last line, say)."""
    rows: list[Row] = []
    bad = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, dict) and "key" in row:
            rows.append(row)
        else:
            bad += 1
    return rows, bad


def latest_rows(rows: Sequence[Row]) -> list[Row]:
    """The last row of each trial key (a rerun supersedes a failed attempt), in order of first appearance."""
    latest: dict[str, Row] = {}
    for row in rows:
        latest[row["key"]] = row  # a dict keeps the key's first position and takes the new value
    return list(latest.values())


def repair(path: Path) -> bool:
    """Cut a torn last line (no final newline) off ``path``; returns whether anything was cut."""
    if not path.exists():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    with open(path, "r+b") as f:
        f.truncate(data.rfind(b"\n") + 1)
    return True


# ------------------------------------------------------------------------------------------------- trials
@dataclass(frozen=True)
class Overrides:
    """Command-line changes applied to every trial of a suite.

    Attributes:
        seeds: run seeds ``0..seeds-1`` for every method (and group) instead of the suite's seeds.
        budget, time_limit: when either is given, every trial's budget becomes exactly this evaluation budget
            and/or time limit (the suite's own budget and time limit are dropped); ``eval_every`` is scaled
            by the same ratio so a run keeps about as many validations.
        device: ``auto``, ``cpu`` or ``cuda`` for every trial.
    """

    seeds: int | None = None
    budget: int | None = None
    time_limit: float | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        if self.seeds is not None and self.seeds <= 0:
            raise ConfigError(f"--seeds must be a positive number of seeds, got {self.seeds}")
        if self.budget is not None and self.budget <= 0:
            raise ConfigError(f"--budget must be a positive number of evaluations, got {self.budget}")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ConfigError(f"--time must be positive seconds, got {self.time_limit}")


def _rebudget(spec: RunSpec, budget: int | None, time_limit: float | None) -> RunSpec:
    ratio = None
    if budget is not None and spec.budget:
        ratio = budget / spec.budget
    elif time_limit is not None and spec.time_limit and budget is None:
        ratio = time_limit / spec.time_limit
    eval_every = max(1, round(spec.eval_every * ratio)) if ratio is not None else spec.eval_every
    return replace(spec, budget=budget, time_limit=time_limit, eval_every=eval_every)


def apply_overrides(trials: Sequence[Trial], overrides: Overrides) -> list[Trial]:
    """The trials with ``overrides`` applied; keys must stay unique.

    With ``seeds``, each ``(group, label)`` keeps its first trial's settings and is repeated for seeds
    ``0..seeds-1``.
    """
    out = list(trials)
    if overrides.seeds is not None:
        firsts: dict[tuple[str, str], Trial] = {}
        for t in out:
            firsts.setdefault((t.group, t.label), t)
        out = [replace(t, spec=replace(t.spec, seed=s)) for t in firsts.values() for s in range(overrides.seeds)]
    if overrides.budget is not None or overrides.time_limit is not None:
        out = [replace(t, spec=_rebudget(t.spec, overrides.budget, overrides.time_limit)) for t in out]
    if overrides.device is not None:
        out = [replace(t, spec=replace(t.spec, device=overrides.device)) for t in out]
    seen: set[str] = set()
    for t in out:
        if t.key in seen:
            raise ConfigError(f"two trials share the key {t.key!r}; a suite must give each trial a distinct "
                              "label, group or seed")
        seen.add(t.key)
    return out


def suite_trials(name: str, size: str, overrides: Overrides | None = None) -> list[Trial]:
    """The trials of the registered suite ``name`` at ``size``, with ``overrides`` applied."""
    from gradfree.bench.suites import SIZES, load_suites

    if size not in SIZES:
        raise ConfigError(f"unknown suite size {size!r}; use one of {', '.join(SIZES)}")
    trials = load_suites().get(name)(size)
    return apply_overrides(trials, overrides or Overrides())


def unregistered(trials: Sequence[Trial]) -> list[str]:
    """The task, model and optimizer names the trials use that no registry holds, e.g. ``["optimizer 'rso'"]``."""
    from gradfree.models import MODELS
    from gradfree.optim.registry import load_methods
    from gradfree.tasks import TASKS

    optimizers = load_methods()
    missing: dict[str, None] = {}
    for t in trials:
        model = (t.spec.model or "").split(":")[0]
        for family, name, registry in (("task", t.spec.task, TASKS), ("model", model, MODELS),
                                       ("optimizer", t.spec.optimizer, optimizers)):
            if name and name not in registry:
                missing.setdefault(f"{family} {name!r}", None)
    return list(missing)


def run_dir_name(key: str) -> str:
    """A folder path for a trial key: each ``/``-separated part made filesystem-safe."""
    parts = [re.sub(r"[^A-Za-z0-9._=+-]+", "_", p).strip(".") or "_" for p in key.split("/")]
    return "/".join(parts)


def trial_record(trial: Trial) -> Row:
    """The trial as plain JSON: key, label, group, seed, spec, notes."""
    return {"key": trial.key, "label": trial.label, "group": trial.group, "seed": trial.spec.seed,
            "spec": asdict(trial.spec), "notes": dict(trial.notes)}


# ------------------------------------------------------------------------------------------------- running
@dataclass
class RunOutcome:
    """What one call of :func:`run_trials` did."""

    out_dir: Path
    ran: int = 0
    failed: int = 0
    skipped: int = 0
    total: int = 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _check_out_dir(out: Path, identity: Row, *, resume: bool) -> None:
    results = out / RESULTS
    holds_runs = (out / RUNS).exists() and any((out / RUNS).iterdir())
    if not resume:
        if results.exists() or holds_runs:
            raise ConfigError(f"{out} already holds benchmark results; pass --resume to continue them or "
                              "choose a new --out")
        return
    suite_file = out / SUITE_FILE
    if suite_file.exists():
        try:
            before = json.loads(suite_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read {suite_file} ({exc}); delete it to resume anyway") from None
        changed = [k for k in identity if before.get(k) != identity[k]]
        if changed:
            was = ", ".join(f"{k}={before.get(k)!r}" for k in changed)
            raise ConfigError(f"{out} holds a benchmark made with {was}; resume with the same suite, --size and "
                              "overrides, or choose a new --out")


def run_trials(trials: Sequence[Trial], *, out_dir: str | Path, suite: str, size: str = "",
               overrides: Overrides | None = None, resume: bool = False, data_dir: str | Path | None = None,
               download: bool = True, progress: bool | None = False, log: Log | None = print) -> RunOutcome:
    """Run ``trials`` in order, appending one row per trial to ``out_dir/results.jsonl``.

    Args:
        trials: the (already overridden) trials; keys must be unique.
        suite, size, overrides: recorded in every row and in ``suite.json``.
        resume: continue an earlier call on the same folder (see the module docstring).
        data_dir, download: where datasets are looked up, as in :func:`gradfree.run.train_run`.
        progress: each trial's progress bar (``None``: only on a terminal).
        log: called with one line per trial (``None``: silent).

    A trial that raises gets an ``"error"`` row and the next trial runs; a keyboard interrupt stops the run
    with every finished trial's row written (the interrupted trial resumes from its checkpoint).
    """
    from gradfree.train.files import save_json
    from gradfree.train.provenance import provenance

    out = Path(out_dir)
    overrides = overrides or Overrides()
    identity = {"suite": suite, "size": size, "overrides": asdict(overrides)}
    _check_out_dir(out, identity, resume=resume)
    keys = [t.key for t in trials]
    if len(set(keys)) != len(keys):
        raise ConfigError("trial keys must be unique")
    results = out / RESULTS
    if repair(results) and log:
        log(f"{results}: cut a torn last line left by an interrupted write")
    earlier = latest_rows(read_rows(results)[0]) if results.exists() else []
    status = {r["key"]: r.get("status") for r in earlier}
    base_provenance = provenance("cpu")
    machine = {k: v for k, v in base_provenance.items() if k != "device"}  # each row records its own device
    save_json({**identity, "written_at": _now(), "provenance": machine,
               "trials": [trial_record(t) for t in trials]}, out / SUITE_FILE)

    outcome = RunOutcome(out_dir=out, total=len(trials))
    width = len(str(len(trials)))
    for i, trial in enumerate(trials, 1):
        prefix = f"[{i:>{width}}/{len(trials)}] {trial.key}"
        if status.get(trial.key) == "ok":
            outcome.skipped += 1
            if log:
                log(f"{prefix}: done earlier, skipped")
            continue
        row = run_trial(trial, out=out, suite=suite, size=size, fresh=trial.key in status, data_dir=data_dir,
                        download=download, base_provenance=base_provenance, progress=progress)
        append_row(results, row)
        outcome.ran += 1
        outcome.failed += row["status"] != "ok"
        if log:
            log(f"{prefix}: {describe(row)}")
    return outcome


def run_trial(trial: Trial, *, out: Path, suite: str, size: str, fresh: bool = False,
              data_dir: str | Path | None = None, download: bool = True,
              base_provenance: dict[str, Any] | None = None, progress: bool | None = False) -> Row:
    """Train one trial in ``out/runs/<key>`` and return its row (status ``"error"`` if it raised).

    Args:
        fresh: discard what the run folder holds (a failed earlier attempt) instead of resuming from it.
        progress: show the trainer's progress bar (``None``: only on a terminal).
    """
    from gradfree.run import train_run
    from gradfree.train.provenance import provenance

    run_dir = out / RUNS / run_dir_name(trial.key)
    has_checkpoint = (run_dir / "checkpoint.pt").exists()
    if run_dir.exists() and (fresh or not has_checkpoint):
        shutil.rmtree(run_dir)  # the runner owns this folder: a failed or never-checkpointed attempt restarts
    resumed = run_dir.exists() and has_checkpoint and not fresh
    row: Row = {"suite": suite, "size": size, **trial_record(trial), "run_dir": f"{RUNS}/{run_dir_name(trial.key)}",
                "started_at": _now(), "resumed": resumed}
    started = time.perf_counter()
    try:
        result = train_run(trial.spec, out_dir=run_dir, resume=resumed, data_dir=data_dir, download=download,
                           progress=progress)
    except Exception as exc:  # one crashing trial must not stop the benchmark: record it and go on
        row.update(status="error", error={"type": type(exc).__name__, "message": str(exc),
                                          "user_error": isinstance(exc, GradfreeError),
                                          "traceback": traceback.format_exc()})
    else:
        summary = result.summary()
        row.update(status="ok", **{k: v for k, v in summary.items() if k != "final"}, final=summary["final"],
                   history=[h for h in result.history if h.get("kind") == "val"], error=None)
    row["trial_seconds"] = time.perf_counter() - started
    config_file = run_dir / "config.json"
    recorded: Row = {}
    if config_file.exists():
        try:
            recorded = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError):
            recorded = {}
    if recorded.get("config"):
        row["spec"] = {**row["spec"], **recorded["config"]}  # the resolved model and device
    row["provenance"] = recorded.get("provenance") or {**(base_provenance or provenance("cpu")),
                                                       "device": str(row["spec"].get("device"))}
    return row


def describe(row: Row) -> str:
    """One line for the console: status, the headline metric, the cost."""
    if row.get("status") != "ok":
        err = row.get("error") or {}
        message = str(err.get("message") or "").strip().splitlines()
        return f"ERROR {err.get('type')}: {message[0] if message else ''}"
    final = row.get("final") or {}
    if final.get("test_accuracy") is not None:
        headline = f"test acc {final['test_accuracy']:.2%}"
    elif final.get("test_loss") is not None:
        headline = f"test loss {final['test_loss']:.4g}"
    else:
        headline = "no test metric"
    stopped = "" if row.get("stopped") in ("budget", "time limit") else f", stopped by {row.get('stopped')}"
    return (f"ok, {headline}, {row.get('evaluations', 0):,} evaluations, {row.get('wall_time', 0.0):.1f} s"
            f"{stopped}")


def run_suite(name: str, *, size: str = "full", out_dir: str | Path | None = None,
              overrides: Overrides | None = None, resume: bool = False, data_dir: str | Path | None = None,
              download: bool = True, threads: int | None = None, report: bool = True,
              log: Log | None = print) -> RunOutcome:
    """Run the registered suite ``name`` at ``size`` into ``out_dir`` (default ``runs/bench/<name>-<size>``),
    then render its report unless ``report`` is false.
    """
    overrides = overrides or Overrides()
    trials = suite_trials(name, size, overrides)
    out = Path(out_dir) if out_dir is not None else Path("runs") / "bench" / f"{name}-{size}"
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if log:
        log(f"suite {name} ({size}): {len(trials)} trials -> {out / RESULTS}")
    outcome = run_trials(trials, out_dir=out, suite=name, size=size, overrides=overrides, resume=resume,
                         data_dir=data_dir, download=download, progress=None if log else False, log=log)
    if report:
        from gradfree.bench.report import write_report

        files = write_report(out)
        if log:
            log(f"wrote {files.markdown} and {files.html}")
    return outcome
