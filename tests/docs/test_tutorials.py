"""The tutorials: every notebook runs at its small size, and the committed notebooks match their twins.

Each ``docs/tutorials/NN-name.py`` (jupytext percent format) is executed with the parameters of
:data:`SMALL` injected after its ``parameters`` cell (docs/tools/notebooks.py, which also runs them at full
size), in one Jupyter kernel shared by the module: starting a kernel and importing torch costs seconds, so
each notebook starts with ``%reset -f`` (its own empty namespace; imported modules stay loaded) in a fresh
working folder instead. Notebooks that read MNIST get generated images of the official counts
(:func:`tutorial_data.write_fake_mnist`), the car detector a generated folder in the Kaggle layout; the
victims of the attack and explanation tutorials are the digits MLP (trained in seconds into the kernel's own
cache folder); the Ray sections are switched off (tests/distributed covers the Ray evaluator).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("nbclient", reason="the docs extra is not installed (pip install -e '.[docs]')")
pytest.importorskip("jupytext", reason="the docs extra is not installed (pip install -e '.[docs]')")

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "detection"))
from car_fixtures import make_car_folder  # noqa: E402
from tutorial_data import write_fake_mnist  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gradfree_docs_notebooks", ROOT / "docs" / "tools" / "notebooks.py")
assert _spec is not None and _spec.loader is not None
notebooks: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebooks)

MNIST = "<fake mnist>"
"""Stands for the folder of generated MNIST files in :data:`SMALL`."""
CARS = "<fake cars>"
"""Stands for a generated car-detection folder (tests/detection/car_fixtures.py) in :data:`SMALL`."""

SMALL: dict[str, dict[str, Any]] = {
    "01-quickstart": {"SIZE": "small"},
    "02-rso-vs-sgd": {"SIZE": "small", "DATA_DIR": MNIST},
    "03-search-vs-gradient": {"SIZE": "small"},
    "04-mdp-claim-check": {"SIZE": "small", "DATA_DIR": MNIST},
    "05-strategies-and-ray": {"SIZE": "small", "RAY": False},
    "06-black-box-attacks": {"SIZE": "small"},  # the digits victim: trained in seconds, no download
    "07-black-box-explanations": {"SIZE": "small"},
    "08-car-detector": {"SIZE": "small", "DATA_DIR": CARS},
}
"""The parameters each tutorial runs with in the test suite."""


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_mnist(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def fake_cars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cars")
    make_car_folder(root, frames=tuple(range(0, 2000, 40)))
    return root


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One python3 kernel for the module, single-threaded, without the caller's data folder."""
    from jupyter_client.manager import KernelManager

    env = {k: v for k, v in os.environ.items() if k != "GRADFREE_DATA"}
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="module://matplotlib_inline.backend_inline",
               GRADFREE_CACHE=str(tmp_path_factory.mktemp("cache")))
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(tmp_path_factory.mktemp("kernel")))
    yield km
    km.shutdown_kernel(now=True)


def test_every_tutorial_has_a_small_size() -> None:
    assert notebooks.tutorials() == sorted(SMALL)


def test_twins_match_their_notebooks_and_the_notebooks_ran_cleanly() -> None:
    assert notebooks.check() == []


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_parameters_are_the_notebooks_own(name: str) -> None:
    """The injected names exist in the parameters cell (else the notebook would run at its full size)."""
    params = notebooks.parameters_of(notebooks.read_twin(name))
    assert set(SMALL[name]) <= set(params) and params["SIZE"] != "small"


@pytest.mark.parametrize("name", sorted(SMALL))
def test_tutorial_runs_at_its_small_size(name: str, kernel: Any, fake_mnist: Path, fake_cars: Path,
                                        tmp_path: Path) -> None:
    import nbformat

    folders = {MNIST: str(fake_mnist), CARS: str(fake_cars)}
    values = {k: folders.get(v, v) if isinstance(v, str) else v for k, v in SMALL[name].items()}
    notebook = notebooks.with_parameters(notebooks.read_twin(name), values)
    fresh = (f"%reset -f\nimport os\nos.chdir({str(tmp_path)!r})\n"
             "import matplotlib.pyplot\nmatplotlib.pyplot.close('all')")
    notebook.cells.insert(0, nbformat.v4.new_code_cell(fresh))
    notebooks.execute(notebook, cwd=tmp_path, km=kernel, timeout=300)
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    figures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert figures, f"{name} drew no figure"
