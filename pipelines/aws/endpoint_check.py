"""After ``pulumi up``: is each SageMaker endpoint running the configuration the stack claims?

When a blue/green update is rolled back by an alarm, SageMaker still reports the update as
finished to the provider (the endpoint is ``InService``, on its *previous* configuration), so
``pulumi up`` succeeds and the stack outputs name a version that is not serving. DescribeEndpoint
tells the truth: ``EndpointConfigName`` is the configuration in use, ``LastDeploymentConfig`` the
deployment that was tried, ``FailureReason`` why it stopped
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeEndpoint.html).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.core.errors import MlopsError

# The stack outputs this check reads (infra/stack.py returns them).
OUTPUT_ENDPOINTS, OUTPUT_CONFIGS, OUTPUT_VERSIONS = "endpoints", "endpoint_configs", "versions"


@dataclass(frozen=True)
class ExpectedEndpoint:
    model: str
    version: str
    endpoint_name: str
    config_name: str


def expected_endpoints(outputs_file: Path) -> list[ExpectedEndpoint]:
    """The SageMaker endpoints a ``pulumi stack output --json`` file claims, by model."""
    try:
        outputs = json.loads(outputs_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MlopsError(
            f"cannot read stack outputs: {exc} (expected `pulumi stack output --json`)",
            file=outputs_file,
        ) from None
    if not isinstance(outputs, dict):
        raise MlopsError("stack outputs must be a JSON object", file=outputs_file)
    configs = outputs.get(OUTPUT_CONFIGS) or {}
    endpoints = outputs.get(OUTPUT_ENDPOINTS) or {}
    versions = outputs.get(OUTPUT_VERSIONS) or {}
    for field, value in ((OUTPUT_CONFIGS, configs), (OUTPUT_ENDPOINTS, endpoints)):
        if not isinstance(value, dict):
            raise MlopsError(f"{field} must map model to name", file=outputs_file, field=field)
    expected = []
    for model, config in sorted(configs.items()):
        if model not in endpoints:
            raise MlopsError(
                f"{model!r} has an endpoint configuration but no endpoint",
                file=outputs_file,
                field=OUTPUT_ENDPOINTS,
            )
        expected.append(
            ExpectedEndpoint(model, str(versions.get(model, "?")), endpoints[model], config)
        )
    return expected


def live_problem(expected: ExpectedEndpoint, described: dict[str, Any]) -> str | None:
    """What is wrong with one endpoint, as a sentence naming what is live; None when it is right."""
    live = described.get("EndpointConfigName")
    status = described.get("EndpointStatus")
    if live == expected.config_name and status == "InService":
        return None
    reason = described.get("FailureReason")
    detail = f"; SageMaker says: {reason}" if reason else ""
    return (
        f"{expected.model}: the stack claims version {expected.version} "
        f"(endpoint configuration {expected.config_name}) on {expected.endpoint_name}, but the "
        f"endpoint is {status} on {live}{detail}. The previous version is still serving; "
        "fix the cause and deploy again, or pin the version that is live"
    )


def verify(sagemaker: Any, expected: list[ExpectedEndpoint]) -> list[str]:
    """The problems of every expected endpoint (an empty list when all run what was deployed)."""
    problems = []
    for endpoint in expected:
        try:
            described = sagemaker.describe_endpoint(EndpointName=endpoint.endpoint_name)
        except sagemaker.exceptions.ClientError as exc:
            problems.append(
                f"{endpoint.model}: cannot describe endpoint {endpoint.endpoint_name}: {exc}"
            )
            continue
        problem = live_problem(endpoint, described)
        if problem:
            problems.append(problem)
    return problems
