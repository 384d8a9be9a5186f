"""How the workflows behave on github.com, asserted on the parsed workflow files.

act ignores environments, concurrency, fork checks and `needs` results, so each rule that only
GitHub enforces is checked here, as a policy over every job it concerns.
"""

from __future__ import annotations

from typing import Any

import pytest
from workflow_helpers import load_workflows

pytestmark = pytest.mark.workflows

INFRA = "infra.yml"


def steps_of(workflow: str, job: str) -> list[dict[str, Any]]:
    return list(load_workflows()[workflow]["jobs"][job]["steps"])


def pulumi_steps(job: str) -> list[dict[str, Any]]:
    return [s for s in steps_of(INFRA, job) if str(s.get("uses", "")).startswith("pulumi/actions@")]


@pytest.mark.parametrize("job", ["preview", "up"])
def test_the_image_applied_comes_from_the_stack_when_none_was_built(job: str) -> None:
    """Item 1: config-map only changes the runner's copy of the stack file, so the image must be
    chosen from what outlives the job (the build of this run, else the stack's output)."""
    steps = steps_of(INFRA, job)
    ids = [s.get("id") for s in steps]
    current, choose = steps[ids.index("current")], steps[ids.index("image")]
    assert current["with"]["command"] == "output"
    assert current["with"]["stack-name"] == "${{ inputs.stack }}"
    assert "mlops deploy-image" in choose["run"]
    assert choose["env"]["BUILT"] == "${{ inputs.image }}"
    assert choose["env"]["CURRENT"] == "${{ steps.current.outputs.image }}"
    applying = [s for s in pulumi_steps(job) if s["with"]["command"] in ("preview", "up")]
    assert len(applying) == 1
    config_map = applying[0]["with"]["config-map"]
    assert "steps.image.outputs.image" in config_map and "inputs.image" not in config_map
    assert ids.index("current") < ids.index("image") < steps.index(applying[0])
