"""MkDocs hooks of the gradfree site: the API reference pages and the tutorial pages, generated at build time.

Two kinds of page are not written by hand, so that they cannot go stale:

* **API reference**: one page per package of ``src/gradfree`` (and one for the top-level modules), holding a
  mkdocstrings block (``::: gradfree.optim.zo_adam``) for every public module in it. A new module appears
  in the reference without anyone editing a page; a docstring that mkdocstrings cannot render is a warning,
  and ``mkdocs build --strict`` fails on it.
* **Tutorials**: every ``docs/tutorials/*.ipynb`` becomes a Markdown page of its cells and their committed
  outputs (text, tables, PNG figures). A notebook whose committed outputs hold an error, or that has no
  ``parameters`` cell, is a warning, so the strict build fails on it too. The notebooks themselves are copied
  beside the pages for download.

Only the standard library and MkDocs are used (no notebook plugin), so the site builds offline.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.gradfree")

KNOWN_DOCSTRING_WARNINGS: tuple[tuple[str, str], ...] = (
    ("src/gradfree/strategies/sep_cma.py", "Failed to get 'name: description' pair"),
    ("src/gradfree/victims/images.py", "Failed to get 'name: description' pair"),
)
"""Docstring warnings known and reported to their files' owners (an ``Attributes:`` entry that is not
``name: description``), shown as information rather than failing the strict build. Every other docstring
warning fails it. Remove an entry once its docstring is fixed."""


class _KnownDocstringWarnings(logging.Filter):
    """Downgrades the warnings of :data:`KNOWN_DOCSTRING_WARNINGS` to INFO (so strict mode does not count them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno == logging.WARNING and any(file in message and text in message
                                                     for file, text in KNOWN_DOCSTRING_WARNINGS):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


logging.getLogger("mkdocs.plugins.griffe").addFilter(_KnownDocstringWarnings())

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "gradfree"
TUTORIALS = "tutorials"

PACKAGE_TITLES = {
    "params": "params: flat parameter views",
    "objective": "objective: what is minimised",
    "engines": "engines: incremental evaluation",
    "estimators": "estimators: zeroth-order gradients",
    "optim": "optim: optimizers",
    "search": "search: one-solution search",
    "strategies": "strategies: population strategies",
    "distributed": "distributed: evaluators and Ray",
    "data": "data: datasets and batches",
    "models": "models",
    "tasks": "tasks",
    "train": "train: the trainer",
    "attacks": "attacks",
    "explain": "explain: explanations",
    "victims": "victims",
    "detection": "detection",
    "experiments": "experiments: benchmarks",
    "reports": "reports",
    "perf": "perf: measurement programs",
}
"""Packages in the order of the layers (docs/ARCHITECTURE.md), bottom up, with their nav titles."""


# ----------------------------------------------------------------------------------------- API reference
def api_modules() -> dict[str, list[str]]:
    """Package name -> the dotted names of its public modules (``"core"``: the top-level modules)."""
    out: dict[str, list[str]] = {"core": []}
    for path in sorted(PACKAGE.glob("*.py")):
        if not path.stem.startswith("_"):
            out["core"].append(f"gradfree.{path.stem}")
    for package in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        modules = [f"gradfree.{package.name}"]
        for path in sorted(package.rglob("*.py")):
            rel = path.relative_to(PACKAGE).with_suffix("")
            if any(part.startswith("_") for part in rel.parts):
                continue
            modules.append("gradfree." + ".".join(rel.parts))
        out[package.name] = modules
    return out


def api_page(package: str, modules: list[str]) -> str:
    """The Markdown of one package's reference page."""
    title = "Top-level modules" if package == "core" else f"gradfree.{package}"
    lines = [f"# {title}", ""]
    if package != "core":
        # The package's own docstring first, without its re-exported members (each is documented in its module).
        lines += [f"::: {modules[0]}", "    options:", "      members: false", "      show_root_heading: false",
                  "      show_root_toc_entry: false", ""]
        modules = modules[1:]
    for module in modules:
        lines += [f"::: {module}", ""]
    return "\n".join(lines)


def api_nav() -> list[Any]:
    """The API section of the navigation, packages in layer order."""
    found = api_modules()
    order = [name for name in PACKAGE_TITLES if name in found]
    order += sorted(name for name in found if name not in PACKAGE_TITLES and name != "core")
    nav: list[Any] = [{"Overview": "api/index.md"}, {"errors, registry, cli, run": "api/core.md"}]
    nav += [{PACKAGE_TITLES.get(name, name): f"api/{name}.md"} for name in order]
    return nav


# -------------------------------------------------------------------------------------------- tutorials
def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def _fence(body: str, lang: str = "") -> list[str]:
    body = body.rstrip("\n")
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return [f"{ticks}{lang}", body, ticks, ""]


def notebook_page(notebook: dict[str, Any], name: str) -> tuple[str, dict[str, bytes], list[str]]:
    """A notebook as Markdown: cells in order, code fenced, outputs after their cell.

    Returns:
        ``(markdown, images, problems)``: the page, the PNG outputs by file name (``{name}_files/...``, linked
        from the page) and what is wrong with the notebook (error outputs, no ``parameters`` cell).
    """
    lines: list[str] = []
    images: dict[str, bytes] = {}
    problems: list[str] = []
    has_parameters = False
    for number, cell in enumerate(notebook.get("cells", [])):
        source = _text(cell.get("source", ""))
        kind = cell.get("cell_type")
        if kind == "markdown":
            lines += [source, ""]
            continue
        if kind != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if "parameters" in tags:
            has_parameters = True
            lines += ["*Parameters (the test suite sets these to run the notebook at its small size):*", ""]
        if "injected-parameters" in tags:
            lines += ["*The parameters of the run whose outputs are shown:*", ""]
        if source.strip():
            lines += _fence(source, "python")
        for index, output in enumerate(cell.get("outputs", [])):
            kind = output.get("output_type")
            if kind == "stream":
                lines += _fence(_text(output.get("text", "")), "text")
            elif kind == "error":
                problems.append(f"cell {number} holds an error output: {output.get('ename')}: {output.get('evalue')}")
            elif kind in ("execute_result", "display_data"):
                data = output.get("data", {})
                if "image/png" in data:
                    file = f"{name}_files/cell{number}_{index}.png"
                    images[file] = base64.b64decode(_text(data["image/png"]))
                    lines += [f"![output of cell {number}]({file})", ""]
                elif "text/markdown" in data:
                    lines += [_text(data["text/markdown"]), ""]
                elif "text/html" in data:
                    lines += ['<div class="nb-output" markdown="0">', _text(data["text/html"]), "</div>", ""]
                elif "text/plain" in data:
                    lines += _fence(_text(data["text/plain"]), "text")
    if not has_parameters:
        problems.append("no cell is tagged 'parameters' (the test suite sets the notebook's size there)")
    return "\n".join(lines), images, problems


# ----------------------------------------------------------------------------------- docstring references
SPHINX_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):<code>(~?)([\w.]+)</code>")
"""A Sphinx cross-reference role (``:class:`~gradfree.x.Y```) as Markdown renders it inside a docstring."""


