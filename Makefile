# donor-sync: `make demo` and `make test` are the quickstart; everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv demo test test-fast lint fmt up settings bench lock db-up db-stop db-upgrade clean distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv with the pinned dependencies and the project (editable)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

demo: venv ## set up everything and run donations_hourly end to end on the embedded defaults
	$(BIN)/donor-sync demo

test: venv lint ## lint, type-check and run the whole test suite
	$(BIN)/pytest -n 2 --dist loadgroup --durations=25

test-fast: venv ## the test suite without the slow scale tests
	$(BIN)/pytest -n 2 --dist loadgroup -m "not slow"

lint: venv ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: venv ## format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

up: venv ## Airflow standalone with the DAGs, sandbox and connections at http://localhost:8080
	$(BIN)/donor-sync airflow up

settings: venv ## load airflow_settings.yaml (connections, variables, pools) into the local Airflow
	$(BIN)/donor-sync airflow settings

bench: venv ## run every benchmark in bench/ (BENCH="names --size N" for some), write bench/results/*.json, render the README table and plots
	$(BIN)/donor-sync bench $(BENCH)

db-up: venv ## start (or reuse) the embedded Postgres and apply migrations
	$(BIN)/donor-sync db upgrade

db-stop: venv ## stop the embedded Postgres cleanly
	$(BIN)/donor-sync db stop

lock: ## re-resolve requirements*.in from PyPI into the pinned lock files
	bash tools/lock.sh

clean: ## remove caches (keeps .venv, the embedded database and Airflow home)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build *.egg-info plugins/*.egg-info

distclean: clean ## remove .venv, the embedded database and Airflow home
	-$(BIN)/donor-sync db stop
	rm -rf $(VENV) .local .airflow
