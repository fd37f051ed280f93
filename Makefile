# The README's two commands: `make demo` (set up, then run the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-all lint
setup:
	SNNDEPLOY_VENV=$(abspath $(VENV)) bash scripts/setup.sh

demo: setup
	$(VENV)/bin/snndeploy doctor
	$(VENV)/bin/snndeploy pipeline

test: setup
	$(PY) -m pytest -m "not slow" -q

test-all: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
