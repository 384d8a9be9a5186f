"""Shared fixtures: a scratch copy of the repository and a real MLflow backend per test.

Every test that touches MLflow gets its own SQLite database and artifact folder under pytest's
tmp_path, so tests never see each other's versions or the developer's .mlops/ folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from examples_root import copy_examples

from pipelines.core.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may talk to a tracking server configured on the developer's machine."""
    for name in (
        "MLFLOW_TRACKING_URI",
        "MLOPS_TRACKING_URI",
        "MLOPS_ROOT",
        "MLOPS_HOME",
        "GITHUB_SHA",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """AWS in-process (moto) with dummy credentials, never a real endpoint."""
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example models and data with the pins, copied so that a test may change them."""
    return copy_examples(tmp_path / "repo")


@pytest.fixture
def settings(repo: Path, tmp_path: Path) -> Settings:
    return Settings(root=repo, home=tmp_path / "state", tracking_uri=None)


@pytest.fixture
def client(settings: Settings) -> Iterator[MlflowClient]:
    import mlflow

    from pipelines.core.registry import connect

    yield connect(settings)
    while mlflow.active_run():  # a failing test must not leave a run open for the next one
        mlflow.end_run("FAILED")


@pytest.fixture
def cli_env(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment under which the CLI works on the scratch repository and registry."""
    env = {"MLOPS_ROOT": str(repo), "MLOPS_HOME": str(tmp_path / "state")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
