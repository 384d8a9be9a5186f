# The team template: adopting it (`mlops init`), updating from it (`mlops template update`),
# and the tests that render it with non-default answers and run the result's quick checks.

.PHONY: test-template
test-template: $(STAMP) ## Template: adopt into temp folders (non-default answers), rerun, update A -> B, run their checks
	$(BIN)/python -m pytest tests/template -q

.PHONY: adopt
adopt: $(STAMP) ## Adopt this clone: asks for project, AWS account and region, GitHub repository, serving target
	$(BIN)/mlops init
