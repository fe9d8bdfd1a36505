"""Run the tutorials: execute a notebook from its plain-text twin, with parameters, and keep its outputs.

Each tutorial is a pair in ``docs/tutorials/``: ``NN-name.py`` (jupytext, percent format: the file to edit and
diff) and ``NN-name.ipynb`` (the same cells with the outputs of a run, which the site shows). A notebook's
sizes are set in its cell tagged ``parameters`` (papermill's convention); a run at other values adds a cell
tagged ``injected-parameters`` right after it, so the notebook shows what it was run with.

Usage (from the repository root)::

    python docs/tools/notebooks.py run 03-search-vs-gradient          # at the notebook's own size (full)
    python docs/tools/notebooks.py run 02-rso-vs-sgd --set SIZE='"medium"'
    python docs/tools/notebooks.py run all                             # every tutorial, one after another
    python docs/tools/notebooks.py check                               # twins match, outputs are clean

``run`` executes the twin's cells in a fresh kernel (working directory: a temporary folder, so run folders do
not land in the repository), records the parameters, the time it took and the git revision in the
notebook's metadata (``"gradfree"``), and writes ``NN-name.ipynb``. Datasets are found as the library finds
them (``$GRADFREE_DATA``, the cache, ...), so ``GRADFREE_DATA=../shared/data python docs/tools/notebooks.py
run ...`` runs the MNIST tutorials on the shared copy. The test suite (``tests/docs/test_tutorials.py``)
uses the same functions to run every notebook at its small size.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "docs" / "tutorials"
PARAMETERS = "parameters"
INJECTED = "injected-parameters"
META = "gradfree"


def tutorials() -> list[str]:
    """The tutorials' names (``NN-name``), in order: every ``docs/tutorials/NN-*.py`` twin."""
    return sorted(p.stem for p in TUTORIALS.glob("[0-9][0-9]-*.py"))


def read_twin(name: str) -> Any:
    """The notebook of the plain-text twin ``docs/tutorials/{name}.py`` (no outputs)."""
    import jupytext

    return jupytext.read(TUTORIALS / f"{name}.py")


def read_notebook(name: str) -> Any:
    """The committed notebook ``docs/tutorials/{name}.ipynb`` (with its outputs)."""
    import nbformat

    return nbformat.read(TUTORIALS / f"{name}.ipynb", as_version=4)


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def cell_sources(notebook: Any) -> list[tuple[str, str]]:
    """``(cell type, source)`` of every cell but injected parameters: what the twin and the notebook share."""
    return [(c.cell_type, c.source.strip()) for c in notebook.cells if INJECTED not in _tags(c)]


def parameters_of(notebook: Any) -> dict[str, Any]:
    """The values the ``parameters`` cell assigns (literals only), e.g. ``{"SIZE": "full"}``."""
    cells = [c for c in notebook.cells if PARAMETERS in _tags(c)]
    if len(cells) != 1:
        raise ValueError(f"expected one cell tagged {PARAMETERS!r}, found {len(cells)}")
    values: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def with_parameters(notebook: Any, values: Mapping[str, Any]) -> Any:
    """``notebook`` with a cell tagged ``injected-parameters`` setting ``values`` after its parameters cell.

    Every name must be one the parameters cell assigns (a misspelt parameter would silently do nothing).
    """
    import nbformat

    known = parameters_of(notebook)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"the notebook has no parameter {', '.join(unknown)}; it has: {', '.join(known)}")
    notebook = nbformat.from_dict(notebook)
    notebook.cells = [c for c in notebook.cells if INJECTED not in _tags(c)]
    if not values:
        return notebook
    index = next(i for i, c in enumerate(notebook.cells) if PARAMETERS in _tags(c))
    source = "# Parameters of this run\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED]})
    notebook.cells.insert(index + 1, cell)
    return notebook


def execute(notebook: Any, *, cwd: str | Path, km: Any = None, timeout: int = 1800) -> Any:
    """Execute ``notebook`` in place (in the kernel of ``km``, else a fresh one) with ``cwd`` as its working
    folder; a cell that raises raises ``nbclient.exceptions.CellExecutionError`` naming it."""
    from nbclient import NotebookClient

    client = NotebookClient(notebook, km=km, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return notebook


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "docs/tutorials"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(name: str, values: Mapping[str, Any], *, timeout: int = 1800) -> float:
    """Execute tutorial ``name`` from its twin with ``values`` (``timeout``: seconds a cell may take) and write
    ``{name}.ipynb``; returns seconds."""
    import jupytext
    import nbformat

    notebook = with_parameters(read_twin(name), values)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"gradfree-{name}-") as cwd:
        execute(notebook, cwd=cwd, timeout=timeout)
    seconds = time.perf_counter() - started
    notebook.metadata[META] = {"parameters": {**parameters_of(notebook), **values}, "seconds": round(seconds, 1),
                               "executed": datetime.date.today().isoformat(), "git": _git_revision(),
                               "threads": os.environ.get("OMP_NUM_THREADS", "default")}
    nbformat.validate(notebook)
    jupytext.write(notebook, TUTORIALS / f"{name}.ipynb", fmt="ipynb")
    return seconds


def check() -> list[str]:
    """What is wrong with the committed tutorials: a twin without a notebook, cells that differ, a notebook
    not run to the end or holding an error output."""
    problems = []
    for name in tutorials():
        if not (TUTORIALS / f"{name}.ipynb").is_file():
            problems.append(f"{name}: no {name}.ipynb (run: python docs/tools/notebooks.py run {name})")
            continue
        twin, notebook = read_twin(name), read_notebook(name)
        if cell_sources(twin) != cell_sources(notebook):
            problems.append(f"{name}: the .py twin and the .ipynb differ (edit the .py, then run it again)")
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            if cell.get("execution_count") is None:
                problems.append(f"{name}: cell {index} was not executed")
            if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
                problems.append(f"{name}: cell {index} holds an error output")
        if META not in notebook.metadata:
            problems.append(f"{name}: no '{META}' metadata (not written by this tool)")
    return problems


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Run the tutorials and check them.")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="execute tutorials from their twins and write the notebooks")
    run_parser.add_argument("names", nargs="+", help="tutorial names (NN-name, or NN) or 'all'")
    run_parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                            help="a parameter, as a Python literal (repeatable), e.g. SIZE='\"medium\"'")
    run_parser.add_argument("--timeout", type=int, default=1800,
                            help="seconds one cell may run (default 1800; 02 at full size needs about 3000)")
    sub.add_parser("check", help="check that twins match their notebooks and every notebook ran cleanly")
    args = parser.parse_args(argv)
    if args.command == "check":
        problems = check()
        print("\n".join(problems) or f"{len(tutorials())} tutorials: twins match, outputs clean")
        return 1 if problems else 0
    values = {}
    for item in args.set:
        key, _, value = item.partition("=")
        values[key] = ast.literal_eval(value)
    names = tutorials() if args.names == ["all"] else [
        next((t for t in tutorials() if t == n or t.startswith(f"{n}-")), n) for n in args.names]
    for name in names:
        print(f"{name}: running ...", flush=True)
        print(f"{name}: {run(name, values, timeout=args.timeout):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
