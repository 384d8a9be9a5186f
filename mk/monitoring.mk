# Monitoring (monitoring/): alert rules checked and unit tested with promtool, and the drift demo.
PROMTOOL ?= promtool
ALERT_RULES := $(wildcard monitoring/alerts/*.yml)
ALERT_TESTS := $(wildcard monitoring/alerts/tests/*.yml)

EXTRA_LINT += lint-alerts

.PHONY: promtool
# As root (a container, .ci/run) apt-get runs as is; as a user with password-less sudo (GitHub's
# hosted runners run jobs as `runner`) through `sudo -n`, which fails instead of asking.
promtool: ## Install promtool (Debian's prometheus package) if it is missing
	@command -v $(PROMTOOL) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then as_root=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then as_root="sudo -n"; \
	  else as_root=none; fi; \
	  if [ "$$as_root" != none ] && command -v apt-get >/dev/null 2>&1; then \
	    $$as_root apt-get update -qq && \
	    $$as_root env DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else \
	    echo "promtool not found: install Debian's prometheus package (or set PROMTOOL=)" >&2; exit 2; \
	  fi; }

.PHONY: lint-alerts
lint-alerts: promtool ## promtool check rules and promtool test rules on monitoring/alerts
	$(PROMTOOL) check rules $(ALERT_RULES)
	$(PROMTOOL) test rules $(ALERT_TESTS)

.PHONY: demo-drift
demo-drift: $(STAMP) ## Serve the champion, shift its traffic, detect drift, retrain and gate
	$(BIN)/mlops demo-drift
