# Two entry points: `make run` (set up, then the quickstart scenario) and `make test`
# (set up, then the whole test suite). Both create .venv and install when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench validation clean

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,exact,sweep]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hetsim run scenarios/quickstart.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check hetsim models tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/capture_70b.py
	$(BIN)/python benchmarks/sim_speed.py

# Calibrate this machine (microbenchmarks only), then validate whole models against it.
validation: $(STAMP)
	$(BIN)/hetsim calibrate -o profiles/cpu-this-machine.yaml
	$(BIN)/python benchmarks/validation.py --profile profiles/cpu-this-machine.yaml

clean:
	rm -rf $(VENV) out build *.egg-info
