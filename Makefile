# mosaicvi developer tasks. Needs only python3 (>= 3.11) and access to PyPI.
#
#   make demo    install, then train MosaicVI on the embedded SNARE-seq data (scripts/demo.py)
#   make test    install, then run the test suite (pytest)
#   make test-newest  the same on the newest stack: a second venv (.venv312) with Python 3.12 and
#                the newest releases pyproject.toml allows, tutorials skipped
#   make lint    ruff check + ruff format --check
#   make docs    install the doc extra, build the documentation (warnings are errors)
#   make clean   remove the virtualenv and caches (results/ is kept)
#
# Variables (override on the command line, e.g. `make test PYTEST_ARGS="-x -k setup"`):
#   TORCH_SPEC   what `pip install` gets for torch, installed before everything else. The default
#                pin is a CPU build; for a GPU use e.g.
#                  make demo TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu126"
#                or create .venv and install your own torch into it first. Passing a different
#                TORCH_SPEC to an existing .venv reinstalls torch.
#   DEMO_OUT     output folder of `make demo` (default results/demo)
#   DEMO_ARGS    extra arguments for scripts/demo.py (e.g. "--max-epochs 20 --seed 1")
#   PYTEST_ARGS  extra arguments for pytest (e.g. "-x -k setup")
#   PYTHON       interpreter that creates $(VENV) (default python3; mosaicvi needs >= 3.11)
#   VENV         the virtualenv folder (default .venv)
#   PYTHON_NEWEST, VENV_NEWEST, PYTEST_ARGS_NEWEST   the same for `make test-newest` (defaults:
#                the Python 3.12 that .ci/find-python finds, .venv312, -m "not tutorial")

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= results/demo
DEMO_ARGS ?=
PYTEST_ARGS ?=
PYTHON_NEWEST ?=
VENV_NEWEST ?= .venv312
PYTEST_ARGS_NEWEST ?= -m "not tutorial"

BIN := $(VENV)/bin
# pip_failed: say that pip failed and how much disk is free where the venv lies, then fail. A
# torch from PyPI for Python 3.12 is the CUDA build (about 6 GB in the venv), so a full disk is the
# usual cause ("No space left on device" in pip's output).
pip_failed = { rc=$$?; echo "make install: pip could not install into $(VENV) (exit $$rc); \
	free disk there: $$(df -h --output=avail $(VENV) | tail -n 1 | tr -d ' '). If pip says 'No space \
	left on device', free some disk or set VENV (VENV_NEWEST) to a folder on a larger disk; torch's \
	CUDA build for Python 3.12 needs about 6 GB." >&2; exit $$rc; }
# The stamp holds the TORCH_SPEC the venv was built with; it is redone when pyproject.toml changes.
STAMP := $(VENV)/.installed

# A TORCH_SPEC given explicitly (command line or environment) that differs from the one the venv
# was built with forces a reinstall of torch.
INSTALLED_TORCH_SPEC := $(strip $(shell cat $(STAMP) 2>/dev/null))
ifneq ($(origin TORCH_SPEC),file)
ifneq ($(wildcard $(STAMP)),)
ifneq ($(INSTALLED_TORCH_SPEC),$(strip $(TORCH_SPEC)))
TORCH_CHANGED := 1
.PHONY: $(STAMP)
endif
endif
endif

.PHONY: install demo test test-newest versions lint docs clean
.DEFAULT_GOAL := install

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "make install: mosaicvi needs Python >= 3.11; '$(PYTHON)' is $$($(PYTHON) -V 2>&1). Use 'make PYTHON=python3.11 ...'." >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(if $(TORCH_CHANGED),--force-reinstall )$(TORCH_SPEC) || $(pip_failed)
	$(BIN)/python -m pip install -e ".[test]" || $(pip_failed)
	@echo '$(TORCH_SPEC)' > $@
	@echo "make install: done ($$($(BIN)/python -c 'import torch; print("torch", torch.__version__, "- CUDA available:", torch.cuda.is_available())'))"

demo: install
	$(BIN)/python scripts/demo.py --out "$(DEMO_OUT)" $(DEMO_ARGS)

# The versions of the stack under test, printed at the start of each test run.
versions: install
	@$(BIN)/python -c 'import sys; from importlib.metadata import version; \
		print("stack in $(VENV):", ", ".join([f"python {sys.version.split()[0]}", *(f"{p} {version(p)}" \
		for p in ("torch", "scvi-tools", "anndata", "mudata", "pandas", "numpy", "scanpy"))]))'

# pytest exit codes: 0 ok, 1 tests failed, 2 interrupted, 3 internal error, 4 usage error,
# 5 no tests collected. An empty run is a failure here, not a pass.
test: install versions
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	case $$rc in \
		0) ;; \
		1) echo "make test: FAILED - some tests failed (pytest exit code 1)." >&2 ;; \
		2) echo "make test: FAILED - the test run was interrupted (pytest exit code 2)." >&2 ;; \
		3) echo "make test: FAILED - pytest hit an internal error (pytest exit code 3)." >&2 ;; \
		4) echo "make test: FAILED - pytest usage error, check PYTEST_ARGS='$(PYTEST_ARGS)' (pytest exit code 4)." >&2 ;; \
		5) echo "make test: FAILED - no tests were collected (pytest exit code 5); an empty run does not count as a pass. Check tests/ and PYTEST_ARGS='$(PYTEST_ARGS)'." >&2 ;; \
		*) echo "make test: FAILED - pytest exited with unexpected code $$rc." >&2 ;; \
	esac; \
	exit $$rc

# The newest stack in its own venv: Python 3.12 (PYTHON_NEWEST, else found by .ci/find-python)
# with the newest releases pyproject.toml allows when the venv is built; tutorials skipped.
test-newest:
	@py='$(PYTHON_NEWEST)'; if [ -z "$$py" ]; then py=$$(.ci/find-python 3.12) || exit 1; fi; \
	$(MAKE) --no-print-directory test PYTHON="$$py" VENV='$(VENV_NEWEST)' \
		PYTEST_ARGS='$(PYTEST_ARGS_NEWEST) $(PYTEST_ARGS)'

lint: install
	@test -x $(BIN)/ruff || $(BIN)/python -m pip install "ruff>=0.6"
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

# Sphinx with warnings as errors; the doc extra is (re)installed when pyproject.toml changes.
DOC_STAMP := $(VENV)/.doc-installed
$(DOC_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -e ".[doc]"
	@touch $@

docs: $(DOC_STAMP)
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html
	@echo "make docs: open docs/_build/html/index.html"

clean:
	rm -rf $(VENV) $(VENV_NEWEST) .pytest_cache .ruff_cache lightning_logs docs/_build docs/generated build dist
	find . -path ./.git -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -prune -exec rm -rf {} +
