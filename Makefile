# llmscale — the front door. `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
LLMSCALE := $(VENV)/bin/llmscale
STAMP := $(VENV)/.installed
# the scanners' own virtualenv (never the project's: tests/scan/requirements.txt)
SCAN_VENV := .scan-venv
SCAN_STAMP := $(SCAN_VENV)/.installed
LOWEST_VENV := .venv-lowest
LOWEST_STAMP := $(LOWEST_VENV)/.installed
UV := $(VENV)/bin/uv
# e2e cluster mode: local (default) | existing | kind
LLMSCALE_CLUSTER ?= local
export LLMSCALE_CLUSTER

.PHONY: help setup system-deps lint typecheck test test-unit test-lowest test-e2e test-vllm vllm generate verify \
        scan lock cluster-build cluster-up cluster-down cluster-status demo bench bench-smoke backtest image e2e-kind clean

help: ## List every target with one line each
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml tools/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make setup: $(PYTHON) not found; install Python 3.11 or pass PYTHON=..." >&2; exit 1; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint,plot]' -e './tools[cluster,demo]'
	@touch $(STAMP)

# A second venv with the LOWEST version of every direct dependency that pyproject.toml allows
# (transitive ones at their newest): proves the floors are true, not just written down.
$(LOWEST_STAMP): pyproject.toml tools/pyproject.toml | $(STAMP)
	rm -rf $(LOWEST_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(LOWEST_VENV)
	VIRTUAL_ENV=$(CURDIR)/$(LOWEST_VENV) $(UV) pip install --quiet --resolution lowest-direct -e '.[test,plot]' -e './tools[cluster,demo]'
	@touch $(LOWEST_STAMP)

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
	$(VENV)/bin/ruff check operator tools tests benchmarks charts/llmscale/hack
	$(VENV)/bin/ruff format --check operator tools tests benchmarks charts/llmscale/hack
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

$(SCAN_STAMP): tests/scan/requirements.txt
	@[ -x $(SCAN_VENV)/bin/python ] || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SCAN_VENV)/bin/python -m pip install --quiet -r tests/scan/requirements.txt
	@touch $(SCAN_STAMP)

scan: setup cluster-build $(SCAN_STAMP) ## checkov, hadolint, Kubernetes-schema checks of chart, examples' children, images/ (fails on a new finding)
	$(PY) tests/scan/render.py build/scan .localcluster/bin/helm
	@# the Kubernetes OpenAPI of the version the local cluster builds (its Go module; no other download)
	@swagger="$$(cd tools/llmscale_tools/localcluster/gomod && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json k8s.io/kubernetes \
	    | $(CURDIR)/$(PY) -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')/api/openapi-spec/swagger.json"; \
	  $(SCAN_VENV)/bin/python tests/scan/scan.py build/scan "$$swagger" --self-test && \
	  $(SCAN_VENV)/bin/python tests/scan/scan.py build/scan "$$swagger"

# The integration tier runs a real Prometheus: system-deps installs it first, and
# LLMSCALE_REQUIRE_SYSTEM_DEPS=1 turns "no prometheus binary" into a failure instead of a skip.
test-unit: setup system-deps ## Unit and integration tiers: pure, no cluster, seconds
	LLMSCALE_REQUIRE_SYSTEM_DEPS=1 $(VENV)/bin/pytest -q tests/unit tests/integration

test-lowest: setup system-deps $(LOWEST_STAMP) ## Unit and integration tiers on the lowest direct dependency versions
	LLMSCALE_REQUIRE_SYSTEM_DEPS=1 $(LOWEST_VENV)/bin/pytest -q -p no:cacheprovider tests/unit tests/integration

lock: setup ## Re-resolve images/requirements.lock (the images' pinned, hashed dependencies)
	$(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  --custom-compile-command 'make lock' -o images/requirements.lock pyproject.toml images/build-requirements.in

cluster-build: setup ## Build (or reuse cached) control-plane binaries, kwok and helm
	$(LLMSCALE) cluster build

test-e2e: setup system-deps cluster-build ## End-to-end tier against the real local control plane (minutes)
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not vllm" tests/e2e

vllm: setup ## Install (or reuse) the cached real-vLLM CPU environment and its tiny model (~6 GB, minutes)
	$(LLMSCALE) cluster vllm

test-vllm: setup system-deps cluster-build vllm ## Real-vLLM tier: emulator/vLLM conformance suite, e2e with real engine pods
	$(VENV)/bin/pytest -q -p no:cacheprovider -m vllm tests/conformance tests/e2e

test: lint verify scan test-unit test-lowest test-e2e test-vllm bench-smoke ## Everything CI runs: lint, generated files, scanners, unit, lowest deps, e2e, real vLLM, benchmark smoke

cluster-up: setup system-deps cluster-build ## Start etcd, apiserver, controller-manager, scheduler, KWOK, GPU nodes, Prometheus
	$(LLMSCALE) cluster up

cluster-down: setup ## Stop the local control plane and remove its state
	$(LLMSCALE) cluster down

cluster-status: setup ## Show what of the local control plane is running
	$(LLMSCALE) cluster status

demo: setup system-deps cluster-build ## Run the end-to-end demo (trace replay through gateway, operator, emulated pods)
	$(LLMSCALE) demo

bench: setup system-deps cluster-build ## Run every benchmark in benchmarks/ in full and print its figures (minutes)
	$(PY) benchmarks/run_all.py

bench-smoke: setup system-deps cluster-build ## Run every benchmark in a short smoke mode (breakage fails, targets not judged)
	$(PY) benchmarks/run_all.py --smoke

backtest: setup ## Score every policy on the repository's suite (suites/default.yaml); plots in backtest-plots/
	$(LLMSCALE) backtest --suite suites/default.yaml --jobs 2 --plot-dir backtest-plots

image: ## Build the container images (needs a container engine)
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "make image: no container engine here; images/ is linted by 'make test' instead" >&2; exit 1; }
	docker build -f images/operator.Dockerfile -t llmscale/operator:dev .
	docker build -f images/emulator.Dockerfile -t llmscale/emulator:dev .

e2e-kind: setup image ## e2e suite against a kind cluster with the Helm chart (needs Docker)
	LLMSCALE_CLUSTER=kind $(VENV)/bin/pytest -q tests/e2e

clean: cluster-down ## Stop the cluster and remove the venvs
	rm -rf $(VENV) $(SCAN_VENV) $(LOWEST_VENV)
