# Two commands on a fresh machine: `make demo` (set up, run the comparison) and `make test` (set up, check).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install docs clean

# torch is pinned for installs here (a CPU wheel is provided); the package itself accepts a range.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gradfree demo

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy

# Two worker processes (pytest-xdist): the suite is CPU-bound and CI has 2 cores. One OpenMP thread, waiting
# passively: a worker loads two OpenMP runtimes (torch's and scikit-learn's), and their spinning thread teams
# once piled up to 1,252 threads and slowed a worker tenfold.
test: lint
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -n 2

# The documentation site, built offline into site/ (open site/index.html); --strict: any warning fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs site .pytest_cache .mypy_cache .ruff_cache
