# albedogan — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)
export WANDB_MODE ?= offline
export OMP_NUM_THREADS ?= 2

.PHONY: help install test test-full test-fullsize test-fullsize-ddp demo app app-test bench bench-gpu device-pack head-grid clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

# the pinned stack takes ~6.5 GB in .venv (torch's CUDA wheels from PyPI) plus pip's temporary files
INSTALL_FREE_GB := 8
$(STAMP): requirements.txt
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); if [ "$$free" -lt $(INSTALL_FREE_GB) ]; then \
		echo "make install: only $${free} GB free on $$(df -P . | awk 'NR==2 {print $$6}'); the pinned stack needs about $(INSTALL_FREE_GB) GB (free some space, e.g. old clones' .venv folders)"; \
	fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -c "import torch, pytorch3d, pytorch_lightning, hydra; print('installed: torch', torch.__version__, '| pytorch3d', pytorch3d.__version__)"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the pinned stack (seconds when already installed)

test: install ## run the CPU test suite (unit + integration, not slow/gpu)
	$(PY) -m pytest -q -m "not slow and not gpu" tests

test-full: install ## run every CPU test, slow ones included (not the hours-long full-size runs: test-fullsize)
	$(PY) -m pytest -q -m "not gpu and not fullsize" tests

FULLSIZE_OUT ?= outputs/fullsize
test-fullsize: install ## full-size CPU dry run (batch 1 and 2, UV 1024²/512², 2-rank DDP): train, resume, infer
	FULLSIZE_OUT=$(abspath $(FULLSIZE_OUT)) $(PY) -m pytest -q -s -m fullsize tests/integration/test_fullsize.py \
		tests/integration/test_fullsize_ddp.py
	@echo "measurements: $(FULLSIZE_OUT)/fullsize.json (see docs/fullsize.md)"

test-fullsize-ddp: install ## only the full-size 2-rank CPU DDP run (trainer=ddp over gloo)
	FULLSIZE_OUT=$(abspath $(FULLSIZE_OUT)) $(PY) -m pytest -q -s -m fullsize tests/integration/test_fullsize_ddp.py

DEMO ?= outputs/demo
# renders at 256² of the shipped checkpoint's 128² world (teacher images and UV albedo at 128²)
DEMO_WORLD := render_size=256

demo: install ## textured faces + contact sheet, turntable videos and a head-model grid under outputs/demo
	$(PY) infer.py mode=generate mode.n=8 $(DEMO_WORLD) output_dir=$(DEMO)/faces
	$(PY) infer.py mode=video mode.kinds=[turntable,interpolation] mode.seeds=[0,1] mode.frames=36 \
		mode.fps=18 mode.resolution=256 $(DEMO_WORLD) output_dir=$(DEMO)/video
	$(PY) infer.py mode=head_grid output_dir=$(DEMO)/head_grid
	@echo "demo outputs: $(DEMO)/faces (meshes, contact_sheet.png), $(DEMO)/video (mp4 + gif), $(DEMO)/head_grid"

APP_PORT ?= 7860
app: install ## interactive demo on http://127.0.0.1:7860 (APP_PORT=...): generate, reconstruct a photo, 3D viewer
	$(PY) app.py mode.port=$(APP_PORT) output_dir=outputs/app

CHROMIUM ?= /usr/bin/chromium
app-test: install ## the demo in headless Chromium (installs Debian's chromium with apt-get when missing); screenshots -> docs/
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium (apt-get; needs root or sudo)"; \
		$$(command -v sudo) apt-get install -y chromium; }
	ALBEDOGAN_CHROMIUM=$(CHROMIUM) ALBEDOGAN_SCREENSHOT_DIR=docs $(PY) -m pytest -q -m slow tests/integration/test_app_browser.py

head-grid: install ## contact sheet of the configured head model (FLAME=synthetic|flame2020|flame2023)
	$(PY) infer.py mode=head_grid flame=$(or $(FLAME),synthetic) output_dir=outputs/head_grid

bench: install ## throughput benchmarks (CPU here; full sizes on a GPU)
	$(PY) -m albedogan.bench

BENCH_BUDGET_S ?= 450
bench-gpu: install ## paper-size GPU benchmarks (eager/compiled, fp32/bf16, peak memory) in BENCH_BUDGET_S seconds; fails in one line without CUDA
	$(PY) -m albedogan.bench --full --device cuda --budget-s $(BENCH_BUDGET_S) --json outputs/bench_gpu.json

DEVICE_PACK ?= .device
device-pack: install ## pack what a bare GPU box (Python 3.12 + torch) needs for bench-gpu into DEVICE_PACK (<= 64 MiB; docs/fullsize.md)
	$(PY) scripts/pack_device.py --out $(DEVICE_PACK)

clean: ## remove caches and outputs (keeps .venv and data/)
	rm -rf .pytest_cache .hypothesis outputs logs multirun
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
