"""The benchmark runner: runs a suite's trials and appends one JSON row per trial, crash or not, and resumes.

Rows go to ``OUT/results.jsonl`` (:mod:`gradfree.experiments.rows`). Each trial runs in ``OUT/runs/<key>``
through its registered trial kind (:mod:`gradfree.experiments.kinds`; training is kind ``"train"``).
``resume`` skips trials whose latest row is ``"ok"``, continues a killed trial of a resumable kind from its
run folder (same result as an uninterrupted run), and reruns trials whose latest row is an error from scratch;
``rerun`` (key patterns, ``fnmatch`` style) also reruns finished trials from scratch, e.g. after a change to
their settings (a resume matches rows to trials by key only). The new row supersedes the old one; until it is
written the old run folder is kept aside, so an interrupted rerun leaves the old row with its files.
``only`` (key patterns) runs a part of the suite, e.g. one part per core into the same folder.
``OUT/suite.json`` records the suite, its size, the overrides and the trial list; a resume with other
arguments is refused rather than mixing two benchmarks in one file.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import re
import shutil
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from gradfree.errors import ConfigError, GradfreeError
from gradfree.experiments.kinds import trial_kind, with_field
from gradfree.experiments.rows import RESULTS, RUNS, SUITE_FILE, Row, append_row, latest_rows, read_rows, repair
from gradfree.experiments.suite import SIZES, Trial, load_suites, suite_sizes

Log = Callable[[str], None]


# ------------------------------------------------------------------------------------------------- trials
@dataclass(frozen=True)
class Overrides:
    """Command-line changes applied to every trial of a suite.

    Attributes:
        seeds: run seeds ``0..seeds-1`` for every method (and group) instead of the suite's seeds.
        budget, time_limit: when either is given, every trial's budget becomes exactly this evaluation budget
            and/or time limit, as its kind applies them (training: the suite's own budget and time limit are
            dropped and ``eval_every`` is scaled by the same ratio, so a run keeps about as many
            validations); a kind without budgets refuses them.
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


def _rebudget(trial: Trial, budget: int | None, time_limit: float | None) -> Trial:
    rebudget = trial_kind(trial.spec).rebudget
    if rebudget is None:
        raise ConfigError(f"{trial.kind} trials take no --budget or --time")
    return replace(trial, spec=rebudget(trial.spec, budget, time_limit))


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
        out = [replace(t, spec=with_field(t.spec, "seed", s)) for t in firsts.values() for s in range(overrides.seeds)]
    if overrides.budget is not None or overrides.time_limit is not None:
        out = [_rebudget(t, overrides.budget, overrides.time_limit) for t in out]
    if overrides.device is not None:
        out = [replace(t, spec=with_field(t.spec, "device", overrides.device)) for t in out]
    seen: set[str] = set()
    for t in out:
        if t.key in seen:
            raise ConfigError(f"two trials share the key {t.key!r}; a suite must give each trial a distinct "
                              "label, group or seed")
        seen.add(t.key)
    return out


def suite_trials(name: str, size: str, overrides: Overrides | None = None) -> list[Trial]:
    """The trials of the registered suite ``name`` at ``size``, with ``overrides`` applied."""
    if size not in SIZES:
        raise ConfigError(f"unknown suite size {size!r}; use one of {', '.join(SIZES)}")
    sizes = suite_sizes(name)
    if size not in sizes:
        raise ConfigError(f"suite {name!r} has no size {size!r}; it has {', '.join(sizes)}")
    trials = load_suites().get(name)(size)
    return apply_overrides(trials, overrides or Overrides())


def unregistered(trials: Sequence[Trial]) -> list[str]:
    """The task, model and optimizer names the trials use that no registry holds, e.g. ``["optimizer 'rso'"]``."""
    from gradfree.models import MODELS
    from gradfree.optim.registry import load_methods
    from gradfree.run import RunSpec
    from gradfree.tasks import TASKS

    optimizers = load_methods()
    missing: dict[str, None] = {}
    for t in trials:
        if not isinstance(t.spec, RunSpec):
            continue
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
    """The trial as plain JSON: key, label, group, seed, kind, spec, notes."""
    return {"key": trial.key, "label": trial.label, "group": trial.group, "seed": trial.spec.seed,
            "kind": trial.kind, "spec": asdict(cast(Any, trial.spec)), "notes": dict(trial.notes)}


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


def _matches(keys: Sequence[str], pattern: str) -> bool:
    return any(fnmatch.fnmatchcase(k, pattern) for k in keys)


