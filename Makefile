# The README's two commands: `make demo` (the main job on embedded defaults) and `make test`.
# Each creates .venv in the repository root when missing and installs vtrlab into it with the pinned
# constraints, so a fresh machine needs nothing but Python 3.11.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.vtrlab-installed
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# Python writes its bytecode caches into .venv: pip installs with --no-compile (below), so without them every
# process (each Ray Tune trial, Ray Train controller and worker, each test subprocess) would compile torch, Ray
# and MLflow again on import, about 6 s a process on 2 cores. A shell that sets PYTHONDONTWRITEBYTECODE=1
# (this machine's does) would keep it that way, so make's commands run without it.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test lint format install bench clean postgresql

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# (grep drops pip's notes about this machine's unused local index folders; --no-compile: Python compiles
	# on first import only the modules it uses, and caches them, instead of pip compiling every file of torch,
	# Ray and MLflow)
	$(BIN)/python -m pip install --quiet --no-compile --constraint constraints.txt --editable '.[test]' 2>&1 \
		| { grep -v "^WARNING: Location" || true; }
	touch $(STAMP)

install: $(STAMP)

# The MLflow UI test drives Debian's Chromium headless (Playwright with executable_path, no browser download).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null

# The tracking-server tests run Debian's PostgreSQL server (initdb + pg_ctl into a temp dir, started and stopped
# by the tests). Installed without Debian's default cluster, so no server is left running on port 5432.
POSTGRES_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))
postgresql:
	@if [ -z "$(POSTGRES_INITDB)" ]; then \
		$(SUDO) apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql-common >/dev/null; \
		$(SUDO) sed -i 's/^#\? *create_main_cluster.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; \
	fi

demo: $(STAMP)
	$(BIN)/vtrlab quickstart

test: $(STAMP) $(CHROMIUM) postgresql
	$(BIN)/ruff check .
	VTRLAB_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/train_step.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
