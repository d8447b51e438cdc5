# llmscale — the front door. `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
LLMSCALE := $(VENV)/bin/llmscale
STAMP := $(VENV)/.installed
# e2e cluster mode: local (default) | existing | kind
LLMSCALE_CLUSTER ?= local
export LLMSCALE_CLUSTER

.PHONY: help setup system-deps lint typecheck test test-unit test-e2e generate verify cluster-build cluster-up \
        cluster-down cluster-status demo bench backtest image e2e-kind clean

help: ## List every target with one line each
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make setup: $(PYTHON) not found; install Python 3.11 or pass PYTHON=..." >&2; exit 1; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv/ with llmscale and its test tools installed (idempotent)

system-deps: ## Install Debian's prometheus package when it is missing (needs root and apt-get)
	@command -v prometheus >/dev/null && exit 0; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's prometheus package (the e2e tier and the demo run a real Prometheus)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
	    || { echo "make system-deps: apt-get install prometheus failed" >&2; exit 1; }; \
	  systemctl stop prometheus >/dev/null 2>&1 || true; \
	else \
	  echo "make: prometheus is missing; install it (Debian: apt-get install prometheus) and retry" >&2; exit 1; \
	fi

lint: setup ## ruff, mypy (strict) and the import-layer contracts
	$(VENV)/bin/ruff check operator tests benchmarks charts/llmscale/hack
	$(VENV)/bin/ruff format --check operator tests benchmarks charts/llmscale/hack
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

typecheck: setup ## mypy only
	$(VENV)/bin/mypy

generate: setup ## Regenerate crds/, the chart's copy of it, the chart's values schema and README
	$(PY) -m llmscale.api.generate
	mkdir -p charts/llmscale/files/crds && cp crds/*.yaml charts/llmscale/files/crds/
	$(PY) charts/llmscale/hack/gen_schema.py
	$(PY) charts/llmscale/hack/gen_readme.py

verify: setup ## Fail when generated files (crds/, chart) are stale
	$(PY) -m llmscale.api.generate --check
	@for f in crds/*.yaml; do cmp -s $$f charts/llmscale/files/crds/$$(basename $$f) || { echo "verify: charts/llmscale/files/crds/$$(basename $$f) differs from $$f; run make generate" >&2; exit 1; }; done
	$(PY) charts/llmscale/hack/gen_schema.py --check
	$(PY) charts/llmscale/hack/gen_readme.py --check

test-unit: setup ## Unit and integration tiers: pure, no cluster, seconds
	$(VENV)/bin/pytest -q tests/unit tests/integration

cluster-build: setup ## Build (or reuse cached) control-plane binaries, kwok and helm
	$(LLMSCALE) cluster build

test-e2e: setup system-deps cluster-build ## End-to-end tier against the real local control plane (minutes)
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/e2e

test: lint verify test-unit test-e2e ## Everything CI runs: lint, generated-file check, unit, e2e

cluster-up: setup system-deps cluster-build ## Start etcd, apiserver, controller-manager, scheduler, KWOK, GPU nodes, Prometheus
	$(LLMSCALE) cluster up

cluster-down: setup ## Stop the local control plane and remove its state
	$(LLMSCALE) cluster down

cluster-status: setup ## Show what of the local control plane is running
	$(LLMSCALE) cluster status

demo: setup system-deps cluster-build ## Run the end-to-end demo (trace replay through gateway, operator, emulated pods)
	$(LLMSCALE) demo

bench: setup ## Run the benchmarks in benchmarks/ and print their figures
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

backtest: setup ## Score every policy on the repository's suite (suites/default.yaml); plots in backtest-plots/
	$(LLMSCALE) backtest --suite suites/default.yaml --jobs 2 --plot-dir backtest-plots

image: ## Build the container images (needs a container engine)
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "make image: no container engine here; images/ is linted by 'make test' instead" >&2; exit 1; }
	docker build -f images/operator.Dockerfile -t llmscale/operator:dev .
	docker build -f images/emulator.Dockerfile -t llmscale/emulator:dev .

e2e-kind: setup image ## e2e suite against a kind cluster with the Helm chart (needs Docker)
	LLMSCALE_CLUSTER=kind $(VENV)/bin/pytest -q tests/e2e

clean: cluster-down ## Stop the cluster and remove the venv
	rm -rf $(VENV)
