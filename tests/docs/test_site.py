"""The documentation site: ``mkdocs build --strict`` succeeds, offline, and holds the pages it should.

The build renders every page, the API reference of every module (mkdocstrings) and every tutorial notebook
(docs/hooks/site.py); in strict mode any warning fails it — a broken link or reference, a page missing from
the navigation, a docstring that does not parse, a notebook with an error output. A second, minimal build
checks that strict mode does fail on a reference to a module that does not exist.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
pytest.importorskip("mkdocstrings", reason="the docs extra is not installed (pip install -e '.[docs]')")

ROOT = Path(__file__).resolve().parents[2]


def _mkdocs(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _hooks() -> Any:
    spec = importlib.util.spec_from_file_location("gradfree_docs_hooks", ROOT / "docs" / "hooks" / "site.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = _mkdocs("--strict", "--site-dir", str(out), cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def test_site_builds_strictly_with_every_page(site: Path) -> None:
    for page in ("index.html", "budget.html", "ray.html", "ARCHITECTURE.html", "methods/index.html",
                 "methods/zeroth-order.html", "methods/attacks.html", "tutorials/index.html", "results/index.html",
                 "results/mdp-mnist-full/report.html", "api/index.html"):
        assert (site / page).is_file(), f"{page} was not built"
    # The results pages show the committed plots.
    assert (site / "results" / "mdp-mnist-full" / "final_accuracy.png").is_file()
    # Every tutorial notebook became a page with its figures, and the notebook and twin are downloadable.
    for notebook in sorted((ROOT / "docs" / "tutorials").glob("*.ipynb")):
        page = (site / "tutorials" / f"{notebook.stem}.html").read_text()
        assert "<img" in page, f"{notebook.stem}: no figure on its page"
        assert (site / "tutorials" / notebook.name).is_file() and (site / "tutorials" / f"{notebook.stem}.py").is_file()
    assert not (site / "hooks").exists() and not (site / "tools").exists()


def test_api_reference_covers_every_module(site: Path) -> None:
    modules = _hooks().api_modules()
    assert "gradfree.optim.zo_adam" in modules["optim"] and "gradfree.errors" in modules["core"]
    for package, names in modules.items():
        page = (site / "api" / f"{package}.html").read_text()
        # A package page opens with the package's docstring (no heading of its own), then every module.
        for name in names if package == "core" else names[1:]:
            assert f'id="{name}"' in page, f"{name} has no entry on api/{package}.html"
    optim = (site / "api" / "optim.html").read_text()
    assert "ZOAdam" in optim and "Chen et al. 2019" in optim  # docstrings, with their references
    # The docstrings' Sphinx roles (:class:`~gradfree.params.flat.FlatParams`) become links across pages.
    assert 'href="params.html#gradfree.params.flat.FlatParams"><code>FlatParams</code></a>' in optim
    assert ":class:<code>" not in optim


def test_search_index_is_built_offline(site: Path) -> None:
    index = json.loads((site / "search" / "search_index.json").read_text())
    assert any(doc["location"].startswith("api/optim.html") for doc in index["docs"])


def test_strict_build_fails_on_a_broken_reference(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Broken\n\n::: gradfree.no_such_module\n")
    (tmp_path / "mkdocs.yml").write_text(
        "site_name: broken\nstrict: true\nnav: [index.md]\ntheme: {name: mkdocs}\n"
        f"plugins:\n  - mkdocstrings:\n      handlers:\n        python:\n          paths: [{ROOT / 'src'}]\n")
    done = _mkdocs("--strict", "--site-dir", str(tmp_path / "site"), cwd=tmp_path)
    assert done.returncode != 0
    assert "gradfree.no_such_module" in done.stdout + done.stderr


def test_a_notebook_with_an_error_output_or_no_parameters_cell_is_a_problem() -> None:
    hooks = _hooks()
    good = {"cells": [{"cell_type": "code", "source": "SIZE = 'full'", "metadata": {"tags": ["parameters"]},
                       "outputs": [{"output_type": "stream", "name": "stdout", "text": "ok\n"}]}]}
    page, images, problems = hooks.notebook_page(good, "nb")
    assert problems == [] and images == {} and "SIZE = 'full'" in page and "ok" in page
    bad = {"cells": [{"cell_type": "code", "source": "1 / 0", "metadata": {},
                      "outputs": [{"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero",
                                   "traceback": []}]}]}
    _, _, problems = hooks.notebook_page(bad, "nb")
    assert len(problems) == 2 and "ZeroDivisionError" in problems[0] and "parameters" in problems[1]
