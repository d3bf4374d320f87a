# The two commands a newcomer needs: `make up` (the whole system, embedded servers) and `make test`.
# Both create the virtual environment and install the pinned dependencies on first use (python3 + pip only).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint install clean-state

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Fjordgate needs Python 3.11 or newer: make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/fjordgate up $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

# The checks of CI before the tests (.ci/run); the pre-commit hooks run the same ones.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# Deletes the local stack's data: databases, streams, secrets (a new admin password is printed next `up`).
clean-state:
	rm -rf $${FJORDGATE_STATE_DIR:-.fjordgate}
