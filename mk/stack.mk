# The local AWS stack (moto, MLflow on SQLite or PostgreSQL with S3 artifacts, the model server,
# Prometheus) on 127.0.0.1, and its integration suite. Ports: MLOPS_STACK_*_PORT; logs and state
# in $(MLOPS_HOME)/stack (default .mlops/stack).
STACK_ARGS ?=

.PHONY: up
up: $(STAMP) ## Start the local AWS stack (a second `make up` only reports); STACK_ARGS="--db postgresql"
	$(BIN)/mlops stack up $(STACK_ARGS)

.PHONY: down
down: $(STAMP) ## Stop every service of the local stack by its PID
	$(BIN)/mlops stack down

.PHONY: stack-status
stack-status: $(STAMP) ## State, PID and URL of each local stack service
	$(BIN)/mlops stack status

.PHONY: test-integration
test-integration: $(STAMP) ## Only the integration suite: the AWS path end to end on a fresh stack
	$(BIN)/python -m pytest -m integration tests/integration $(PYTEST_ARGS)
