"""``gradfree report DIR``: a Markdown and a self-contained HTML report drawn from ``DIR/results.jsonl`` alone.

The report is built as a list of blocks (headings, paragraphs, tables, figures, code) and rendered twice:
``report.md`` next to its PNGs, and ``report.html`` with the same PNGs embedded as base64 data URIs (see
:mod:`gradfree.bench.html`). It holds the results table (median [min, max] over seeds per method and group),
the failed trials with their errors, runs that stopped for another reason than their budget, the plots, the
settings of each method and the provenance of the rows. Nothing is taken from memory or from ``suite.json``:
a report can be redrawn from a copied results file at any time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradfree.bench import plots
from gradfree.bench.runner import RESULTS, latest_rows, read_rows
from gradfree.bench.summary import SPREAD, Row, Table, by_method, has_accuracy, summary_table
from gradfree.errors import ConfigError
from gradfree.train.files import save_text


# --------------------------------------------------------------------------------------------------- blocks
@dataclass(frozen=True)
class Heading:
    """A section heading (level 1 is the title)."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    """Text with inline ``code`` and **bold** only."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bulleted list of short texts (same inline markup as :class:`Paragraph`)."""

    items: list[str]


@dataclass(frozen=True)
class TableBlock:
    """A table with an optional caption above it."""

    table: Table
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """A PNG in the report folder, with a caption."""

    file: str
    caption: str


@dataclass(frozen=True)
class Code:
    """Preformatted text; with a ``summary`` the HTML shows it folded under that line."""

    text: str
    summary: str = ""


Block = Heading | Paragraph | Bullets | TableBlock | Figure | Code


def render_markdown(blocks: Sequence[Block]) -> str:
    """The blocks as GitHub-flavoured Markdown."""
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + b.text)
        elif isinstance(b, Paragraph):
            parts.append(b.text)
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, TableBlock):
            parts.append((f"{b.caption}\n\n" if b.caption else "") + b.table.markdown())
        elif isinstance(b, Figure):
            parts.append(f"![{b.caption}]({b.file})\n\n*{b.caption}*")
        elif isinstance(b, Code):
            parts.append((f"{b.summary}:\n\n" if b.summary else "") + "```\n" + b.text.rstrip() + "\n```")
    return "\n\n".join(parts) + "\n"


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
    from gradfree.bench.html import render_html

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


def _spec(row: Row) -> dict[str, Any]:
    return row.get("spec") or {}


def _one(values: Sequence[Any]) -> Any:
    distinct = list(dict.fromkeys(map(repr, values)))
    return values[0] if len(distinct) == 1 else None


def _budget_text(spec: dict[str, Any]) -> str:
    parts = []
    if spec.get("budget"):
        parts.append(f"{spec['budget']:,} evaluations")
    if spec.get("time_limit"):
        parts.append(f"{spec['time_limit']:g} s of training")
    return " or ".join(parts) or "no budget recorded"


def _title(rows: Sequence[Row]) -> str:
    suites = list(dict.fromkeys(str(r.get("suite", "")) for r in rows))
    sizes = list(dict.fromkeys(str(r.get("size", "")) for r in rows if r.get("size")))
    name = ", ".join(s for s in suites if s) or "results"
    return f"Benchmark: {name}" + (f" ({', '.join(sizes)})" if sizes else "")


def _overview(rows: Sequence[Row], ok: Sequence[Row]) -> str:
    specs = [_spec(r) for r in rows]
    tasks = ", ".join(dict.fromkeys(str(s.get("task")) for s in specs))
    models = ", ".join(f"`{m}`" for m in dict.fromkeys(str(s.get("model")) for s in specs))
    seeds = sorted({int(r.get("seed", 0)) for r in rows})
    budgets = list(dict.fromkeys(_budget_text(s) for s in specs))
    batch = list(dict.fromkeys(s.get("batch_size") for s in specs))
    text = (f"{len(rows)} trials ({len(ok)} ok, {len(rows) - len(ok)} failed) on task {tasks} with model {models}; "
            f"seeds {', '.join(map(str, seeds))}. ")
    text += (f"Every run has the same budget: {budgets[0]}. " if len(budgets) == 1
             else f"Budgets differ between trials ({'; '.join(budgets)}). ")
    if len(batch) == 1:
        text += f"Mini-batches of {batch[0] if batch[0] else 'the full training split'} rows. "
    text += ("One evaluation is one forward pass of one parameter vector over one batch; a backprop step counts "
             "one evaluation plus one backward pass; validation passes are not charged. Each run ends on the "
             f"weights of its best validation loss. Table cells are {SPREAD} (one value for one seed); wall time "
             "is training time: validation, checkpoints, data loading and the final evaluation are not counted.")
    return text


