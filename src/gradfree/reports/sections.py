"""Report sections by trial kind: what a report shows beyond the shared results table.

Every report has a title, the results table (median [min, max] over seeds of the headline and the other
final metrics), the failed trials, the settings and the provenance. A trial kind adds what only it can draw —
training curves, success-against-queries curves, pictures of adversarial examples, heat maps — by registering
a :class:`Sections` here, from its own module (the one that registers the kind, listed in
:data:`gradfree.experiments.kinds.KIND_MODULES`)::

    REPORT_SECTIONS.add("attack", Sections(overview=..., figures=..., settings=...), summary="...")

Each function takes the kind's rows (the latest row of each trial) and the report folder, and returns blocks;
``figures`` may write PNGs into the folder and returns their blocks.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gradfree.experiments.kinds import load_kinds
from gradfree.experiments.rows import Row
from gradfree.registry import Registry
from gradfree.reports.blocks import Block

SectionFn = Callable[[Sequence[Row], Path], list[Block]]


@dataclass(frozen=True)
class Sections:
    """A trial kind's report sections (``None``: the kind adds nothing there).

    Attributes:
        overview: a paragraph or two under the title: what ran, what was held equal, what a cell shows.
        figures: plots and pictures, written into the folder.
        settings: each method's settings.
    """

    overview: Callable[[Sequence[Row]], list[Block]] | None = None
    figures: SectionFn | None = None
    settings: Callable[[Sequence[Row]], list[Block]] | None = None


REPORT_SECTIONS: Registry[Sections] = Registry("report section")

SECTION_MODULES: list[str] = ["gradfree.reports.training", "gradfree.detection.report", "gradfree.attacks.report",
                               "gradfree.explain.report"]


def load_sections() -> Registry[Sections]:
    """Import the modules that register sections (and every trial kind's module) and return the registry."""
    load_kinds()
    for module in SECTION_MODULES:
        importlib.import_module(module)
    return REPORT_SECTIONS


def row_kind(row: Row) -> str:
    """The trial kind a row came from (rows written before kinds existed are training rows)."""
    return str(row.get("kind") or "train")
