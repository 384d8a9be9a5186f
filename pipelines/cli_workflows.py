"""`mlops plan` and the pull-request report that .github/workflows call.

Imported at the end of ``pipelines.cli``, this module adds its commands to the ``mlops`` app;
keep heavy imports inside the commands.
"""

from __future__ import annotations

from pipelines.cli import app, guarded  # noqa: F401  (commands decorate these)
