"""The demo writes a report with a results table and both plots, from its own rows."""

from __future__ import annotations

import json
from pathlib import Path

from gradfree.experiments.demo import METHODS, run_demo


def test_demo_writes_report_and_plots(tmp_path: Path) -> None:
    report = run_demo(out_dir=tmp_path, budget=1500, seeds=2)
    text = report.read_text()
    for method in METHODS:
        assert f"| {method} | 2 |" in text
    for png in ("loss_vs_evaluations.png", "loss_vs_time.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        assert f"]({png})" in text
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * len(METHODS)
    assert all(1500 <= r["evaluations"] < 1500 + 21 for r in rows)
    # Rerunning replaces the demo's own runs instead of refusing the folder.
    run_demo(out_dir=tmp_path, budget=300, seeds=1)
