# cardsvc — two commands on a fresh Debian/Ubuntu machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint typecheck pytest install install-dev system-deps system-deps-test bench clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { sh scripts/system-deps.sh python3-venv && $(PYTHON) -m venv $(VENV); }
	@$(BIN)/python -m pip install --quiet --upgrade pip

# The stamps are rebuilt whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

# pyscard (a dev dependency) compiles against libpcsclite: system-deps-test comes first in `make test`.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

system-deps:
	@sh scripts/system-deps.sh $$(grep -hv '^#' scripts/apt-packages.txt)

system-deps-test:
	@sh scripts/system-deps.sh $$(grep -hv '^#' scripts/apt-packages.txt scripts/apt-packages-test.txt)

run: system-deps install
	$(BIN)/cardsvc migrate
	$(BIN)/cardsvc demo
	$(BIN)/cardsvc serve --host $(HOST) --port $(PORT)

lint: install-dev
	$(BIN)/ruff check .

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	CARDSVC_TEST_BACKEND=sqlite $(BIN)/python -m pytest -m "not postgres_only"
	@if $(BIN)/python scripts/postgres_available.py; then \
		CARDSVC_TEST_BACKEND=postgresql $(BIN)/python -m pytest; \
	else \
		echo "PostgreSQL not reachable: PostgreSQL pass skipped (it is mandatory under CI=true)"; \
	fi

test: system-deps-test install-dev lint typecheck pytest

bench: install-dev
	$(BIN)/python bench/import_members.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
