# Every target installs what it needs: a fresh clone needs only `make train` / `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
NBSTAMP  := $(VENV)/.installed-notebooks
LINTED   := src tests benchmarks notebooks/*.py notebooks/solutions train.py eval.py predict.py

.PHONY: install install-dev train test test-fast test-for lint bench bench-folder notebooks lab clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(DEVSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@ $(STAMP)

$(NBSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev,notebooks]"
	touch $@ $(DEVSTAMP) $(STAMP)

install: $(STAMP)

install-dev: $(DEVSTAMP)

train: $(STAMP)
	$(PY) train.py $(ARGS)

# The whole suite, as CI runs it: lint first (seconds), then every test, one test file per
# core at a time (most of a CLI test is a fresh interpreter importing torch: one core each).
test: lint
	$(PY) -m pytest -n auto --dist loadfile $(PYTEST_ARGS)

# The quick loop (a few minutes): the in-process tests and the CLI smoke set; tests that
# start a process are marked `cli` automatically (tests/conftest.py).
test-fast: lint
	$(PY) -m pytest -n auto --dist loadfile -m "smoke or not (cli or slow)" $(PYTEST_ARGS)

# The tests of the modules you touched: make test-for FILES="src/descentlab/run/resume.py"
test-for: $(DEVSTAMP)
	$(PY) tests/index.py $(FILES) | xargs $(PY) -m pytest $(PYTEST_ARGS)

lint: $(DEVSTAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

bench: $(STAMP)
	$(PY) benchmarks/bench.py $(ARGS)

# data=image_folder: train.py vs a hand-written loop over the same DataLoader (images/s)
bench-folder: $(STAMP)
	$(PY) benchmarks/bench_folder.py $(ARGS)

# Re-execute every notebook in full mode and save it with its outputs (a few minutes each).
notebooks: $(NBSTAMP)
	$(PY) notebooks/execute.py $(NOTEBOOKS)

# Open the notebooks in JupyterLab (installs it first).
lab: $(NBSTAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf logs .pytest_cache
