"""The SageMaker calls moto does not implement, checked request by request with botocore's Stubber.

moto 5.2 has no ``UpdateEndpoint``, so a second deployment (a canary next to the running
version) and a rollback cannot run on the local stack. These tests pin down the exact requests
the flow sends to AWS for them, and that a failed update deletes what it created.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from pipelines.aws import sagemaker_flow
from pipelines.aws.sagemaker_flow import AwsError, AwsSettings

pytestmark = pytest.mark.integration

ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/penguins/2"
PREFIX = "arn:aws:sagemaker:us-east-1:123456789012"


@dataclass
class FakeVersion:
    tags: dict[str, str] = field(
        default_factory=lambda: {sagemaker_flow.package_arn_tag("prod"): ARN}
    )


class FakeRegistry:
    def get_model_version(self, name: str, version: str) -> FakeVersion:
        return FakeVersion()


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client(
        "sagemaker", region_name="us-east-1", endpoint_url="http://127.0.0.1:9"
    )  # never reached: the Stubber answers
    monkeypatch.setattr(sagemaker_flow, "aws_client", lambda service, aws: client)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def _endpoint(config: str) -> dict[str, Any]:
    return {
        "EndpointName": "penguins-prod",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/penguins-prod",
        "EndpointConfigName": config,
        "EndpointStatus": "InService",
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
    }


def _package(status: str) -> dict[str, Any]:
    return {
        "ModelPackageName": "penguins",
        "ModelPackageArn": ARN,
        "CreationTime": "2026-01-01T00:00:00Z",
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": status,
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
    }


def test_canary_deploy_keeps_the_old_variant_and_updates_the_endpoint(stubbed: Stubber) -> None:
    stubbed.add_response("describe_model_package", _package("Approved"), {"ModelPackageName": ARN})
    stubbed.add_response(
        "describe_endpoint", _endpoint("penguins-prod-v1-1"), {"EndpointName": "penguins-prod"}
    )
    old_variant = {
        "VariantName": "AllTraffic",
        "ModelName": "penguins-v1-1",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    stubbed.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": "penguins-prod-v1-1",
            "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/x",
            "ProductionVariants": [{**old_variant, "InitialVariantWeight": 1.0}],
            "CreationTime": "2026-01-01T00:00:00Z",
        },
        {"EndpointConfigName": "penguins-prod-v1-1"},
    )
    stubbed.add_response("create_model", {"ModelArn": f"{PREFIX}:model/m"})
    stubbed.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"{PREFIX}:endpoint-config/c"},
        {
            "EndpointConfigName": ANY,
            "ProductionVariants": [
                {**old_variant, "InitialVariantWeight": 0.9},
                {
                    "VariantName": "v2",
                    "ModelName": ANY,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "InitialVariantWeight": 0.1,
                },
            ],
            "DataCaptureConfig": sagemaker_flow.data_capture_config(AwsSettings(), "prod"),
            "Tags": [{"Key": "mlops:version", "Value": "2"}],
        },
    )
    stubbed.add_response(
        "update_endpoint",
        {"EndpointArn": f"{PREFIX}:endpoint/penguins-prod"},
        {"EndpointName": "penguins-prod", "EndpointConfigName": ANY},
    )
    deployed = sagemaker_flow.deploy(
        FakeRegistry(),  # type: ignore[arg-type]
        AwsSettings(),
        "penguins",
        "prod",
        "2",
        canary_percent=10,
    )
    assert deployed.created is False
    assert deployed.endpoint_config.startswith("penguins-prod-v2-")


def test_failed_endpoint_update_deletes_the_model_and_config_it_made(stubbed: Stubber) -> None:
    stubbed.add_response("describe_model_package", _package("Approved"), {"ModelPackageName": ARN})
    stubbed.add_response(
        "describe_endpoint", _endpoint("penguins-prod-v1-1"), {"EndpointName": "penguins-prod"}
    )
    stubbed.add_response("create_model", {"ModelArn": f"{PREFIX}:model/m"})
    stubbed.add_response(
        "create_endpoint_config", {"EndpointConfigArn": f"{PREFIX}:endpoint-config/c"}
    )
    stubbed.add_client_error("update_endpoint", "ResourceLimitExceeded", "too many endpoints")
    stubbed.add_response("delete_endpoint_config", {})
    stubbed.add_response("delete_model", {})
    with pytest.raises(AwsError, match=r"updating endpoint penguins-prod.*ResourceLimitExceeded"):
        sagemaker_flow.deploy(
            FakeRegistry(),  # type: ignore[arg-type]
            AwsSettings(),
            "penguins",
            "prod",
            "2",
        )


def test_rollback_points_the_endpoint_at_the_previous_config(stubbed: Stubber) -> None:
    stubbed.add_response(
        "describe_endpoint", _endpoint("penguins-prod-v2-2"), {"EndpointName": "penguins-prod"}
    )
    configs = [
        {
            "EndpointConfigName": name,
            "EndpointConfigArn": f"{PREFIX}:endpoint-config/{name}",
            "CreationTime": when,
        }
        for name, when in (
            ("penguins-prod-v3-3", "2026-01-03T00:00:00Z"),
            ("penguins-prod-v2-2", "2026-01-02T00:00:00Z"),
            ("penguins-prod-v1-1", "2026-01-01T00:00:00Z"),
        )
    ]
    stubbed.add_response(
        "list_endpoint_configs",
        {"EndpointConfigs": configs},
        {"NameContains": "penguins-prod-v", "SortBy": "CreationTime", "SortOrder": "Descending"},
    )
    stubbed.add_response(
        "update_endpoint",
        {"EndpointArn": f"{PREFIX}:endpoint/penguins-prod"},
        {"EndpointName": "penguins-prod", "EndpointConfigName": "penguins-prod-v1-1"},
    )
    assert sagemaker_flow.rollback(AwsSettings(), "penguins", "prod") == "penguins-prod-v1-1"


def test_rollback_without_an_earlier_config_is_refused(stubbed: Stubber) -> None:
    stubbed.add_response(
        "describe_endpoint", _endpoint("penguins-prod-v1-1"), {"EndpointName": "penguins-prod"}
    )
    stubbed.add_response(
        "list_endpoint_configs",
        {
            "EndpointConfigs": [
                {
                    "EndpointConfigName": "penguins-prod-v1-1",
                    "EndpointConfigArn": f"{PREFIX}:endpoint-config/c",
                    "CreationTime": "2026-01-01T00:00:00Z",
                }
            ]
        },
    )
    with pytest.raises(AwsError, match="no earlier endpoint config"):
        sagemaker_flow.rollback(AwsSettings(), "penguins", "prod")
