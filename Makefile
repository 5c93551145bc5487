# The two commands of the README: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Each process writes the bytecode of what it imports and every later one reads it. An
# environment that sets PYTHONDONTWRITEBYTECODE would make every process (each test worker,
# Celery worker, server and manage.py the suites start) compile Django and every library again.
unexport PYTHONDONTWRITEBYTECODE
# `make run` and the targets it needs run in development mode, said explicitly (DEBUG is off
# unless asked for), with the address it serves on as the portal's address in emailed links.
DEVELOPMENT := DJANGO_DEBUG=true PORTAL_BASE_URL=http://127.0.0.1:$(PORT)
# System packages: WeasyPrint renders labels with Pango and subsets fonts with HarfBuzz
# (without libharfbuzz-subset0 it falls back to fontTools, 10-20x slower); the e2e tests need a
# browser.
RUN_SYSTEM_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
TEST_SYSTEM_PACKAGES := $(RUN_SYSTEM_PACKAGES) chromium fonts-liberation
# The order-submit benchmark drives the server with wrk (a load generator in C) on loopback.
BENCH_SYSTEM_PACKAGES := $(RUN_SYSTEM_PACKAGES) wrk

.PHONY: run test quick bench install system-packages lint format migrate seed clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# --no-compile: Python compiles what it imports on first use, not every module of every package.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt constraints-build.txt
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet --no-compile --build-constraint constraints-build.txt \
		--constraint constraints.txt --editable ".[dev]"
	touch $@

install: $(VENV)/.installed

# Installs what is missing with apt-get (as root, or through sudo when it is there).
system-packages:
	@missing=""; for pkg in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; \
		else echo "!! cannot install system packages:$$missing (not root, no sudo)"; exit 0; fi; \
		echo "Installing system packages:$$missing"; \
		{ $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } \
			|| echo "!! could not install:$$missing (the suites that need them will say so)"; \
	fi

migrate: install
	@$(MAKE) --no-print-directory system-packages SYSTEM_PACKAGES="$(RUN_SYSTEM_PACKAGES)"
	$(DEVELOPMENT) $(BIN)/python manage.py migrate --noinput

seed: migrate
	$(DEVELOPMENT) $(BIN)/python manage.py seed_demo

run: seed
	@echo "Portal: http://127.0.0.1:$(PORT)/  (admin: http://127.0.0.1:$(PORT)/admin/)"
	$(DEVELOPMENT) $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

test: install
	@$(MAKE) --no-print-directory system-packages SYSTEM_PACKAGES="$(TEST_SYSTEM_PACKAGES)"
	$(BIN)/lint-imports
	$(BIN)/python tests/run_suites.py

# The fast loop while working: the layers' contracts and the unit tests without the fuzzing,
# on every core. `make test` runs everything.
quick: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -m "not integration and not e2e and not fuzz" -n auto -q

# Benchmarks against baselines run side by side (README, "Performance"); needs PostgreSQL and
# Redis. BENCH="labels submit" runs only those.
bench: install
	@$(MAKE) --no-print-directory system-packages SYSTEM_PACKAGES="$(BENCH_SYSTEM_PACKAGES)"
	$(BIN)/python -m bench $(BENCH)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache
