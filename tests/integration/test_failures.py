"""Failures on the AWS path leave nothing half-registered and say what happened, exit 2.

Each test makes one thing go wrong against the running stack (an AWS endpoint that does not
answer, S3 throttling the upload, SageMaker throttling the model package, a deployment of a
version nobody approved) and checks that no MLflow version, model package, model data or
endpoint is left behind. Faults are injected into the boto3 clients the flow makes, as
responses botocore receives, so its retries and error handling run as they would against AWS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from integration_stack import FAST_GATES, LocalStack, free_port

from pipelines.aws import sagemaker_flow

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("local_stack")]

MODEL = "penguins"
GROUP = "penguins-staging"  # where `mlops sagemaker register` puts packages by default


class _Raw:
    """The raw body botocore reads an injected HTTP response from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def inject(monkeypatch: pytest.MonkeyPatch, event: str, status: int, body: bytes) -> list[str]:
    """Make every ``event`` (e.g. ``before-send.s3.PutObject``) receive this response."""
    from botocore.awsrequest import AWSResponse

    calls: list[str] = []
    real = sagemaker_flow.aws_client

    def respond(request: Any, **_: Any) -> AWSResponse:
        calls.append(request.url)
        return AWSResponse(request.url, status, {}, _Raw(body))

    def client(service: str, aws: Any) -> Any:
        made = real(service, aws)
        made.meta.events.register(event, respond)
        return made

    monkeypatch.setattr(sagemaker_flow, "aws_client", client)
    return calls


@pytest.fixture(scope="module")
def gated_run(local_stack: LocalStack) -> str:
    """A trained, evaluated and gated run, not yet registered."""
    env = {**local_stack.env}
    for args in (("train", MODEL, "--set", FAST_GATES), ("evaluate", MODEL), ("gate", MODEL)):
        result = local_stack.mlops(*args, env=env)  # type: ignore[arg-type]
        assert result.exit_code == 0, result.output
    run_id = (
        local_stack.client()
        .search_runs([local_stack.client().get_experiment_by_name(f"mlops/{MODEL}").experiment_id])[
            0
        ]
        .info.run_id
    )
    return str(run_id)


def assert_nothing_registered(local_stack: LocalStack, run_id: str) -> None:
    client = local_stack.client()
    assert client.search_model_versions(f"name='{MODEL}'") == []
    assert "mlops.registered_version" not in client.get_run(run_id).data.tags
    sagemaker = local_stack.boto("sagemaker")
    for group in sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]:
        name = group["ModelPackageGroupName"]
        packages = sagemaker.list_model_packages(ModelPackageGroupName=name)
        assert packages["ModelPackageSummaryList"] == [], f"a package was left in {name}"
    objects = local_stack.boto("s3").list_objects_v2(
        Bucket="mlops-artifacts", Prefix=f"models/{MODEL}/"
    )
    assert objects.get("Contents", []) == []


def test_unreachable_aws_endpoint_changes_nothing(local_stack: LocalStack, gated_run: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = local_stack.mlops(
        "sagemaker", "register", MODEL, "--run-id", gated_run, env={"AWS_ENDPOINT_URL": nowhere}
    )
    assert result.exit_code == 2
    assert f"AWS at {nowhere} is unreachable" in result.stderr
    assert "Nothing was changed" in result.stderr
    assert_nothing_registered(local_stack, gated_run)


def test_throttled_s3_upload_undoes_the_mlflow_version(
    local_stack: LocalStack, gated_run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_down = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
    calls = inject(monkeypatch, "before-send.s3.PutObject", 503, slow_down)
    result = local_stack.mlops("sagemaker", "register", MODEL, "--run-id", gated_run)
    assert result.exit_code == 2
    assert "uploading s3://mlops-artifacts/models/penguins/" in result.stderr
    assert "SlowDown" in result.stderr and "nothing was registered" in result.stderr
    assert len(calls) > 1  # botocore retried the throttled upload, then gave up
    assert_nothing_registered(local_stack, gated_run)


def test_failing_model_package_undoes_version_and_model_data(
    local_stack: LocalStack, gated_run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = json.dumps({"__type": "ValidationException", "message": "injected"}).encode()
    inject(monkeypatch, "before-send.sagemaker.CreateModelPackage", 400, refused)
    result = local_stack.mlops("sagemaker", "register", MODEL, "--run-id", gated_run)
    assert result.exit_code == 2
    assert f"creating a model package in group {GROUP}" in result.stderr
    assert "injected" in result.stderr and "nothing was registered" in result.stderr
    assert_nothing_registered(local_stack, gated_run)  # the model.tar.gz was deleted too


def test_deploy_without_approval_creates_nothing(local_stack: LocalStack, gated_run: str) -> None:
    registered = local_stack.mlops(
        "sagemaker", "register", MODEL, "--env", "dev", "--run-id", gated_run
    )
    assert registered.exit_code == 0, registered.output
    version = json.loads(registered.stdout.strip().splitlines()[-1])["version"]
    result = local_stack.mlops("sagemaker", "deploy", MODEL, "--env", "dev", "--version", version)
    assert result.exit_code == 2
    assert "is PendingManualApproval, not Approved" in result.stderr
    assert f"mlops sagemaker approve penguins --env dev --version {version}" in result.stderr
    sagemaker = local_stack.boto("sagemaker")
    assert sagemaker.list_models()["Models"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert not local_stack.stack.running("model")


def test_failed_second_environment_keeps_what_the_first_one_uses(
    local_stack: LocalStack, gated_run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After the test above, the run is version N with a package in dev and its model data.
    client = local_stack.client()
    (version,) = client.search_model_versions(f"name='{MODEL}'")
    model_data = version.tags["mlops.sagemaker.model_data"]
    refused = json.dumps({"__type": "ValidationException", "message": "injected"}).encode()
    inject(monkeypatch, "before-send.sagemaker.CreateModelPackage", 400, refused)
    result = local_stack.mlops(
        "sagemaker", "register", MODEL, "--env", "prod", "--run-id", gated_run
    )
    assert result.exit_code == 2
    assert f"MLflow version {version.version} existed before" in result.stderr
    after = client.get_model_version(MODEL, version.version).tags
    assert after["mlops.sagemaker.dev.model_package_arn"]  # dev's package is untouched
    assert "mlops.sagemaker.prod.model_package_arn" not in after
    bucket, _, key = model_data.removeprefix("s3://").partition("/")
    local_stack.boto("s3").head_object(Bucket=bucket, Key=key)  # dev still needs it
    sagemaker = local_stack.boto("sagemaker")
    packages = sagemaker.list_model_packages(ModelPackageGroupName="penguins-prod")
    assert packages["ModelPackageSummaryList"] == []


def test_training_job_refuses_the_embedded_registry(local_stack: LocalStack) -> None:
    result = local_stack.mlops("sagemaker", "train", MODEL, env={"MLFLOW_TRACKING_URI": None})
    assert result.exit_code == 2
    assert "MLFLOW_TRACKING_URI" in result.stderr and "tracking server" in result.stderr
    jobs = local_stack.boto("sagemaker").list_training_jobs()["TrainingJobSummaries"]
    assert jobs == []  # refused before anything was submitted


def test_stack_refuses_a_taken_port_with_a_clear_message(local_stack: LocalStack) -> None:
    from pipelines.aws.local_stack import Stack, StackError

    taken = local_stack.stack.settings.mlflow_port  # this module's MLflow listens there
    other = Stack(local_stack.home.parent / "other", {"moto_port": taken})
    with pytest.raises(StackError, match=f"port {taken} is taken"):
        other.up()
    assert other.status()[0].state == "not started"
