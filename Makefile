# One command sets up and runs the main job; one sets up and runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint readme clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: this spec is the CPU build on this kind of machine.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[harness,dev]"
	touch $(STAMP)

setup: $(STAMP)

# The main job: analysis of the catalog's headline losses, their attraction curves,
# and a short TaylorGLO search on MNIST-1D with its report (65–75 s on 2 quiet cores).
run: setup
	$(BIN)/symloss analyze baikal
	$(BIN)/symloss analyze taylorglo --label-smoothing 0.1
	$(BIN)/symloss curve cross_entropy mse baikal --classes 10 --out out/attraction.png --csv out/attraction.csv --force
	$(BIN)/symloss search taylorglo --dataset mnist1d --generations 4 --steps 300 --final-seeds 3 \
		--store out/runs.sqlite --out out/search
	@echo "outputs: out/attraction.png out/attraction.csv out/search/report.md out/runs.sqlite"

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	$(BIN)/python -m symloss.proofs

lint: setup
	$(BIN)/ruff check .

# Rewrite the README's generated blocks (analysis output, tables of the committed
# reports); `make test` fails while one is stale.
readme: setup
	$(BIN)/python benchmarks/readme.py --make-run

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