def run_trials(trials: Sequence[Trial], *, out_dir: str | Path, suite: str, size: str = "",
               overrides: Overrides | None = None, resume: bool = False, data_dir: str | Path | None = None,
               download: bool = True, progress: bool | None = False, log: Log | None = print,
               rerun: Sequence[str] = (), only: Sequence[str] = ()) -> RunOutcome:
    """Run ``trials`` in order, appending one row per trial to ``out_dir/results.jsonl``.

    Args:
        trials: the (already overridden) trials; keys must be unique.
        suite, size, overrides: recorded in every row and in ``suite.json``.
        resume: continue an earlier call on the same folder (see the module docstring).
        data_dir, download: where datasets are looked up, as in :func:`gradfree.run.train_run`.
        progress: each trial's progress bar (``None``: only on a terminal).
        log: called with one line per trial (``None``: silent).
        rerun: with ``resume``, key patterns (``fnmatch``) of finished trials to run again from scratch; a
            pattern that matches no trial is an error (a typo would otherwise rerun nothing).
        only: key patterns (``fnmatch``); when given, only the trials matching one of them run, e.g. to
            spread a suite's trials over processes (one per core). Processes whose selections do not overlap
            may share one folder: each row is appended with a single ``write``.

    A trial that raises gets an ``"error"`` row and the next trial runs; a keyboard interrupt stops the run
    with every finished trial's row written (the interrupted trial resumes from its checkpoint).
    """
    from gradfree.train.files import save_json
    from gradfree.train.provenance import provenance

    out = Path(out_dir)
    overrides = overrides or Overrides()
    identity = {"suite": suite, "size": size, "overrides": asdict(overrides)}
    keys = [t.key for t in trials]
    if len(set(keys)) != len(keys):
        raise ConfigError("trial keys must be unique")
    if rerun and not resume:
        raise ConfigError("rerun names trials of an earlier run: pass it with resume (--resume)")
    for pattern in only:
        if not _matches(keys, pattern):
            raise ConfigError(f"--only {pattern!r} matches no trial of this suite; keys look like {keys[0]!r}")
    selected = [t for t in trials if not only or any(fnmatch.fnmatchcase(t.key, p) for p in only)]
    for pattern in rerun:
        if not _matches([t.key for t in selected], pattern):
            among = "the trials --only selects" if only else "this suite"
            raise ConfigError(f"--rerun {pattern!r} matches no trial of {among}; keys look like {keys[0]!r}")
    _check_out_dir(out, identity, resume=resume)
    results = out / RESULTS
    if repair(results) and log:
        log(f"{results}: cut a torn last line left by an interrupted write")
    earlier_rows = read_rows(results)[0] if results.exists() else []
    status = {r["key"]: r.get("status") for r in latest_rows(earlier_rows)}
    rows_of = Counter(r["key"] for r in earlier_rows)
    base_provenance = provenance("cpu")
    machine = {k: v for k, v in base_provenance.items() if k != "device"}  # each row records its own device
    save_json({**identity, "written_at": _now(), "provenance": machine,
               "trials": [trial_record(t) for t in trials]}, out / SUITE_FILE)

    outcome = RunOutcome(out_dir=out, total=len(selected))
    width = len(str(len(selected)))
    for i, trial in enumerate(selected, 1):
        prefix = f"[{i:>{width}}/{len(selected)}] {trial.key}"
        run_dir = out / RUNS / run_dir_name(trial.key)
        _settle_rerun(run_dir, rows_of[trial.key])
        again = any(fnmatch.fnmatchcase(trial.key, pattern) for pattern in rerun)
        if status.get(trial.key) == "ok" and not again:
            outcome.skipped += 1
            if log:
                log(f"{prefix}: done earlier, skipped")
            continue
        aside = _set_aside(run_dir, rows_of[trial.key]) if status.get(trial.key) == "ok" else None
        try:
            row = run_trial(trial, out=out, suite=suite, size=size, fresh=trial.key in status, data_dir=data_dir,
                            download=download, base_provenance=base_provenance, progress=progress)
            append_row(results, row)
        except BaseException:  # an interrupted rerun: the finished trial's row still stands, so do its files
            if aside is not None:  # count the rows again: the interrupt may have come just after the write
                _settle_rerun(run_dir, sum(r["key"] == trial.key for r in read_rows(results)[0]))
            raise
        if aside is not None:
            shutil.rmtree(aside)
        outcome.ran += 1
        outcome.failed += row["status"] != "ok"
        if log:
            log(f"{prefix}: {describe(row)}")
    return outcome


_ASIDE = ".before-rerun-"
"""A rerun moves the finished trial's folder to ``<folder>.before-rerun-<rows of the key then>`` until its own
row is written, so that an interrupted rerun (even a killed one) leaves the old row with its pictures."""


def _set_aside(run_dir: Path, rows_before: int) -> Path | None:
    if not run_dir.exists():
        return None
    aside = run_dir.with_name(f"{run_dir.name}{_ASIDE}{rows_before}")
    run_dir.rename(aside)  # atomic: the count in the name is the whole record
    return aside


def _settle_rerun(run_dir: Path, rows_now: int) -> None:
    """Finish what an interrupted rerun of ``run_dir`` left: drop the old folder if the rerun's row was
    written (the key now has more rows than when it was set aside), else put it back in place of the partial
    rerun."""
    for aside in run_dir.parent.glob(f"{glob.escape(run_dir.name)}{_ASIDE}*"):
        before = aside.name[len(run_dir.name) + len(_ASIDE):]
        if not before.isdigit():
            continue
        if rows_now > int(before):
            shutil.rmtree(aside)
        else:
            if run_dir.exists():
                shutil.rmtree(run_dir)
            aside.rename(run_dir)


