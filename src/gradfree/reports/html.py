"""Report blocks as one self-contained HTML page: inline CSS, PNGs embedded as base64 data URIs.

The page references nothing outside itself (no scripts, fonts, style sheets or remote images), so it can be
mailed, archived or opened offline and still show every table and plot.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

from gradfree.reports.blocks import Block, Bullets, Code, Figure, Heading, Paragraph, TableBlock

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1180px;
       margin: 2em auto; padding: 0 1.2em; color: #1b1f24; line-height: 1.5; }
h1 { font-size: 1.7em; border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .88em; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .3em .6em; white-space: nowrap; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fbfcfd; }
.caption { color: #57606a; font-size: .9em; margin-bottom: .2em; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: .9em; }
code { background: #f6f8fa; padding: .1em .3em; border-radius: 3px; font-size: .92em; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: .82em; border-radius: 4px; }
details { margin: .4em 0; } summary { cursor: pointer; color: #0550ae; }
"""


def inline(text: str) -> str:
    """Escape ``text`` and turn ``code`` and **bold** into HTML."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def data_uri(path: Path) -> str:
    """The PNG at ``path`` as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(blocks: Sequence[Block], *, base_dir: Path) -> str:
    """The blocks as a complete HTML document; figures are read from ``base_dir`` and embedded."""
    title = next((b.text for b in blocks if isinstance(b, Heading) and b.level == 1), "gradfree report")
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{inline(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            body.append(f"<p>{inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, TableBlock):
            t = b.table
            head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
            rows = "".join("<tr>" + "".join(f'<td class="num">{html.escape(c)}</td>' if n
                                            else f"<td>{html.escape(c)}</td>"
                                            for c, n in zip(r, t.numeric, strict=True)) + "</tr>"
                           for r in t.rows)
            caption = f'<div class="caption">{inline(b.caption)}</div>' if b.caption else ""
            body.append(f"{caption}<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Figure):
            path = base_dir / b.file
            src = data_uri(path) if path.is_file() else ""
            alt = html.escape(b.caption, quote=True)
            body.append(f'<figure><img src="{src}" alt="{alt}"><figcaption>{inline(b.caption)}</figcaption>'
                        "</figure>")
        elif isinstance(b, Code):
            pre = f"<pre>{html.escape(b.text.rstrip())}</pre>"
            body.append(f"<details><summary>{inline(b.summary)}</summary>{pre}</details>" if b.summary else pre)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
