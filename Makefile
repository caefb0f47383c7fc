# Every target installs what it needs: a fresh clone needs only `make train` / `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
NBSTAMP  := $(VENV)/.installed-notebooks

.PHONY: install install-dev train test bench bench-folder notebooks lab clean

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

test: $(DEVSTAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

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
