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

.PHONY: install lock test reproduce reproduce-all reproduce-paper bench clean

# The extras the lock pins and the tests run with.
EXTRAS := test,cluster,docs

# `make install` (and so `make test`, and CI on a fresh clone) installs the exact versions in
# $(LOCK), then ibrepro itself without resolving again.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# After changing dependencies in pyproject.toml: resolve ibrepro[$(EXTRAS)] afresh in a scratch
# environment and write its closure to $(LOCK) (ibrepro itself left out); then `make test`.
LOCK_VENV := .venv-lock
define LOCK_HEADER
# The exact versions `make install` installs and the test suite passes with: the dependency
# closure of ibrepro[$(EXTRAS)], without ibrepro itself, resolved by `make lock`.
# After changing dependencies in pyproject.toml, run `make lock`, then `make test`.
endef
export LOCK_HEADER

lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/pip install --quiet -e ".[$(EXTRAS)]"
	{ echo "$$LOCK_HEADER"; \
	  $(LOCK_VENV)/bin/python -c 'import platform; print(f"# Python {platform.python_version()}, {platform.system()} {platform.machine()}")'; \
	  $(LOCK_VENV)/bin/pip freeze --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf $(LOCK_VENV)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# the documentation site (docs/, mkdocs.yml) into site/, warnings as errors (the lock has the docs extra)
.PHONY: docs
docs: $(STAMP)
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
	$(BIN)/python scripts/plan_reproduce.py $(OUT) $(EXPERIMENTS) --measured

reproduce-paper: $(STAMP)
	$(BIN)/python scripts/plan_reproduce.py $(OUT) $(PAPER_EXPERIMENTS) $(if $(IGNORE_DISK),--ignore-disk)
	for exp in $(PAPER_EXPERIMENTS); do scripts/reproduce.sh $$exp $(OUT) || exit 1; done
	$(BIN)/python scripts/plan_reproduce.py $(OUT) $(PAPER_EXPERIMENTS) --measured

# Every benchmark in scripts/, each at its default (paper-cell) scale, one after another; each
# prints its own numbers. `make bench-NAME` runs scripts/bench_NAME.py alone.
BENCHMARKS := $(patsubst scripts/bench_%.py,%,$(wildcard scripts/bench_*.py))

bench: $(addprefix bench-,$(BENCHMARKS))

bench-%: scripts/bench_%.py $(STAMP)
	$(BIN)/python $<

clean:
	rm -rf $(VENV) $(LOCK_VENV) *.egg-info
