"""The local stack and the SageMaker commands against hostile input (review findings): a
killed service leader, a port changed under a running stack, an unknown environment and
traffic weights AWS would refuse."""

from __future__ import annotations

import os
import signal
import time

import pytest
from integration_stack import LocalStack, free_port

from pipelines.aws.local_stack import Stack, StackError, _alive, _port_open

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("local_stack")]


@pytest.mark.parametrize(
    "command",
    [
        ["register", "penguins", "--env", "nosuch"],
        ["approve", "penguins", "--env", "nosuch", "--version", "1"],
        ["deploy", "penguins", "--env", "nosuch", "--version", "1"],
        ["shift", "penguins", "--env", "nosuch", "--weight", "AllTraffic=1"],
        ["rollback", "penguins", "--env", "nosuch"],
    ],
)
def test_unknown_environment_is_refused_before_aws(
    local_stack: LocalStack, command: list[str]
) -> None:
    result = local_stack.mlops("sagemaker", *command)
    assert result.exit_code == 2, result.output
    assert "unknown environment 'nosuch'" in result.stderr
    assert "dev, prod, staging" in result.stderr
    groups = local_stack.boto("sagemaker").list_model_package_groups()[
        "ModelPackageGroupSummaryList"
    ]
    assert not [g for g in groups if g["ModelPackageGroupName"].endswith("-nosuch")]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (["AllTraffic=-5"], "non-negative"),
        (["AllTraffic=nan"], "non-negative"),
        (["a=0", "b=0"], "at least one --weight must be positive"),
        (["=1"], "VARIANT=NUMBER"),
    ],
)
def test_bad_weights_are_refused_before_aws(
    local_stack: LocalStack, weights: list[str], message: str
) -> None:
    args = [arg for w in weights for arg in ("--weight", w)]
    result = local_stack.mlops("sagemaker", "shift", "penguins", "--env", "dev", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "unreachable" not in result.stderr


def test_invalid_request_is_not_reported_as_unreachable() -> None:
    from botocore.exceptions import ParamValidationError

    from pipelines.aws.sagemaker_flow import AwsError, aws_errors

    with pytest.raises(AwsError) as raised, aws_errors("shifting traffic"):
        raise ParamValidationError(report="Invalid value for DesiredWeight")
    assert "unreachable" not in raised.value.message
    assert "not valid" in raised.value.message and "DesiredWeight" in raised.value.message


def test_port_option_on_a_running_stack_is_refused_and_not_saved(local_stack: LocalStack) -> None:
    # Saving it would silently move MLflow the next time it is (re)started.
    saved = local_stack.stack.settings_file.read_text(encoding="utf-8")
    with pytest.raises(StackError, match="mlflow is running on port"):
        Stack(local_stack.home, {"mlflow_port": free_port()}).up()
    assert local_stack.stack.settings_file.read_text(encoding="utf-8") == saved


def _kill_leader(stack: Stack, name: str) -> tuple[int, int]:
    service = stack._read()[name]
    os.kill(service.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(service.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(service.pid)
    return service.pid, service.port


def test_killed_leader_is_restarted_and_its_children_stopped(local_stack: LocalStack) -> None:
    # MLflow's leader forks uvicorn workers into its process group; they outlive a kill -9.
    stack = Stack(local_stack.home)
    old_pid, port = _kill_leader(stack, "mlflow")
    assert _port_open(port), "the orphaned worker should still hold the port (precondition)"
    stack.up()  # must not fail with "port is taken": it cleans the dead service's group
    assert stack.running("mlflow") and stack._read()["mlflow"].pid != old_pid
    _kill_leader(stack, "mlflow")
    stack.stop("mlflow")  # what `mlops stack down` does per service
    deadline = time.monotonic() + 10
    while _port_open(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _port_open(port), "stop() left the dead leader's children listening"
    stack.up()  # leave the module's stack running for its teardown
    assert stack.running("mlflow")
