"""The JSONL metrics log: one JSON object per line, appended, truncated back on resume."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    # JSON has no NaN/inf: write them as null so every reader can parse the log.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Append-only JSONL file.

    Args:
        path: the file; ``None`` keeps rows in memory only.
        resume_offset: when resuming, the byte length the log had at the checkpoint; later lines (written
            after the checkpoint by a run that was then killed) are cut so the log matches the state.
    """

    def __init__(self, path: Path | None, *, resume_offset: int | None = None) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_offset is None:
            path.write_text("")
        else:
            with open(path, "r+b") as f:
                f.truncate(resume_offset)
            self.rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (flushed and synced, so a killed run loses at most the row being written)."""
        row = {k: _clean(v) for k, v in row.items()}
        self.rows.append(row)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def offset(self) -> int:
        """Current byte length of the file (0 in memory)."""
        return self.path.stat().st_size if self.path is not None and self.path.exists() else 0
