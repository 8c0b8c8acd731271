# ibrepro — the two set-up commands of the README are `make reproduce` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= runs
EXPERIMENTS := $(wildcard experiments/*.toml)
STAMP := $(VENV)/.installed

.PHONY: install test reproduce reproduce-all bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

reproduce: $(STAMP)
	$(BIN)/ibrepro train experiments/tishby12_quick.toml --out $(OUT)

reproduce-all: $(STAMP)
	for exp in $(EXPERIMENTS); do $(BIN)/ibrepro train $$exp --out $(OUT) || exit 1; done

bench: $(STAMP)
	$(BIN)/python scripts/bench_train.py
	$(BIN)/python scripts/bench_mi.py

clean:
	rm -rf $(VENV) *.egg-info
