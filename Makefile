# The two commands of the README:  make demo  |  make test
# Each creates (or reuses) .venv and installs what it needs. Without an NVIDIA GPU nothing CUDA is
# installed: onnxruntime (CPU) and torch 2.13.0 installed first on its own, so pip takes the CPU
# build on disk and never resolves an unpinned torch (which would pull CUDA).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.wm-installed
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
EXTRA  := $(if $(HAS_GPU),gpu,cpu)
export MUJOCO_GL ?= egl
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export PYTHONUNBUFFERED := 1

.PHONY: demo test bench setup clean
setup: $(STAMP)

$(STAMP): setup.py Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[$(EXTRA),train,dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m wm_control demo --duration $${DEMO_SECONDS:-20}

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: $(STAMP)
	$(PY) -m wm_control bench transport --json runs/bench/transport.json
	$(PY) -m wm_control bench loop --json runs/bench/loop.json

clean:
	rm -rf $(VENV) build *.egg-info runs
