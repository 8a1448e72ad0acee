# oscgan: `make run` starts the daemon on the built-in model with a live web preview;
# `make test` runs the whole test suite. Both set everything up on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Machines without an NVIDIA GPU get the CPU build of torch (small, and found on local disk
# on our CI machines); machines with one get the newest CUDA build. Override with TORCH_SPEC=...
TORCH_SPEC ?= $(shell if command -v nvidia-smi >/dev/null 2>&1; then echo 'torch>=2.10'; else echo 'torch==2.13.0'; fi)
MODEL ?= builtin:sg2-256
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test bench venv system-deps clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet -e '.[test,midi,ndi,stream,webcam,record]'
	touch $@

venv: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/oscgan serve --model $(MODEL) $(ARGS)

# Browser tests need Chromium, MIDI tests a JACK server (jackd2); installed when we may
# (root or passwordless sudo).
system-deps:
	@sh scripts/system-deps.sh

test: $(VENV)/.installed system-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) benchmarks/generator.py

clean:
	rm -rf $(VENV) .pytest_cache renders
