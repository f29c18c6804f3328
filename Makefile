# Two commands matter: `make run` and `make test`. Each sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/ace/v1/*.proto)
RUN_DIR := .run

.DEFAULT_GOAL := help
.PHONY: help setup run up down test lint typecheck unit protos check-protos clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: ACE needs Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(STAMP) ## create .venv with the pinned dependencies

run: $(STAMP) ## start the four services, train and publish a model, stream the demo scenario
	$(PY) -m tools.demo

up: $(STAMP) ## start the four services and keep them running (Ctrl-C or `make down` stops them)
	$(PY) -m tools.up --run-dir $(RUN_DIR)

down: ## stop what `make up` started
	@if [ -f $(RUN_DIR)/up.pid ]; then kill -TERM $$(cat $(RUN_DIR)/up.pid) 2>/dev/null && echo "stopping ACE (pid $$(cat $(RUN_DIR)/up.pid))" || echo "ACE was not running"; else echo "ACE was not running"; fi

protos: $(STAMP) ## regenerate the Python stubs in ace/v1 from protos/
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --grpc_python_out=. --pyi_out=. \
	  --descriptor_set_out=ace/v1/ace_v1.binpb --include_source_info --include_imports $(PROTOS)

check-protos: $(STAMP) ## fail when the committed stubs differ from what protos/ generates
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(PY) -m grpc_tools.protoc -I protos --python_out=$$tmp --grpc_python_out=$$tmp --pyi_out=$$tmp \
	  --descriptor_set_out=$$tmp/ace/v1/ace_v1.binpb --include_source_info --include_imports $(PROTOS) && \
	for f in $$tmp/ace/v1/*; do \
	  cmp -s $$f ace/v1/$$(basename $$f) || { echo "stale generated code: ace/v1/$$(basename $$f); run 'make protos' and commit"; exit 1; }; \
	done && echo "generated stubs are fresh"

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP) ## mypy, strict on services/
	$(VENV)/bin/mypy

unit: $(STAMP) ## pytest only
	$(PY) -m pytest

test: $(STAMP) check-protos lint typecheck unit ## set up, check the stubs, lint, type-check and run every test

clean: ## remove the virtual environment and run files
	rm -rf $(VENV) $(RUN_DIR) .pytest_cache .mypy_cache .ruff_cache