def _group_sweep(rows: Sequence[Row]) -> tuple[str, dict[str, float]] | None:
    """``(name, value per group)`` when every group is ``NAME=NUMBER`` with one NAME (e.g. ``batch=64``)."""
    groups = list(dict.fromkeys(str(r.get("group") or "") for r in rows))
    found: dict[str, float] = {}
    names = set()
    for g in groups:
        m = re.fullmatch(r"\s*([A-Za-z_][\w -]*?)\s*=\s*([-+0-9.eE]+)\s*", g)
        if m is None:
            return None
        try:
            found[g] = float(m.group(2))
        except ValueError:
            return None
        names.add(m.group(1))
    if len(names) != 1 or len(found) < 2:
        return None
    return names.pop(), found


def _budget_sweep(rows: Sequence[Row]) -> str | None:
    """``"budget"`` or ``"time_limit"`` when one method ran at several budgets (within one group)."""
    for key in ("budget", "time_limit"):
        for members in by_method(rows).values():
            if len({_spec(r).get(key) for r in members} - {None}) > 1:
                return key
    return None


SWEEP_LABELS = {"batch": "batch size (rows per evaluation)", "batch_size": "batch size (rows per evaluation)"}


def build_report(rows: Sequence[Row], out: Path, *, title: str | None = None, intro: Sequence[str] = (),
                 outro: Sequence[str] = (), superseded: int = 0, unreadable: int = 0
                 ) -> tuple[list[Block], list[Path]]:
    """The report's blocks for the latest row of each trial; writes the PNGs into ``out``."""
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    blocks: list[Block] = [Heading(title or _title(rows), 1)]
    blocks += [Paragraph(p) for p in intro] or [Paragraph(_overview(rows, ok))]
    figures: list[Path] = []

    if ok:
        blocks += [Heading("Results"), TableBlock(summary_table(ok), caption=f"Cells: {SPREAD}.")]
        blocks += _figures(ok, out, figures)
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
                   Bullets([f"`{r['key']}`: {r.get('stopped')} after {r.get('evaluations', 0):,} evaluations"
                            for r in early])]

    blocks += _settings(rows)
    blocks += _provenance(ok or rows)
    blocks += [Paragraph(p) for p in outro]
    notes = [f"Drawn from `{RESULTS}` ({len(rows)} trials"]
    if superseded:
        notes.append(f"{superseded} earlier attempt(s) superseded by reruns")
    if unreadable:
        notes.append(f"{unreadable} unreadable line(s) skipped")
    blocks.append(Paragraph(", ".join(notes) + ")."))
    return blocks, figures


def _first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0][:300] if lines else ""