def run_trial(trial: Trial, *, out: Path, suite: str, size: str, fresh: bool = False,
              data_dir: str | Path | None = None, download: bool = True,
              base_provenance: dict[str, Any] | None = None, progress: bool | None = False) -> Row:
    """Run one trial in ``out/runs/<key>`` through its kind and return its row (status ``"error"`` if it raised).

    Args:
        fresh: discard what the run folder holds (a failed earlier attempt) instead of resuming from it.
        progress: show the trial's progress bar (``None``: only on a terminal).
    """
    from gradfree.train.provenance import provenance

    kind = trial_kind(trial.spec)
    run_dir = out / RUNS / run_dir_name(trial.key)
    has_checkpoint = kind.resumable and (run_dir / "checkpoint.pt").exists()
    if run_dir.exists() and (fresh or not has_checkpoint):
        shutil.rmtree(run_dir)  # the runner owns this folder: a failed or never-checkpointed attempt restarts
    resumed = run_dir.exists() and has_checkpoint and not fresh
    row: Row = {"suite": suite, "size": size, **trial_record(trial), "run_dir": f"{RUNS}/{run_dir_name(trial.key)}",
                "started_at": _now(), "resumed": resumed}
    started = time.perf_counter()
    resolved: dict[str, Any] = {}
    recorded: dict[str, Any] | None = None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        outcome = kind.run(trial.spec, run_dir=run_dir, resume=resumed, data_dir=data_dir, download=download,
                           progress=progress)
    except Exception as exc:  # one crashing trial must not stop the benchmark: record it and go on
        row.update(status="error", error={"type": type(exc).__name__, "message": str(exc),
                                          "user_error": isinstance(exc, GradfreeError),
                                          "traceback": traceback.format_exc()})
        resolved = _recorded_config(run_dir)  # what the run had resolved before it failed
    else:
        row.update(status="ok", **outcome.summary, headline=outcome.headline, final=outcome.final,
                   history=outcome.history, error=None,
                   artifacts={k: f"{row['run_dir']}/{v}" for k, v in outcome.artifacts.items()})
        resolved, recorded = outcome.resolved, outcome.provenance
    row["trial_seconds"] = time.perf_counter() - started
    if resolved:
        row["spec"] = {**row["spec"], **resolved}  # the resolved model and device
    row["provenance"] = recorded or {**(base_provenance or provenance("cpu")), "device": str(row["spec"].get("device"))}
    return row


def _recorded_config(run_dir: Path) -> dict[str, Any]:
    config_file = run_dir / "config.json"
    if not config_file.exists():
        return {}
    try:
        return dict(json.loads(config_file.read_text()).get("config") or {})
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}


def describe(row: Row) -> str:
    """One line for the console: status, the headline metric, the cost."""
    if row.get("status") != "ok":
        err = row.get("error") or {}
        message = str(err.get("message") or "").strip().splitlines()
        return f"ERROR {err.get('type')}: {message[0] if message else ''}"
    final = row.get("final") or {}
    headline = row.get("headline") or {}
    name = headline.get("name")
    if name is None and final.get("test_accuracy") is not None:  # rows written before rows named their headline
        name, headline = "accuracy", {"name": "accuracy", "percent": True}
    value = final.get(f"test_{name}", final.get(name)) if name else None
    if value is not None:
        shown = f"{value:.2%}" if headline.get("percent") else f"{value:.4g}"
        text = f"test {headline.get('label') or name} {shown}"
    elif final.get("test_loss") is not None:
        text = f"test loss {final['test_loss']:.4g}"
    else:
        text = "no test metric"
    stopped = "" if row.get("stopped") in (None, "budget", "time limit") else f", stopped by {row.get('stopped')}"
    cost = f", {row['evaluations']:,} evaluations" if "evaluations" in row else ""
    return f"ok, {text}{cost}, {row.get('wall_time', 0.0):.1f} s{stopped}"


def run_suite(name: str, *, size: str = "full", out_dir: str | Path | None = None,
              overrides: Overrides | None = None, resume: bool = False, data_dir: str | Path | None = None,
              download: bool = True, threads: int | None = None, report: bool = True,
              log: Log | None = print, rerun: Sequence[str] = (), only: Sequence[str] = ()) -> RunOutcome:
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
        log(f"suite {name} ({size}): {len(trials)} trials -> {out / RESULTS}"
            + (f" (only {', '.join(only)})" if only else ""))
    outcome = run_trials(trials, out_dir=out, suite=name, size=size, overrides=overrides, resume=resume,
                         data_dir=data_dir, download=download, progress=None if log else False, log=log,
                         rerun=rerun, only=only)
    if report:
        from gradfree.reports.report import write_report

        files = write_report(out)
        if log:
            log(f"wrote {files.markdown} and {files.html}")
    return outcome
