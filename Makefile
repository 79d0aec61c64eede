# The course's two commands (see README):
#   make course   set up .venv and open JupyterLab on notebooks/ (offline defaults)
#   make test     set up .venv and run the whole test suite (unit tests + notebooks via nbval)
# Installs come from requirements.lock; `make lock` refreshes it on purpose (see README, "Upgrading on purpose").
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export ANONYMIZED_TELEMETRY ?= False
export TOKENIZERS_PARALLELISM ?= false
# SciFact/Cranfield live outside the repo; CI and developers find them beside the checkout.
export COURSE_DATA_DIR ?= $(abspath $(wildcard ../shared/datasets))
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with nbval_sanitize.cfg --nbval-cell-timeout=600

.PHONY: setup lock course test unit notebooks execute exercises check-exercises clean

setup:
	@bash scripts/setup.sh

# Resolve what pyproject.toml newly asks for, keeping every other pin, and write requirements.lock (then run
# make test); `make lock LOCK_ARGS=--upgrade` re-resolves every dependency to the newest its range allows.
lock:
	@test -x $(BIN)/python || bash scripts/setup.sh
	@bash scripts/lock.sh $(LOCK_ARGS)

# JupyterLab runs from the repository root (so exercises/ and the grader's paths work from its terminal)
# with .venv/bin first on PATH (so `course-lib` works in that terminal), and opens notebook 00.
course: setup
	$(BIN)/course-lib check || true
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter lab notebooks/00_start_here.ipynb

# tests/ and the docstring examples of course_lib, then every notebook and solution under nbval
test: setup
	$(BIN)/python -m pytest -p no:cacheprovider -ra --durations=30 --doctest-modules tests course_lib notebooks solutions $(NBVAL)

# the quick loop: everything not marked slow (see pyproject.toml for the markers)
unit: setup
	$(BIN)/python -m pytest -p no:cacheprovider -ra -m "not slow" --doctest-modules tests course_lib

# Re-execute notebooks in place after a change that affects them (outputs are committed).
execute: setup
	$(BIN)/python scripts/execute_notebooks.py notebooks/*.ipynb solutions/*.ipynb

exercises: setup
	$(BIN)/python -m course_lib.grading generate solutions exercises

clean:
	rm -rf $(VENV) .pytest_cache **/__pycache__
