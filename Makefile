# mlpipe — developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Re-install whenever the dependency list changes.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
CONFIG ?= configs/default.yaml
PYTEST_ARGS ?=
PREFECT_PORT ?= 4200
MLFLOW_PORT ?= 5000
SERVERS_DIR ?= .mlpipe

.PHONY: help install run test lint format ui datasets servers stop browser clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# torch FIRST: the pinned local CPU wheel; any other spec downloads GBs of CUDA.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP) ## Create .venv (if missing) and install torch, then the project with extras

run: $(STAMP) ## Train, evaluate and register a model on the embedded default dataset (digits)
	$(BIN)/mlpipe train --config $(CONFIG)

test: $(STAMP) lint ## Lint, type-check and run the whole test suite (all markers)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: $(STAMP) ## Open the MLflow UI on http://127.0.0.1:5000 for the local store
	$(BIN)/mlpipe ui

datasets: $(STAMP) ## List the embedded datasets
	$(BIN)/mlpipe datasets

browser: ## Install Debian's chromium for the browser tests (needs root; skipped when present)
	@command -v chromium >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@chromium --version

servers: $(STAMP) ## Start Prefect and MLflow in the background and wait until both answer (PREFECT_PORT, MLFLOW_PORT)
	$(BIN)/mlpipe servers start --prefect-port $(PREFECT_PORT) --mlflow-port $(MLFLOW_PORT) --state-dir $(SERVERS_DIR)

stop: ## Stop the servers `make servers` started (only those still running as started)
	@if [ -x $(BIN)/mlpipe ]; then $(BIN)/mlpipe servers stop --state-dir $(SERVERS_DIR); fi

clean: ## Remove run directories and caches (keeps the MLflow store)
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache
