# faro developer tasks. `make` alone lists them.
#
# Everything runs inside a virtual environment in .venv, created on first use by `make install`.
# Override the interpreter that creates it with `make install PYTHON=python3.12`.

PYTHON ?= python3
VENV ?= .venv
BENCH_ARGS ?=
PYTEST_ARGS ?=
DEMO_ARGS ?=

VENV_PY := $(VENV)/bin/python
# Written after a successful install; re-made whenever pyproject.toml changes.
STAMP := $(VENV)/.faro-installed
# Written once the docs extra (the site's tools) is installed too.
DOCS_STAMP := $(VENV)/.faro-docs-installed
# Only the folders that exist: ruff stops on a path that is missing.
LINT_PATHS := $(wildcard faro tests benchmarks examples)
# The Go modules: the real control plane's build and the client-go benchmark anchor.
GO_MODULES := $(patsubst %/go.mod,%,$(wildcard tests/cluster/go.mod benchmarks/*/go.mod))

.DEFAULT_GOAL := help
.PHONY: help install demo docs test test-fast test-sim test-real lint lint-go typecheck bench check clean \
	cluster-build cluster-up cluster-down dist dist-check

help: ## List the targets
	@echo "Usage: make TARGET [PYTHON=python3] [PYTEST_ARGS=...] [BENCH_ARGS=...]"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## Create .venv (if absent) and install faro with its dev extras, editable

$(STAMP): pyproject.toml
	@$(VENV_PY) -m pip --version >/dev/null 2>&1 || { \
		echo "Creating $(VENV) with $(PYTHON)"; \
		rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); \
	}
	$(VENV_PY) -m pip install --quiet -e '.[dev]'
	@touch $@

docs: $(DOCS_STAMP) ## Build the documentation site into site/ (mkdocs build --strict: any warning fails)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

$(DOCS_STAMP): $(STAMP)
	$(VENV_PY) -m pip install --quiet -e '.[dev,docs]'
	@touch $@

demo: install ## Run faro against the built-in simulated cluster (faro demo; DEMO_ARGS=...)
	$(VENV)/bin/faro demo $(DEMO_ARGS)

test: test-sim test-real ## Run the whole suite: against the simulator, then a real control plane (needs Go)

# The edit-test loop: unit tests and the core contract (informer, controller, delivery).
FAST_TESTS := tests/unit tests/integration/test_informer.py tests/integration/test_controller.py \
	tests/integration/test_controller_delivery.py tests/test_docs.py tests/test_differences.py

test-fast: install ## Unit tests and the core contract only, in well under a minute (PYTEST_ARGS=...)
	$(VENV_PY) -m pytest -q $(FAST_TESTS) $(PYTEST_ARGS)

test-sim: install ## Run every test against the simulated API server (PYTEST_ARGS=...)
	$(VENV_PY) -m pytest $(PYTEST_ARGS)

test-real: install ## Run the cluster tests against a real kube-apiserver (built and started if needed)
	@tests/cluster/test-real.sh $(PYTEST_ARGS)

lint: install ## Check the code with ruff (and the Go modules with gofmt, go vet, go mod tidy -diff)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	@$(MAKE) --no-print-directory lint-go

lint-go: ## gofmt, go vet and an untidy go.mod check for each Go module (skipped without Go)
	@if ! command -v go >/dev/null 2>&1; then \
		echo "lint-go: go is not installed: the Go modules were not checked"; \
		[ "$$FARO_REQUIRE_REAL_CLUSTER" != 1 ] || exit 1; \
	else for mod in $(GO_MODULES); do \
		echo "go: checking $$mod"; \
		out=$$(gofmt -l $$mod) && [ -z "$$out" ] || { echo "not gofmt'ed: $$out"; exit 1; }; \
		(cd $$mod && go mod tidy -diff && { [ -z "$$(go list ./... 2>/dev/null)" ] \
			|| go vet ./...; }) || exit 1; \
	done; fi

typecheck: install ## Type-check faro/ with mypy --strict
	$(VENV)/bin/mypy --strict faro

bench: install ## Run the benchmarks (options: BENCH_ARGS=...)
	$(VENV_PY) benchmarks/run.py $(BENCH_ARGS)

check: lint typecheck test ## Lint, type-check and test

# A stale faro.egg-info/SOURCES.txt would put files MANIFEST.in no longer names into the sdist.
dist: install ## Build the sdist and wheel into dist/ (python -m build) and check them with twine
	rm -rf dist build faro.egg-info
	$(VENV_PY) -m build --outdir dist .
	$(VENV_PY) -m twine check --strict dist/*

# The wheel as a user gets it: installed (with its dependencies, no extras) into a new virtual
# environment, not editable, and run from an empty directory so that nothing of the repository
# is importable; faro must come from that environment's site-packages.
dist-check: dist ## Install the built wheel into a fresh venv and run faro --version and faro demo
	@set -eu; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	wheel=$$(cd dist && echo "$$PWD"/*.whl); \
	echo "dist-check: installing $$(basename "$$wheel") into a new virtual environment"; \
	$(VENV_PY) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install --quiet "$$wheel"; \
	cd "$$tmp"; unset PYTHONPATH; \
	"$$tmp/venv/bin/python" -c 'import faro, sys; sys.exit(0 if faro.__file__.startswith(sys.prefix) else "faro imported from " + faro.__file__)'; \
	"$$tmp/venv/bin/faro" --version; \
	"$$tmp/venv/bin/faro" demo --output-dir "$$tmp/demo-output" --timeout 30; \
	echo "dist-check: the installed wheel ran faro --version and faro demo"

cluster-build: ## Build etcd, kube-apiserver and kube-controller-manager into .cluster/bin (needs Go)
	tests/cluster/build.sh

cluster-up: install cluster-build ## Start the real control plane; writes .cluster/kubeconfig
	$(VENV_PY) tests/cluster/cluster.py up

cluster-down: ## Stop the control plane cluster-up started and remove its data
	$(PYTHON) tests/cluster/cluster.py down

clean: ## Remove .venv, build artefacts, caches and output/
	rm -rf $(VENV) build dist .eggs *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis .tox output faro-demo-output site
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
