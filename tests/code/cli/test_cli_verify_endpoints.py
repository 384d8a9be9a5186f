"""`mlops sagemaker verify-endpoints` against SageMaker as moto implements it, in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from pipelines.aws.endpoint_check import ExpectedEndpoint, live_problem
from pipelines.cli.main import app

pytestmark = pytest.mark.code

ROLE = "arn:aws:iam::123456789012:role/mlops-sagemaker"
ENDPOINT = "penguins-prod"


@pytest.fixture
def sagemaker(moto_aws: None) -> Iterator[Any]:
    # The endpoint's models and configurations, as a deploy leaves them.
    client = boto3.client("sagemaker", region_name="us-east-1")
    for version in ("4", "5"):
        client.create_model(
            ModelName=f"penguins-prod-model-v{version}",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"},
        )
        client.create_endpoint_config(
            EndpointConfigName=f"penguins-prod-config-v{version}",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": f"penguins-prod-model-v{version}",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 2,
                }
            ],
        )
    # The rollback left the endpoint on version 4's configuration.
    client.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="penguins-prod-config-v4")
    yield client


def _outputs(tmp_path: Path, config: str) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(
        json.dumps(
            {
                "endpoints": {"penguins": ENDPOINT},
                "endpoint_configs": {"penguins": config},
                "versions": {"penguins": "5"},
            }
        )
    )
    return path


def _verify(outputs: Path) -> Any:
    return CliRunner().invoke(app, ["sagemaker", "verify-endpoints", "--outputs", str(outputs)])


def test_a_rolled_back_endpoint_fails_the_run_naming_what_is_live(
    sagemaker: Any, tmp_path: Path
) -> None:
    result = _verify(_outputs(tmp_path, "penguins-prod-config-v5"))
    assert result.exit_code != 0
    message = " ".join(result.output.split())
    assert "penguins: the stack claims version 5" in message
    assert "penguins-prod-config-v5" in message
    assert "on penguins-prod-config-v4" in message


def test_an_endpoint_on_the_claimed_configuration_passes(sagemaker: Any, tmp_path: Path) -> None:
    result = _verify(_outputs(tmp_path, "penguins-prod-config-v4"))
    assert result.exit_code == 0, result.output
    assert "penguins: version 5 is live on penguins-prod" in result.output


def test_a_missing_endpoint_fails(sagemaker: Any, tmp_path: Path) -> None:
    sagemaker.delete_endpoint(EndpointName=ENDPOINT)
    result = _verify(_outputs(tmp_path, "penguins-prod-config-v5"))
    assert result.exit_code != 0
    assert "cannot describe endpoint penguins-prod" in " ".join(result.output.split())


def test_outputs_that_are_not_stack_outputs_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "outputs.json"
    bad.write_text("not json")
    result = _verify(bad)
    assert result.exit_code != 0
    assert "outputs.json" in result.output
    assert "pulumi stack output --json" in " ".join(result.output.split())


def test_a_failed_update_reports_sagemakers_reason() -> None:
    expected = ExpectedEndpoint("penguins", "5", ENDPOINT, "c5")
    described = {"EndpointConfigName": "c5", "EndpointStatus": "Failed", "FailureReason": "boom"}
    assert "SageMaker says: boom" in (live_problem(expected, described) or "")
