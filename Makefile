# ibrepro — the two set-up commands of the README are `make reproduce` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= runs
# Where the MNIST-format IDX files are when there is no network (the shared copy, if present).
export IBREPRO_DATA_DIR ?= $(wildcard $(CURDIR)/../shared/data/mnist)
EXPERIMENTS := $(wildcard experiments/*.toml)
# the paper's own experiments: the 12-bit sweeps and the MNIST CPU presets (not the critiques)
PAPER_EXPERIMENTS := experiments/tishby12_datasize.toml experiments/tishby12_depth.toml \
	experiments/mnist_depth.toml experiments/mnist_datasize.toml experiments/mnist_activation.toml
STAMP := $(VENV)/.installed
LOCK := requirements.lock

.PHONY: install install-locked lock test reproduce reproduce-all reproduce-paper bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,cluster]"
	touch $(STAMP)

install: $(STAMP)

# The exact versions the tests passed with ($(LOCK)), then ibrepro itself without resolving again.
install-locked:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# Rewrite $(LOCK) from .venv: run after the tests pass in a fresh `make install`.
lock: $(STAMP)
	{ sed -n '/^#/!q;p' $(LOCK); $(BIN)/pip freeze --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# the documentation site (docs/, mkdocs.yml) into site/, warnings as errors; needs the docs extra
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

.PHONY: docs
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# train -> analyze -> bound -> report (figures included); estimators: see scripts/reproduce.sh
reproduce: $(STAMP)
	scripts/reproduce.sh experiments/tishby12_quick.toml $(OUT)

# prints estimated time and disk per experiment first; refuses when the disk is too small
# (IGNORE_DISK=1 to start anyway); finished stages are skipped on a re-run
# reproduce-all: every experiment file; reproduce-paper: the paper's own experiments only
reproduce-all: $(STAMP)
	$(BIN)/python scripts/plan_reproduce.py $(OUT) $(EXPERIMENTS) $(if $(IGNORE_DISK),--ignore-disk)
	for exp in $(EXPERIMENTS); do scripts/reproduce.sh $$exp $(OUT) || exit 1; done

reproduce-paper: $(STAMP)
	$(BIN)/python scripts/plan_reproduce.py $(OUT) $(PAPER_EXPERIMENTS) $(if $(IGNORE_DISK),--ignore-disk)
	for exp in $(PAPER_EXPERIMENTS); do scripts/reproduce.sh $$exp $(OUT) || exit 1; done

bench: $(STAMP)
	$(BIN)/python scripts/bench_train.py
	$(BIN)/python scripts/bench_mi.py

clean:
	rm -rf $(VENV) *.egg-info
