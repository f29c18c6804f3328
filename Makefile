# Two commands matter: `make run` and `make test`. Each sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/ace/v1/*.proto)
RUN_DIR := .run

.DEFAULT_GOAL := help
.PHONY: help setup run up down test lint typecheck unit slow protos check-protos clean
.PHONY: system-packages check-rules
.PHONY: bench
.PHONY: bench-foresight bench-fleet
.PHONY: soak fuzz
.PHONY: chaos-local image kind-up deploy chaos kind-down

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: ACE needs Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(STAMP) ## create .venv with the pinned dependencies

# From Debian, for the tests: prometheus (promtool checks the alert rules; the
# server scrapes the services in a test) and chromium (renders the risk board).
SYSTEM_PACKAGES := prometheus chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

system-packages: ## install what the tests need from Debian (once; quiet when they are there)
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { \
	  echo "installing $(SYSTEM_PACKAGES) from Debian (once) ..."; \
	  $(SUDO) apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; }

check-rules: system-packages ## promtool: the alert rules are valid and their unit tests pass
	@promtool check rules deploy/prometheus/ace-rules.yml
	@cd deploy/prometheus && promtool test rules ace-rules.test.yml

run: $(STAMP) ## start the four services, train and publish a model, stream the demo scenario
	$(PY) -m tools.demo

up: $(STAMP) ## start the four services and keep them running (Ctrl-C or `make down` stops them)
	$(PY) -m tools.up --run-dir $(RUN_DIR)

down: ## stop what `make up` started
	@if [ -f $(RUN_DIR)/up.pid ]; then kill -TERM $$(cat $(RUN_DIR)/up.pid) 2>/dev/null && echo "stopping ACE (pid $$(cat $(RUN_DIR)/up.pid))" || echo "ACE was not running"; else echo "ACE was not running"; fi

chaos-local: $(STAMP) ## the five chaos faults against supervised local processes on free ports (part of make test)
	$(PY) -m tools.chaos_local

# Kubernetes on kind: needs Docker, kind and kubectl (see docs/kubernetes.md).
IMAGE := ace:dev
KIND_CLUSTER := ace
K8S := kubectl -n ace

image: ## build the one image of every service (needs a Docker engine)
	docker build -t $(IMAGE) .

kind-up: ## create the kind cluster of deploy/kind/cluster.yaml and load the image into it
	kind create cluster --config deploy/kind/cluster.yaml --name $(KIND_CLUSTER)
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)

deploy: ## apply deploy/k8s/overlays/kind, give the predictors a first model, wait until all is ready
	kubectl apply -f deploy/k8s/base/namespace.yaml
	@# The admin token lives in a Secret that is never in git: a random one, made once.
	$(K8S) get secret ace-admin >/dev/null 2>&1 || $(K8S) create secret generic ace-admin \
	  --from-literal=token=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))')
	kubectl apply -k deploy/k8s/overlays/kind
	$(K8S) rollout status statefulset/feature-store --timeout=180s
	$(K8S) rollout status deployment/router --timeout=180s
	$(K8S) rollout status deployment/trainer --timeout=180s
	$(K8S) wait pod -l app.kubernetes.io/name=predictor --for=jsonpath='{.status.containerStatuses[0].started}'=true --timeout=180s
	@ready=$$($(K8S) get statefulset predictor -o jsonpath='{.status.readyReplicas}'); \
	want=$$($(K8S) get statefulset predictor -o jsonpath='{.spec.replicas}'); \
	if [ "$${ready:-0}" != "$$want" ]; then \
	  echo "predictor replicas without a model: training a first one on synthetic history"; \
	  $(K8S) exec deploy/trainer -- python -m tools.train_job --trainer-addr localhost:50054 --synthetic-seed 1; \
	fi
	$(K8S) rollout status statefulset/predictor --timeout=180s

chaos: ## run the chaos Job on the kind cluster, print its report; fails if an invariant broke
	$(K8S) delete job chaos --ignore-not-found --wait
	kubectl apply -k deploy/k8s/overlays/kind-chaos
	$(K8S) logs -f job/chaos --pod-running-timeout=180s
	@for i in $$(seq 60); do [ -n "$$($(K8S) get job chaos -o jsonpath='{.status.succeeded}{.status.failed}')" ] && break; sleep 1; done; \
	[ "$$($(K8S) get job chaos -o jsonpath='{.status.succeeded}')" = "1" ] || { echo "the chaos Job failed"; exit 1; }

kind-down: ## delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

bench: $(STAMP) ## every benchmark, each figure beside its baseline (a few minutes); writes docs/benchmarks.md
	$(PY) -m bench.perf

bench-foresight: $(STAMP) ## ACE against ten routers and two oracles in a closed-loop simulation, and on real telemetry (about 25 min); writes reports/foresight.md
	$(PY) -m bench.foresight --out reports

bench-fleet: $(STAMP) ## a fleet ACE has never seen (generated at 10 s and 60 s, then at other intervals and with jittered scrape times, and Nezha) through the router's breakers, the model's transfer, ablations of relative features and of quantile and probability forecasts, and what the breach episodes are (about 6 min); writes reports/fleet.md
	$(PY) -m bench.fleet --out reports

soak: $(STAMP) ## Decide, Ingest, Predict and ReportOutcomes at the highest sustainable rate for about 3 min: calls, failures, latency, memory
	$(PY) -m tools.soak

fuzz: $(STAMP) ## atheris on telemetry, model validation, Predict input, outcome logs, router picks and trainer history (about 12 min); a crash leaves its input in .run/fuzz
	$(PY) -m tools.fuzz telemetry --runs 200000 --seconds 120
	$(PY) -m tools.fuzz model --runs 200000 --seconds 120
	$(PY) -m tools.fuzz predict --runs 2000000 --seconds 120
	$(PY) -m tools.fuzz outcomes --runs 200000 --seconds 120
	$(PY) -m tools.fuzz router --runs 2000000 --seconds 120
	$(PY) -m tools.fuzz trainer --runs 200000 --seconds 120

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

unit: $(STAMP) ## the fast tests, those not marked slow: the inner loop (about 25 s)
	$(PY) -m pytest -m "not slow"

slow: $(STAMP) system-packages ## only the tests marked slow: processes, end-to-end runs, hypothesis sweeps, benchmark smoke runs
	$(PY) -m pytest -m slow

test: $(STAMP) system-packages check-protos check-rules lint typecheck ## set up, check the stubs and the alert rules, lint, type-check and run every test
	$(PY) -m pytest

clean: ## remove the virtual environment and run files
	rm -rf $(VENV) $(RUN_DIR) .pytest_cache .mypy_cache .ruff_cache
