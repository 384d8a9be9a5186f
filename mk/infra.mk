# Infrastructure (infra/): the Pulumi program, its components and its policy pack.

.PHONY: lint-infra
lint-infra: $(STAMP) ## ruff (lint and format) and mypy over infra/ and its tests
	$(BIN)/ruff check infra tests/infra
	$(BIN)/ruff format --check infra tests/infra
	$(BIN)/mypy infra

.PHONY: test-infra
test-infra: $(STAMP) ## The infra suite: Pulumi mocks, policies, Kubernetes manifests (no cloud, no CLI)
	$(BIN)/python -m pytest tests/infra -m infra $(PYTEST_ARGS)

EXTRA_LINT += lint-infra
