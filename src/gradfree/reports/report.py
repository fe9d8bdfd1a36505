"""``gradfree report DIR``: a Markdown and a self-contained HTML report drawn from ``DIR/results.jsonl`` alone.

The report is built as a list of blocks (headings, paragraphs, tables, figures, code) and rendered twice:
``report.md`` next to its PNGs, and ``report.html`` with the same PNGs embedded as base64 data URIs (see
:mod:`gradfree.reports.html`). It holds the results table (median [min, max] over seeds per method and group),
the failed trials with their errors, runs that stopped for another reason than their budget, the plots, the
settings of each method and the provenance of the rows. Nothing is taken from memory or from ``suite.json``:
a report can be redrawn from a copied results file at any time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradfree.errors import ConfigError
from gradfree.experiments.rows import RESULTS, Row, latest_rows, read_rows
from gradfree.reports.blocks import Block, Bullets, Code, Figure, Heading, Paragraph, TableBlock, render_markdown
from gradfree.reports.sections import load_sections, row_kind
from gradfree.reports.summary import SPREAD, Table, summary_table
from gradfree.train.files import save_text


# ------------------------------------------------------------------------------------------------ the report
@dataclass
class ReportFiles:
    """The files a report wrote."""

    markdown: Path
    html: Path
    figures: list[Path] = field(default_factory=list)


def load_results(out_dir: str | Path) -> tuple[list[Row], int]:
    """The rows of ``out_dir/results.jsonl`` and the number of unreadable lines; a clear error when absent."""
    path = Path(out_dir) / RESULTS
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: pass the --out folder of a `gradfree bench` run")
    rows, bad = read_rows(path)
    if not rows:
        raise ConfigError(f"{path} holds no result rows yet; run `gradfree bench` into {Path(out_dir)} first")
    return rows, bad


def write_report(out_dir: str | Path, *, rows: Sequence[Row] | None = None, title: str | None = None,
                 intro: Sequence[str] = (), outro: Sequence[str] = ()) -> ReportFiles:
    """Render ``report.md``, ``report.html`` and the PNGs into ``out_dir``.

    Args:
        out_dir: the benchmark folder.
        rows: the result rows; by default read from ``out_dir/results.jsonl``.
        title: the report's title (default: from the suite named in the rows).
        intro, outro: paragraphs (Markdown with inline code and bold) before the results and at the end.
    """
    from gradfree.reports.html import render_html

    out = Path(out_dir)
    bad = 0
    if rows is None:
        rows, bad = load_results(out)
    all_rows = list(rows)
    latest = latest_rows(all_rows)
    blocks, figures = build_report(latest, out, title=title, intro=intro, outro=outro,
                                   superseded=len(all_rows) - len(latest), unreadable=bad)
    md, html = out / "report.md", out / "report.html"
    save_text(render_markdown(blocks), md)
    save_text(render_html(blocks, base_dir=out), html)
    return ReportFiles(md, html, figures)


def build_report(rows: Sequence[Row], out: Path, *, title: str | None = None, intro: Sequence[str] = (),
                 outro: Sequence[str] = (), superseded: int = 0, unreadable: int = 0
                 ) -> tuple[list[Block], list[Path]]:
    """The report's blocks for the latest row of each trial; writes the PNGs into ``out``.

    The shared parts (title, results table, failures, early stops, provenance) are drawn here; each trial
    kind's own overview, figures and settings come from its registered :class:`~gradfree.reports.sections.Sections`.
    """
    sections = load_sections()
    kinds = list(dict.fromkeys(row_kind(r) for r in rows))
    by_kind = {k: [r for r in rows if row_kind(r) == k] for k in kinds}
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    blocks: list[Block] = [Heading(title or _title(rows), 1)]
    if intro:
        blocks += [Paragraph(p) for p in intro]
    else:
        for k in kinds:
            overview = sections.get(k).overview if k in sections else None
            if overview is not None:
                blocks += overview(by_kind[k])

    if ok:
        blocks += [Heading("Results")]
        for k in kinds:
            members = [r for r in by_kind[k] if r.get("status") == "ok"]
            if members:
                caption = f"Cells: {SPREAD}." + (f" Trials of kind {k!r}." if len(kinds) > 1 else "")
                blocks.append(TableBlock(summary_table(members), caption=caption))
        for k in kinds:
            members = [r for r in by_kind[k] if r.get("status") == "ok"]
            draw = sections.get(k).figures if k in sections else None
            if members and draw is not None:
                blocks += draw(members, out)
    else:
        blocks += [Heading("Results"), Paragraph("No trial finished: there is nothing to tabulate or plot.")]

    if failed:
        blocks += [Heading("Failed trials"),
                   Paragraph(f"{len(failed)} trial(s) raised an error; their rows hold the full traceback. "
                             "`gradfree bench ... --resume` reruns them.")]
        table = Table(["trial", "error", "message"],
                      [[r["key"], str((r.get("error") or {}).get("type")),
                        _first_line((r.get("error") or {}).get("message"))] for r in failed],
                      [False, False, False])
        blocks.append(TableBlock(table))
        for r in failed:
            tb = str((r.get("error") or {}).get("traceback") or "").strip()
            if tb:
                blocks.append(Code(tb, summary=f"traceback of {r['key']}"))

    early = [r for r in ok if r.get("stopped") not in ("budget", "time limit", None)]
    if early:
        blocks += [Heading("Runs that stopped before their budget"),
                   Bullets([f"`{r['key']}`: {r.get('stopped')}"
                            + (f" after {r['evaluations']:,} evaluations" if "evaluations" in r else "")
                            for r in early])]

    for k in kinds:
        describe = sections.get(k).settings if k in sections else None
        if describe is not None:
            blocks += describe(by_kind[k])
    blocks += _provenance(ok or rows)
    blocks += [Paragraph(p) for p in outro]
    notes = [f"Drawn from `{RESULTS}` ({len(rows)} trials"]
    if superseded:
        notes.append(f"{superseded} earlier attempt(s) superseded by reruns")
    if unreadable:
        notes.append(f"{unreadable} unreadable line(s) skipped")
    blocks.append(Paragraph(", ".join(notes) + ")."))
    figures = [out / b.file for b in blocks if isinstance(b, Figure)]
    return blocks, figures


def _title(rows: Sequence[Row]) -> str:
    suites = list(dict.fromkeys(str(r.get("suite", "")) for r in rows))
    sizes = list(dict.fromkeys(str(r.get("size", "")) for r in rows if r.get("size")))
    name = ", ".join(s for s in suites if s) or "results"
    return f"Benchmark: {name}" + (f" ({', '.join(sizes)})" if sizes else "")


def _first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0][:300] if lines else ""


def _provenance(rows: Sequence[Row]) -> list[Block]:
    keys = [("gradfree", "gradfree"), ("git_revision", "git revision"), ("torch", "torch"), ("numpy", "numpy"),
            ("python", "python"), ("device", "device"), ("device_name", "device name"),
            ("torch_threads", "torch threads"), ("platform", "platform")]
    items = []
    for key, label in keys:
        values = list(dict.fromkeys(str((r.get("provenance") or {}).get(key)) for r in rows
                                    if (r.get("provenance") or {}).get(key) is not None))
        if values:
            mixed = " (**mixed**: rows come from different setups)" if len(values) > 1 else ""
            items.append(f"{label}: " + ", ".join(f"`{v}`" for v in values) + mixed)
    started = sorted(str(r["started_at"]) for r in rows if r.get("started_at"))
    if started:
        items.append(f"trials started between {started[0]} and {started[-1]} (UTC)")
    return [Heading("Provenance"), Bullets(items)] if items else []

