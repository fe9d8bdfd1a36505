"""The results file of a benchmark: one JSON row per trial, appended whole, read back by the runner and reports.

``OUT/results.jsonl`` is the only record a report is drawn from. A row holds the suite, the trial (key, label,
group, seed, kind, its resolved spec, notes), its status (``"ok"`` or ``"error"``), the trial's summary at the
top level (``evaluations``, ``wall_time``, ``stopped`` ... for training; queries and times for others), the
task's headline metric under ``headline``, the final metrics under ``final``, the curves under ``history``,
files it wrote (pictures) under ``artifacts`` (paths relative to OUT), the error (type, message, traceback)
of a crashed trial under ``error``, and provenance (versions, git revision, device). A row is appended whole
with one ``write`` and fsynced, so an interrupt leaves the file consistent; a torn last line (a killed
machine) is cut off when a run resumes, and readers skip it. Appends and that repair hold an exclusive
``flock`` on the file (where the platform has one), so processes sharing one folder (``bench --only``) never
cut a line another is writing.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = "results.jsonl"
SUITE_FILE = "suite.json"
RUNS = "runs"

Row = dict[str, Any]

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one process per results file there
    fcntl = None  # type: ignore[assignment]


@contextmanager
def _locked(fd: int) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


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
        with _locked(fd):
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
    with open(path, "r+b") as f, _locked(f.fileno()):
        data = f.read()
        if not data or data.endswith(b"\n"):
            return False
        f.truncate(data.rfind(b"\n") + 1)
    return True
