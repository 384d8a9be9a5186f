"""The local AWS stack, started once per test module on free ports of 127.0.0.1.

Each module gets a scratch checkout (models/, data/, environments/) and a state folder holding
the stack: moto, an MLflow server on SQLite with its artifacts in S3 on moto, Prometheus, and,
once a test deploys, the model server. Every test sees the stack's client environment
(``mlops stack env``); the stack is stopped by PID when the module ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from examples_root import copy_examples
from integration_stack import LocalStack, free_port

from pipelines.aws.local_stack import Stack


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    base = tmp_path_factory.mktemp("stack")
    root = base / "repo"
    copy_examples(root)
    ports = {
        "moto_port": free_port(),
        "mlflow_port": free_port(),
        "model_port": free_port(),
        "prometheus_port": free_port(),
    }
    stack = Stack(base / "state", ports)
    try:
        stack.up()
        yield LocalStack(stack, root, base / "state")
    finally:
        stack.down()


@pytest.fixture(autouse=True)
def _stack_env(
    request: pytest.FixtureRequest, _isolated_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the suite's isolation, point boto3, MLflow and mlops at this module's stack."""
    if "local_stack" not in request.fixturenames:
        return
    running: LocalStack = request.getfixturevalue("local_stack")
    for key, value in running.env.items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith(("SM_", "SAGEMAKER_"))]:
        monkeypatch.delenv(key)
