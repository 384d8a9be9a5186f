# Every target CI runs is here; `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock requirements-nodeps.lock pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

# One fragment per part (infra, monitoring, workflows, the local stack). A fragment adds its
# own checks to `make lint` with `EXTRA_LINT += target`.
EXTRA_LINT :=
include $(sort $(wildcard mk/*.mk))

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements.lock requirements-nodeps.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@# Test clients whose declared pins conflict with ours (why: requirements-nodeps.lock).
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

.PHONY: install
install: $(STAMP) ## Create .venv and install the pinned dependencies (requirements*.lock)

.PHONY: demo
demo: $(STAMP) ## Run both example models through every stage on the embedded default
	$(BIN)/mlops demo

.PHONY: lint
lint: $(STAMP) $(EXTRA_LINT) ## ruff (lint and format check), mypy, import layers (lint-imports), the definition and schema checks
	$(BIN)/ruff check pipelines serving monitoring tests benchmarks tools
	$(BIN)/ruff format --check pipelines serving monitoring tests benchmarks tools
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/hadolint serving/Dockerfile
	$(BIN)/mlops check
	$(BIN)/mlops schema --check

.PHONY: format
format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix pipelines serving monitoring tests benchmarks tools
	$(BIN)/ruff format pipelines serving monitoring tests benchmarks tools

.PHONY: test
test: lint ## Lint, then every test suite (what CI runs)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

.PHONY: schema
schema: $(STAMP) ## Regenerate schemas/*.json from the pydantic models
	$(BIN)/mlops schema

.PHONY: lock
lock: ## Re-resolve requirements.lock (dev) and requirements-runtime.lock (the image) from pyproject.toml
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check '.[dev]'
	.lock-venv/bin/pip freeze --exclude mlops-template | grep -v '^-e' > requirements.lock
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check -c requirements.lock .
	.lock-venv/bin/pip freeze --exclude mlops-template | grep -v '^-e' > requirements-runtime.lock
	rm -rf .lock-venv

.PHONY: clean
clean: ## Remove the state folder (.mlops: registry, artifacts, reports) and caches
	rm -rf .mlops .pytest_cache .mypy_cache .ruff_cache

.PHONY: distclean
distclean: clean ## Also remove the virtual environment
	rm -rf $(VENV)
