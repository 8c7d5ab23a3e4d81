# albedogan — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)
export WANDB_MODE ?= offline
export OMP_NUM_THREADS ?= 2

.PHONY: help install test test-full demo bench head-grid clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -c "import torch, pytorch3d, pytorch_lightning, hydra; print('installed: torch', torch.__version__, '| pytorch3d', pytorch3d.__version__)"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the pinned stack (seconds when already installed)

test: install ## run the CPU test suite (unit + integration, not slow/gpu)
	$(PY) -m pytest -q -m "not slow and not gpu" tests

test-full: install ## run every CPU test, slow ones included
	$(PY) -m pytest -q -m "not gpu" tests

demo: install ## run the main job on the embedded default; outputs under outputs/demo
	$(PY) infer.py mode=head_grid output_dir=outputs/demo

head-grid: install ## contact sheet of the configured head model (FLAME=synthetic|flame2020|flame2023)
	$(PY) infer.py mode=head_grid flame=$(or $(FLAME),synthetic) output_dir=outputs/head_grid

bench: install ## throughput benchmarks (CPU here; full sizes on a GPU)
	$(PY) -m albedogan.bench

clean: ## remove caches and outputs (keeps .venv and data/)
	rm -rf .pytest_cache .hypothesis outputs logs multirun
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