def sphinx_roles_to_autorefs(html: str) -> str:
    """Turn the docstrings' Sphinx roles into mkdocs-autorefs references: a link where the target is in the
    reference, plain code where it is not (``optional``: an unresolved role is no warning); ``~`` shows the
    last name only, as Sphinx does."""

    def link(match: re.Match[str]) -> str:
        tilde, target = match.group(1), match.group(2)
        shown = target.rsplit(".", 1)[-1] if tilde else target
        return f'<autoref identifier="{target}" optional><code>{shown}</code></autoref>'

    return SPHINX_ROLE.sub(link, html)


# ------------------------------------------------------------------------------------------------- hooks
def on_page_content(html: str, **_: Any) -> str:
    """Link the docstrings' Sphinx roles (see :func:`sphinx_roles_to_autorefs`)."""
    return sphinx_roles_to_autorefs(html)


def results_nav(docs: Path) -> list[Any]:
    """The benchmark results section: ``results/README.md``, then every ``results/<folder>/report.md``."""
    reports = sorted((docs / "results").glob("*/report.md"))
    return ["results/README.md", *({path.parent.name: f"results/{path.parent.name}/report.md"} for path in reports)]


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Fill the navigation's "API reference" section from the package tree, and its "Benchmark results"
    section from the report folders in ``docs/results/`` (a new suite's report appears without an edit)."""
    for entry in config.nav or []:
        if isinstance(entry, dict) and "API reference" in entry:
            entry["API reference"] = api_nav()
        if isinstance(entry, dict) and "Benchmark results" in entry:
            entry["Benchmark results"] = results_nav(Path(config.docs_dir))
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated API pages and one page (with its figures) per tutorial notebook."""
    for package, modules in api_modules().items():
        files.append(File.generated(config, f"api/{package}.md", content=api_page(package, modules)))
    docs = Path(config.docs_dir)
    for path in sorted((docs / TUTORIALS).glob("*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        page, images, problems = notebook_page(notebook, path.stem)
        for problem in problems:
            log.warning("%s: %s", path.relative_to(docs), problem)
        download = (f"\n\n---\n*Download: [the notebook]({path.name}) · [its plain-text twin]({path.stem}.py) "
                    "(jupytext, percent format).*\n")
        files.append(File.generated(config, f"{TUTORIALS}/{path.stem}.md", content=page + download))
        for file, content in images.items():
            files.append(File.generated(config, f"{TUTORIALS}/{file}", content=content))
    return files
