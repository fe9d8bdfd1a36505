"""The pieces a report is built of (headings, paragraphs, tables, figures, code), and their Markdown form.

A report is a list of blocks rendered twice: to Markdown here and to a self-contained HTML page by
:mod:`gradfree.reports.html`. Report sections (:mod:`gradfree.reports.sections`) return lists of blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gradfree.reports.summary import Table


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


def file_part(text: str) -> str:
    """``text`` made safe inside a :class:`Figure`'s file name: every character but letters, digits, ``-``,
    ``_`` and ``.`` becomes ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


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
