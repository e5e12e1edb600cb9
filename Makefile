# edgeinvestigate: `make demo` and `make test` do all set-up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck unit bench lab lab-notebook browser clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgeinvestigate demo --out demo-output

browser:
	@bash .ci/install-browser || echo "warning: headless Chromium could not be installed; browser tests will be skipped"

lint: $(STAMP)
	$(BIN)/ruff check edgeinvestigate tests benchmarks notebooks
	$(BIN)/ruff format --check edgeinvestigate tests benchmarks notebooks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

test: $(STAMP) browser lint typecheck
	$(BIN)/pytest -n 2 --durations=15 $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_load.py
	$(BIN)/python benchmarks/bench_cluster.py
	$(BIN)/python benchmarks/bench_replay.py
	$(BIN)/python benchmarks/bench_s3.py
	$(BIN)/python benchmarks/bench_pipeline.py

lab: $(STAMP)
	$(BIN)/python -m edgeinvestigate lab run

lab-notebook: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache build dist