def _figures(rows: Sequence[Row], out: Path, written: list[Path]) -> list[Block]:
    """Write the plots for the ``ok`` rows; return their figure blocks."""
    blocks: list[Block] = [Heading("Plots")]
    classification = has_accuracy(rows)
    loss_name = "validation loss (cross-entropy)" if classification else "validation loss"
    batch = _one([_spec(r).get("batch_size") for r in rows])
    evals_label = ("objective evaluations (forward passes of one parameter vector over "
                   + (f"a batch of {batch} rows)" if batch else "one batch)"))
    title_base = ", ".join(dict.fromkeys(f"{_spec(r).get('task')}, {_spec(r).get('model')}" for r in rows))

    def add(path: Path | None, caption: str) -> None:
        if path is not None:
            written.append(path)
            blocks.append(Figure(path.name, caption))

    add(plots.curves(rows, x_key="evaluations", y_key="val_loss", x_label=evals_label, y_label=loss_name,
                     title=f"{title_base}: validation loss vs evaluations", path=out / "loss_vs_evaluations.png"),
        "Validation loss against objective evaluations (thin lines: seeds; thick: median over seeds).")
    add(plots.curves(rows, x_key="time", y_key="val_loss", x_label="training wall time (s)",
                     y_label=loss_name, title=f"{title_base}: validation loss vs wall time",
                     path=out / "loss_vs_time.png"),
        "Validation loss against training wall time (validation not counted).")

    sweep = _budget_sweep(rows)
    metric_key = "test_accuracy" if classification else "test_loss"
    metric_label = "test accuracy" if classification else "test loss"
    if sweep is not None:
        unit = "evaluation budget" if sweep == "budget" else "time budget (s)"
        add(plots.sweep(rows, x_of=lambda r: _spec(r).get(sweep), x_label=unit,
                        panels=[(metric_key, f"final {metric_label}", classification)],
                        title=f"{title_base}: final {metric_label} vs {unit}", path=out / "accuracy_vs_budget.png"),
            f"Final {metric_label} against the run's {unit}, across trials of different budgets ({SPREAD}).")
    elif classification:
        time_only = all(not _spec(r).get("budget") and _spec(r).get("time_limit") for r in rows)
        x_key, x_label, name = (("time", "training wall time (s)", "accuracy_vs_time.png") if time_only
                                else ("evaluations", evals_label, "accuracy_vs_evaluations.png"))
        add(plots.curves(rows, x_key=x_key, y_key="val_accuracy", x_label=x_label,
                         y_label="validation accuracy (lines), test accuracy (stars)",
                         title=f"{title_base}: accuracy vs {'wall time' if time_only else 'evaluations'}",
                         path=out / name, log_y=False, percent=True, final_key="test_accuracy",
                         final_label="final test accuracy (median, min–max)"),
            "Validation accuracy during training (lines) and the final test accuracy (stars, median with "
            "min–max over seeds), against " + ("training wall time." if time_only else "evaluations. ")
            + ("" if time_only else "The test split is scored once, at the end."))

    add(plots.final_bars(rows, metrics=[("train_loss", "final train loss"), ("test_loss", "final test loss")],
                         y_label="loss" + (" (cross-entropy)" if classification else ""),
                         title=f"{title_base}: final loss (median, min–max over seeds)", path=out / "final_loss.png"),
        "Final train and test loss per method: bars are medians, whiskers min–max over seeds.")
    if classification:
        add(plots.final_bars(rows, metrics=[("train_accuracy", "train accuracy"), ("test_accuracy", "test accuracy")],
                             y_label="accuracy", percent=True,
                             title=f"{title_base}: final accuracy (median, min–max over seeds)",
                             path=out / "final_accuracy.png"),
            "Final train and test accuracy per method: bars are medians, whiskers min–max over seeds.")

    swept = _group_sweep(rows)
    if swept is not None:
        name, values = swept
        x_label = SWEEP_LABELS.get(name, name)
        y_key, y_label = ("val_accuracy", "validation accuracy") if classification else ("val_loss", "validation loss")
        add(plots.sweep(rows, x_of=lambda r: values.get(str(r.get("group") or "")), x_label=x_label,
                        panels=[(metric_key, f"final {metric_label}", classification),
                                ("steps_per_s", "updates per second", False),
                                ("evals_per_s", "evaluations per second", False)],
                        title=f"{title_base}: effect of {x_label}", path=out / f"sweep_{_slug(name)}.png"),
            f"Final {metric_label}, updates per second and evaluations per second against {x_label} ({SPREAD}).")
        add(plots.curves_by_group(rows, group_value=values.get, group_label=x_label,
                                  x_axes=[("steps", "updates (optimizer steps)"),
                                          ("time", "training wall time (s)")],
                                  y_key=y_key, y_label=y_label, percent=classification,
                                  title=f"{title_base}: {y_label} per update and per second, by {x_label}",
                                  path=out / f"by_{_slug(name)}.png"),
            f"What each method reaches per update (top) and per second (bottom) at each {x_label}: {y_label}, "
            "median over seeds.")
    return blocks if len(blocks) > 1 else []


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "group"


def _settings(rows: Sequence[Row]) -> list[Block]:
    header = ["method", "optimizer", "options", "task", "model", "batch", "budget", "eval every", "train rows"]
    body: list[list[str]] = []
    grouped = any(g for g, _ in by_method(rows))
    for (group, method), members in by_method(rows).items():
        spec = _spec(members[0])
        options = ", ".join(f"{k}={v}" for k, v in (spec.get("options") or {}).items()) or "defaults"
        body.append(([group] if grouped else []) + [
            method, str(spec.get("optimizer")), options, str(spec.get("task")), str(spec.get("model")),
            str(spec.get("batch_size") or "full"), _budget_text(spec), f"{spec.get('eval_every', 0):,}",
            str(spec.get("train_subset") or "all")])
    table = Table((["group"] if grouped else []) + header, body, [False] * (len(header) + grouped))
    blocks: list[Block] = [Heading("Settings"), TableBlock(table, caption="Each method's settings (first seed).")]
    notes: dict[str, None] = {}
    for r in rows:
        for k, v in (r.get("notes") or {}).items():
            notes.setdefault(f"{k}: {v}", None)
    if notes:
        blocks.append(Bullets(list(notes)))
    return blocks


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

