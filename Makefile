# cardsvc — two commands on a fresh Debian/Ubuntu machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint typecheck pytest test-station install install-dev system-deps system-deps-test bench clean

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

# Everything on SQLite; on PostgreSQL only the tests that touch the database under test (the `database` marker, set
# by tests/conftest.py), not the pure and browser tests a second time.
pytest: install-dev
	CARDSVC_TEST_BACKEND=sqlite $(BIN)/python -m pytest -m "not postgres_only"
	@if $(BIN)/python scripts/postgres_available.py; then \
		CARDSVC_TEST_BACKEND=postgresql $(BIN)/python -m pytest -m "database or postgres_only"; \
	else \
		echo "PostgreSQL not reachable: PostgreSQL pass skipped (it is mandatory under CI=true)"; \
	fi

# The door station alone (packaging/station) in a venv of its own: it must install and pass its tests without the
# server's dependencies. Its dependencies are installed again only when its pyproject changes; the station itself is
# reinstalled from the checkout whenever station/ or verification/ change.
STATION_VENV := $(VENV)-station
STATION_BIN  := $(STATION_VENV)/bin

$(STATION_VENV)/.deps: packaging/station/pyproject.toml
	@rm -rf $(STATION_VENV)
	@$(PYTHON) -m venv $(STATION_VENV)
	@$(STATION_BIN)/python -m pip install --quiet --upgrade pip
	$(STATION_BIN)/pip install --quiet './packaging/station[readers]' pytest
	@touch $@

# Every file and folder of both packages (a folder changes when a module is added or removed), not the byte code.
$(STATION_VENV)/.installed: $(STATION_VENV)/.deps $(shell find station verification -name __pycache__ -prune -o -print)
	@rm -rf packaging/station/build
	$(STATION_BIN)/pip install --quiet --no-deps --force-reinstall ./packaging/station
	@touch $@

test-station: system-deps-test $(STATION_VENV)/.installed
	@cd $(STATION_VENV) && bin/python -c 'import importlib.util as u, station; \
		assert "site-packages" in station.__file__, station.__file__; \
		bad = [m for m in ("cardsvc", "issuance", "fastapi", "sqlalchemy", "reportlab") if u.find_spec(m)]; \
		assert not bad, f"the station venv holds server packages: {bad}"'
	$(STATION_BIN)/pytest -c packaging/station/pyproject.toml --rootdir .

test: system-deps-test install-dev lint typecheck pytest test-station

bench: install-dev
	$(BIN)/python bench/import_members.py

clean:
	rm -rf $(VENV) $(STATION_VENV) .mypy_cache .pytest_cache .ruff_cache
