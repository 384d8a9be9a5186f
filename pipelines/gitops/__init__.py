"""GitHub's side of the loop: ``mlops plan`` (which models a change retrains), the pull-request
report, and posting it as one comment."""
