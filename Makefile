# The one place the torch pin lives: installed first so pip takes the local CPU build
# (an unpinned torch would pull several GB of CUDA wheels).
TORCH_PIN := torch==2.13.0
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-all lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]' '$(TORCH_PIN)'
	touch $(STAMP)

# The main job, then a one-minute live soak of its agent with the CNNs (the scorecard's uptime input: README),
# then the scorecard and the report again with it.
run: $(STAMP)
	$(BIN)/rltrade run
	$(BIN)/python -m benchmarks.bench_live_soak --run runs/demo --minutes 1 --faults-at-rate
	$(BIN)/rltrade scorecard runs/demo
	$(BIN)/rltrade report runs/demo

test: lint
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
